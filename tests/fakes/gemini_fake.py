"""A strict fake of the Gemini API (generativelanguage.googleapis.com, API-key auth).

Routes ``/{v1,v1beta}/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE with
``?alt=sse``, else one streamed JSON array) and ``GET /{ver}/models[/{model}]``. Wire format per
vendors.md §4, checked with the official ``google-genai`` SDK (tests/test_fake_gemini_sdk.py)::

    with FakeGemini(api_key=FAKE_GEMINI_KEY) as fake:
        fake.enqueue(Reply(text="hi"), Fail("rate_limit", retry_after="37s"))
        client = genai.Client(api_key=FAKE_GEMINI_KEY,
                              http_options=types.HttpOptions(base_url=fake.url))

Script rendering: ``finish="tool_calls"`` is ``STOP`` with ``functionCall`` parts (Gemini has no
tool finish value); ``finish="content_filter"`` is ``SAFETY`` on the candidate, or, with no text
and no tool calls, a blocked prompt (``promptFeedback.blockReason`` and no candidates). The first
``functionCall`` part of an answer carries a ``thoughtSignature`` (as Gemini 3 does); set
``require_thought_signatures`` to reject a current turn whose calls lack theirs, as Gemini 3 does.
A 429 carries ``google.rpc.RetryInfo`` when ``Fail.retry_after``/``retry_after_ms`` is given (or
``default_retry_delay`` is set), so unscripted retries back off like every other fake.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .embeddings_wire import EmbeddingProblem, fake_vector, gemini_text, gemini_texts
from .gemini_validation import Problem, current_turn_calls, validate_generate
from .script import Fail, MidStreamError, Reply, Step
from .server import Call, FakeServer, Handler, StreamPlan

if TYPE_CHECKING:
    from llmdispatcher.vendors.gemini import GeminiVendor

FAKE_GEMINI_KEY = "AIzaSyFAKE-gemini-test-key-0123456789ab"
DEFAULT_MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-3-pro-preview",
    "gemini-embedding-001",
)
_ROUTE = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_MODELS = re.compile(r"^/(v1|v1beta)/models(?:/([^/:]+))?$")
_EMBED = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(embedContent|batchEmbedContents)$")
EMBEDDING_DIMS = 3072  # gemini-embedding-001's default size
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY = "API key not valid. Please pass a valid API key."
_QUOTA_MSG = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
    "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
    "* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {limit}, "
    "model: {model}"
)
# kind -> (HTTP status, RPC status, message); "{model}"/"{version}" are filled in
FAILS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", _QUOTA_MSG),
    "quota": (429, "RESOURCE_EXHAUSTED", _QUOTA_MSG),
    "server": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "auth": (400, "INVALID_ARGUMENT", _BAD_KEY),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "not_found": (
        404,
        "NOT_FOUND",
        "models/{model} is not found for API version {version}, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    ),
    "context_length": (
        400,
        "INVALID_ARGUMENT",
        "The input token count (1250000) exceeds the maximum number of tokens allowed (1048576).",
    ),
    "timeout": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    "conflict": (409, "ABORTED", "The operation was aborted due to a concurrency conflict."),
}
# per-minute rate limits pass; a per-day quota is spent until tomorrow
_QUOTAS = {
    "rate_limit": (
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "generate_content_free_tier_requests",
        "10",
    ),
    "quota": (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        "generate_content_free_tier_requests",
        "250",
    ),
}


def error_body(
    code: int, message: str, status: str, details: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def retry_delay(fail: Fail, default: str | None) -> str | None:
    """RetryInfo.retryDelay for a scripted failure: "37s" stays, "7" becomes "7s"."""
    if fail.retry_after_ms is not None:
        return f"{float(fail.retry_after_ms) / 1000:g}s"
    if fail.retry_after is not None:
        value = fail.retry_after
        return value if value.endswith("s") else f"{value}s"
    return default


def new_signature() -> str:
    """A thought signature: opaque bytes, base64 in JSON (real ones are longer)."""
    return base64.b64encode(secrets.token_bytes(48)).decode()


class FakeGemini(FakeServer):
    """Strict fake of the Gemini Developer API (generateContent, streaming, models)."""

    stream_content_type = "text/event-stream"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        """``api_key=None`` accepts any key (a missing one is still 403)."""
        super().__init__(api_key=api_key, host=host)
        self.models = list(models)
        self._initial_models = list(models)
        self.require_thought_signatures = False
        self.default_retry_delay: str | None = None
        self.issued_signatures: set[bytes] = set()
        self.embedding_dims = EMBEDDING_DIMS

    def reset(self) -> None:
        super().reset()
        self.embedding_dims = EMBEDDING_DIMS
        self.models = list(self._initial_models)
        self.require_thought_signatures = False
        self.default_retry_delay = None
        self.issued_signatures = set()

    # ------------------------------------------------------------------------------ routing
    def match(self, method: str, path: str) -> Handler | None:
        if method == "POST" and _ROUTE.match(path):
            return self._generate
        if method == "POST" and _EMBED.match(path):
            return self._embed
        if method == "GET" and _MODELS.match(path):
            return self._models
        return None

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return self.error(404, "Method not found.", "NOT_FOUND")

    def response_headers(self, call: Call) -> dict[str, str]:
        return {
            "server": "scaffolding on HTTPServer2",
            "x-content-type-options": "nosniff",
            "vary": "Origin, X-Origin, Referer",
        }

    # ----------------------------------------------------------------------------- handlers
    @staticmethod
    def error(
        code: int, message: str, status: str, details: Sequence[dict[str, Any]] = ()
    ) -> web.Response:
        return web.Response(
            status=code,
            body=orjson.dumps(error_body(code, message, status, details)),
            content_type="application/json",
            charset="UTF-8",
        )

    def _auth(self, call: Call) -> web.Response | None:
        key = call.request.headers.get("x-goog-api-key") or call.record.query.get("key")
        if not key:
            return self.error(403, _NO_KEY, "PERMISSION_DENIED", [_error_info("SERVICE_DISABLED")])
        if self.api_key is not None and key != self.api_key:
            return self._bad_key()
        return None

    def _bad_key(self) -> web.Response:
        return self.error(400, _BAD_KEY, "INVALID_ARGUMENT", _bad_key_details())

    async def _generate(self, call: Call) -> web.StreamResponse:
        found = _ROUTE.match(call.request.path)
        assert found is not None
        version, model, method = found.groups()
        call.meta.update(model=model, version=version, response_id=_response_id())
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            body = validate_generate(call.body, json_ok=call.json_ok)
            self._check_signatures(body["contents"])
        except Problem as p:
            return self.error(p.status, p.message, p.rpc, p.details())
        call.stream = method == "streamGenerateContent"
        call.meta["sse"] = call.record.query.get("alt") == "sse"
        config = body.get("generationConfig") or {}
        call.meta["logprobs"] = (
            (config.get("logprobs") or 0) if config.get("responseLogprobs") else None
        )
        return await self.run_step(call)

    async def _embed(self, call: Call) -> web.StreamResponse:
        """``:batchEmbedContents`` (what google-genai sends) and ``:embedContent``."""
        found = _EMBED.match(call.request.path)
        assert found is not None
        version, model, method = found.groups()
        call.meta.update(model=model, version=version)
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        if model not in self.models:
            message = (
                f"models/{model} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and their "
                "supported methods."
            )
            return self.error(404, message, "NOT_FOUND")
        body = call.body if call.json_ok and isinstance(call.body, dict) else {}
        self.next_step()  # a scripted Reply answers one embedding request too
        try:
            if method == "embedContent":
                text, dims = gemini_text(body, "content")
                vector = fake_vector(text, dims or self.embedding_dims)
                return self._json({"embedding": {"values": vector}})
            pairs = gemini_texts(body.get("requests"), model)
        except EmbeddingProblem as p:
            return self.error(p.status, p.message, "INVALID_ARGUMENT")
        values = [{"values": fake_vector(t, d or self.embedding_dims)} for t, d in pairs]
        return self._json({"embeddings": values})

    @staticmethod
    def _json(obj: Any) -> web.Response:
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    def _check_signatures(self, contents: list[dict[str, Any]]) -> None:
        if not self.require_thought_signatures:
            return
        for index, part in current_turn_calls(contents):
            signature = part.get("thoughtSignature")
            if signature is None:
                name = part["functionCall"]["name"]
                raise Problem(
                    f"Function call `{name}` in the `{index}.` content block is missing a "
                    "`thought_signature`. Learn more: "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures"
                )
            if _decode(signature) not in self.issued_signatures:
                raise Problem("Corrupted thought signature.")

    async def _models(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        found = _MODELS.match(call.request.path)
        assert found is not None
        version, name = found.groups()
        if name is not None:
            if name not in self.models:
                return self.error(
                    404, f"models/{name} is not found for API version {version}", "NOT_FOUND"
                )
            return web.json_response(_model_obj(name), dumps=_dumps)
        size = min(int(call.record.query.get("pageSize") or 50), 1000)
        start = int(call.record.query.get("pageToken") or 0)
        page: dict[str, Any] = {
            "models": [_model_obj(m) for m in self.models[start : start + size]]
        }
        if start + size < len(self.models):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page, dumps=_dumps)

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        code, status, message = FAILS[fail.kind]
        details = self._fail_details(call, fail)
        if fail.kind == "auth":
            details = _bad_key_details()
        return self.error(
            fail.status or code,
            fail.message or self._fill(call, fail.kind, message),
            status,
            details,
        )

    def _fill(self, call: Call, kind: str, message: str) -> str:
        model = str(call.meta.get("model") or "gemini-2.5-flash")
        quota = _QUOTAS.get(kind, ("", "", ""))
        return message.format(
            model=model, version=call.meta.get("version", "v1beta"), metric=quota[1], limit=quota[2]
        )

    def _fail_details(self, call: Call, fail: Fail) -> list[dict[str, Any]]:
        if fail.kind not in _QUOTAS:
            return []
        quota_id, metric, limit = _QUOTAS[fail.kind]
        violation = {
            "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": call.meta.get("model", "")},
            "quotaValue": limit,
        }
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        ]
        delay = retry_delay(fail, self.default_retry_delay)
        if delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
            )
        return details

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        code, status, message = FAILS[kind]
        body = orjson.dumps(error_body(code, self._fill(call, kind, message), status))
        if call.meta["sse"]:
            return b"data: " + body + b"\r\n\r\n"
        sent = min(call.meta.get("error_after", 0), call.meta.get("content_frames", 0))
        return (b"\n,\r\n" if sent else b"") + body + b"\n]"

    async def run_step(self, call: Call, step: Step | None = None) -> web.StreamResponse:
        step = self.next_step() if step is None else step
        if isinstance(step, MidStreamError):
            call.meta["error_after"] = step.after_chunks  # where the array's error element goes
        return await super().run_step(call, step)

    async def _stream(self, call: Call, plan: StreamPlan, **kwargs: Any) -> web.StreamResponse:
        if not call.meta["sse"]:  # without alt=sse the stream is one JSON array
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Content-Type": "application/json; charset=UTF-8",
            }
        return await super()._stream(call, plan, **kwargs)

    def _parts(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        """The function-call parts of ``reply`` (the same in every frame of one answer)."""
        key = f"calls-{id(reply)}"
        if key not in call.meta:
            parts = []
            for k, spec in enumerate(reply.tool_calls):
                part: dict[str, Any] = {"functionCall": {"name": spec.name, "args": spec.arguments}}
                if k == 0:  # Gemini 3 signs the first call of a step only
                    part["thoughtSignature"] = new_signature()
                    self.issued_signatures.add(_decode(part["thoughtSignature"]))
                parts.append(part)
            call.meta[key] = parts
        found: list[dict[str, Any]] = call.meta[key]
        return found

    def _usage(self, reply: Reply, final: bool = True) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": reply.prompt_tokens,
            "totalTokenCount": reply.prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        }
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.cached_tokens}]
        if reply.reasoning_tokens:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
            usage["totalTokenCount"] += reply.reasoning_tokens
        if final:
            usage["candidatesTokenCount"] = reply.completion_tokens - reply.reasoning_tokens
            usage["totalTokenCount"] = reply.total_tokens
        return usage

    def _response(
        self, call: Call, candidate: dict[str, Any] | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if candidate is None:
            out["promptFeedback"] = {"blockReason": "SAFETY"}
        else:
            out["candidates"] = [{**candidate, "index": 0}]
        out |= {
            "usageMetadata": usage,
            "modelVersion": call.meta["model"],
            "responseId": call.meta["response_id"],
        }
        return out

    @staticmethod
    def _blocked_prompt(reply: Reply) -> bool:
        return reply.finish == "content_filter" and not reply.text and not reply.tool_calls

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        if self._blocked_prompt(reply):
            return web.json_response(self._response(call, None, self._usage(reply)), dumps=_dumps)
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        parts += self._parts(call, reply)
        candidate: dict[str, Any] = {"finishReason": _FINISH[reply.finish]}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        candidate |= _logprobs(call, reply.text_pieces())
        return web.json_response(self._response(call, candidate, self._usage(reply)), dumps=_dumps)

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        sse = call.meta["sse"]
        count = 0

        def frame(candidate: dict[str, Any] | None, final: bool) -> bytes:
            nonlocal count
            data = orjson.dumps(self._response(call, candidate, self._usage(reply, final)))
            count += 1
            if sse:
                return b"data: " + data + b"\r\n\r\n"
            return (b"\n,\r\n" if count > 1 else b"") + data

        def content(parts: list[dict[str, Any]]) -> dict[str, Any]:
            return {"content": {"parts": parts, "role": "model"}}

        plan = StreamPlan(head=[] if sse else [b"["])
        if self._blocked_prompt(reply):
            plan.tail.append(frame(None, True))
        else:
            plan.content += [
                frame(content([{"text": t}]) | _logprobs(call, [t]), False)
                for t in reply.text_pieces()
            ]
            if reply.tool_calls:  # a call arrives whole; parallel calls share one chunk
                plan.content.append(frame(content(self._parts(call, reply)), False))
            last: dict[str, Any] = {"finishReason": _FINISH[reply.finish]}
            if reply.finish != "content_filter":  # a filtered stream ends with empty content
                last |= content([{"text": ""}])
            plan.tail.append(frame(last, True))
        call.meta["content_frames"] = len(plan.content)
        if not sse:
            plan.tail.append(b"\n]")
        return plan


def _logprobs(call: Call, tokens: list[str]) -> dict[str, Any]:
    """``logprobsResult`` (google-genai ``LogprobsResult``) when ``responseLogprobs`` asked."""
    top = call.meta.get("logprobs")
    if top is None or not tokens:
        return {}

    def candidate(token: str, value: float) -> dict[str, Any]:
        return {"token": token, "tokenId": len(token), "logProbability": value}

    values = [-0.25 * (i + 1) for i in range(len(tokens))]
    chosen = [candidate(t, v) for t, v in zip(tokens, values, strict=True)]
    tops = [
        {"candidates": [candidate(t + "~" * k, v - k) for k in range(top)]}
        for t, v in zip(tokens, values, strict=True)
    ]
    result = {"chosenCandidates": chosen, "topCandidates": tops, "logProbabilitySum": sum(values)}
    return {"logprobsResult": result, "avgLogprobs": sum(values) / len(values)}


def adapter_for(fake: FakeGemini, **kwargs: Any) -> GeminiVendor:
    """Our GeminiVendor pointed at ``fake`` with the fake's key (imported here so the fake
    itself does not depend on the library it tests)."""
    from llmdispatcher.vendors.gemini import GeminiVendor

    kwargs.setdefault("api_key", fake.api_key or FAKE_GEMINI_KEY)
    kwargs.setdefault("base_url", fake.url)
    return GeminiVendor(**kwargs)


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def _bad_key_details() -> list[dict[str, Any]]:
    localized = {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": _BAD_KEY,
    }
    return [_error_info("API_KEY_INVALID"), localized]


def _model_obj(name: str) -> dict[str, Any]:
    embedding = "embedding" in name
    methods = (
        ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
        if embedding
        else ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
    )
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "description": f"Fake {name}",
        "inputTokenLimit": 2048 if embedding else 1048576,
        "outputTokenLimit": 1 if embedding else 65536,
        "supportedGenerationMethods": methods,
        **(
            {}
            if embedding
            else {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}
        ),
    }


def _decode(signature: str) -> bytes:
    """Signature bytes, whichever base64 alphabet the client echoed them in (the SDK sends
    URL-safe base64; both decode to the same bytes)."""
    normal = signature.replace("-", "+").replace("_", "/")
    return base64.b64decode(normal + "=" * (-len(normal) % 4))


def _response_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")[:22]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
