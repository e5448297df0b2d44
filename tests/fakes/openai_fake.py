"""A strict fake of OpenAI Chat Completions (``/v1/chat/completions``, ``/v1/models``),
Embeddings (``/v1/embeddings``, ``embeddings_wire.py``) and the Responses API
(``/v1/responses``, rendered by ``openai_responses_fake``).

Wire format per the shared protocol reference vendors.md (sections 1 and 8), checked with the
official ``openai`` SDK (tests/test_fake_openai_sdk.py). Usage::

    with FakeOpenAI(api_key="sk-test-...") as fake:
        fake.enqueue(Reply(text="hi"), Fail("rate_limit", retry_after="1"))
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test-...")
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.openai import OpenAIVendor

from . import openai_responses_fake as responses_api
from .embeddings_wire import EmbeddingProblem, openai_answer
from .openai_validation import Problem, validate_chat
from .script import Fail, Reply, ToolCallSpec, split_text
from .server import Call, FakeServer, Handler, StreamPlan

DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "gpt-5")
EMBEDDING_DIMS = 1536
_ALNUM = string.ascii_letters + string.digits
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
# kind -> (status, type, param, code, message); "{model}" is filled in
FAILS: dict[str, tuple[int, str, str | None, str | None, str]] = {
    "rate_limit": (
        429,
        "requests",
        None,
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min "
        "(RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    "quota": (
        429,
        "insufficient_quota",
        None,
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    "server": (
        500,
        "server_error",
        None,
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded": (503, "server_error", None, None, "The server is overloaded or not ready yet."),
    "auth": (401, "invalid_request_error", None, "invalid_api_key", ""),
    "bad_request": (
        400,
        "invalid_request_error",
        None,
        "invalid_value",
        "Invalid request (scripted by the fake).",
    ),
    "not_found": (
        404,
        "invalid_request_error",
        None,
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    "context_length": (
        400,
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your "
        "messages resulted in 131072 tokens. Please reduce the length of the "
        "messages.",
    ),
    "timeout": (408, "timeout", None, None, "Request timed out."),
    "conflict": (
        409,
        "invalid_request_error",
        None,
        "conflict",
        "Another request is currently being processed for this resource.",
    ),
}


def rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def mask_key(key: str) -> str:
    """OpenAI's masking ("sk-proj-****…abcd"); short keys are masked entirely past 3 chars
    (OpenAI would echo them, but a fake must never put a whole key in an error)."""
    if len(key) <= 12:
        return key[:3] + "*" * max(len(key) - 3, 1)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeServer):
    """Strict fake of ``api.openai.com/v1`` Chat Completions and Models."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        """``api_key=None`` accepts any Bearer key (a missing one is still 401)."""
        super().__init__(api_key=api_key, host=host)
        self.models = list(models)
        self.embedding_dims = EMBEDDING_DIMS  # for models without a documented size

    def reset(self) -> None:
        super().reset()
        self.embedding_dims = EMBEDDING_DIMS

    # ------------------------------------------------------------------------------ routing
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/responses"): self._responses,
            ("GET", "/v1/models"): self._models,
        }

    def match(self, method: str, path: str) -> Handler | None:
        if method == "GET" and path.startswith("/v1/models/"):
            return self._model
        return super().match(method, path)

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        req = call.request
        msg = f"Invalid URL ({req.method} {req.path})"
        return self.error(call, 404, msg, "invalid_request_error")

    def response_headers(self, call: Call) -> dict[str, str]:
        rid = call.meta.setdefault("request_id", "req_" + secrets.token_hex(16))
        headers = {
            "x-request-id": rid,
            "openai-version": "2020-10-01",
            "openai-processing-ms": "42",
            "openai-organization": "org-fake",
        }
        if call.request.path == "/v1/chat/completions":
            limited = call.meta.get("fail") == "rate_limit"
            headers |= {
                "x-ratelimit-limit-requests": "10000",
                "x-ratelimit-limit-tokens": "30000000",
                "x-ratelimit-remaining-requests": "0" if limited else "9999",
                "x-ratelimit-remaining-tokens": "29999990",
                "x-ratelimit-reset-requests": "6ms",
                "x-ratelimit-reset-tokens": "0s",
            }
        return headers

    # ----------------------------------------------------------------------------- handlers
    def error(
        self,
        call: Call,
        status: int,
        message: str,
        type_: str,
        param: str | None = None,
        code: str | None = None,
    ) -> web.Response:
        body = orjson.dumps(error_body(message, type_, param, code))
        return web.Response(
            status=status, body=body, content_type="application/json", charset="utf-8"
        )

    def _auth(self, call: Call) -> web.Response | None:
        header = call.request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return self.error(call, 401, _NO_KEY, "invalid_request_error")
        if self.api_key is not None and key != self.api_key:
            return self.error(
                call,
                401,
                self._bad_key_message(key),
                "invalid_request_error",
                None,
                "invalid_api_key",
            )
        return None

    @staticmethod
    def _bad_key_message(key: str) -> str:
        return (
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )

    async def _chat(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = body.get("model")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate_chat(call.body if call.json_ok else None)
        except Problem as p:
            return self.error(call, p.status, p.message, "invalid_request_error", p.param, p.code)
        call.stream = body.get("stream") is True
        options = body.get("stream_options") or {}
        call.meta.update(
            include_usage=options.get("include_usage") is True,
            obfuscation=options.get("include_obfuscation") is not False,
            id="chatcmpl-" + rand(29),
            created=int(time.time()),
            fingerprint="fp_" + secrets.token_hex(5),
            **choice_meta(body),
        )
        return await self.run_step(call)

    async def _embeddings(self, call: Call) -> web.StreamResponse:
        return await self.embeddings(call, self._auth)

    async def embeddings(
        self, call: Call, auth: Callable[[Call], web.Response | None], model: str | None = None
    ) -> web.StreamResponse:
        """``/embeddings`` for this fake and its OpenAI-shaped relatives (``model``: the one
        that answers whatever the body names, e.g. an Azure deployment's)."""
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        if model is not None:
            body = {**body, "model": model}
        call.meta["model"] = body.get("model")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := auth(call)) is not None:
            return denied
        self.next_step()  # a scripted Reply answers one embedding request too
        try:
            answer = openai_answer(body if call.json_ok else None, self.embedding_dims)  # type: ignore[arg-type]
        except EmbeddingProblem as p:
            return self.error(call, p.status, p.message, "invalid_request_error", p.param)
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def _responses(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = body.get("model")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            responses_api.validate_responses(call.body if call.json_ok else None)
        except Problem as p:
            return self.error(call, p.status, p.message, "invalid_request_error", p.param, p.code)
        call.stream = body.get("stream") is True
        responses_api.start(call, body)
        return await self.run_step(call)

    async def _models(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        data = [self._model_obj(m) for m in self.models]
        return web.json_response({"object": "list", "data": data}, dumps=_dumps)

    async def _model(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        name = call.request.path.removeprefix("/v1/models/")
        if name not in self.models:
            return self.error(
                call,
                404,
                f"The model '{name}' does not exist",
                "invalid_request_error",
                "model",
                "model_not_found",
            )
        return web.json_response(self._model_obj(name), dumps=_dumps)

    @staticmethod
    def _model_obj(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, type_, param, code, message = FAILS[fail.kind]
        if fail.kind == "auth":
            sent = call.request.headers.get("Authorization", "").partition(" ")[2].strip()
            message = self._bad_key_message(sent or "sk-fake-key-0000")
        message = fail.message or message.replace(
            "{model}", str(call.meta.get("model") or "gpt-4o")
        )
        call.meta["fail"] = fail.kind
        resp = self.error(call, fail.status or status, message, type_, param, code)
        if fail.retry_after is not None:
            resp.headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        _, type_, param, code, message = FAILS[kind]
        message = message.replace("{model}", str(call.meta.get("model") or "gpt-4o"))
        if call.meta.get("api") == "responses":
            return responses_api.stream_error_frame(call, kind, message)
        return b"data: " + orjson.dumps(error_body(message, type_, param, code)) + b"\n\n"

    def _tool_calls(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        """Stable ids/JSON-string arguments for ``reply``'s tool calls (same in every frame)."""
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            call.meta[key] = [_tool_call(tc) for tc in reply.tool_calls]
        calls: list[dict[str, Any]] = call.meta[key]
        return calls

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reply.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        if call.meta.get("api") == "responses":
            body = responses_api.response_object(call, reply, "completed")
            return web.Response(body=orjson.dumps(body), content_type="application/json")
        tool_calls = self._tool_calls(call, reply)
        n = call.meta["n"]
        usage = self._usage(reply)
        usage["completion_tokens"] *= n  # usage covers every choice
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        body = {
            "id": call.meta["id"],
            "object": "chat.completion",
            "created": call.meta["created"],
            "model": call.meta["model"],
            "choices": [self._choice(call, reply, tool_calls, k) for k in range(n)],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": call.meta["fingerprint"],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _choice(
        self, call: Call, reply: Reply, tool_calls: list[dict[str, Any]], k: int
    ) -> dict[str, Any]:
        """Choice ``k``: the reply's text, numbered after the first (``Hello #1``)."""
        text = reply.text if k == 0 or not reply.text else f"{reply.text} #{k}"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        pieces = split_text(text, reply.chunk_size)
        return {
            "index": k,
            "message": message,
            "logprobs": self._logprobs(call, pieces),
            "finish_reason": reply.finish,
        }

    @staticmethod
    def _logprobs(call: Call, pieces: list[str]) -> dict[str, Any] | None:
        """OpenAI's ``logprobs`` object when asked for: each piece one token."""
        if not call.meta["logprobs"]:
            return None
        return {
            "content": [_token(p, i, call.meta["top_logprobs"]) for i, p in enumerate(pieces)],
            "refusal": None,
        }

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        if call.meta.get("api") == "responses":
            return responses_api.stream_plan(call, reply)
        meta = call.meta

        def frame(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            chunk: dict[str, Any] = {
                "id": meta["id"],
                "object": "chat.completion.chunk",
                "created": meta["created"],
                "model": meta["model"],
                "service_tier": "default",
                "system_fingerprint": meta["fingerprint"],
                "choices": choices,
            }
            if meta["include_usage"]:
                chunk["usage"] = usage
            if meta["obfuscation"]:
                chunk["obfuscation"] = rand(1 + secrets.randbelow(12))
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        def delta(d: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
            choice = {"index": 0, "delta": d, "logprobs": logprobs, "finish_reason": finish}
            return frame([choice])

        calls = self._tool_calls(call, reply)
        plan = StreamPlan()
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if calls and not reply.text:  # OpenAI opens a tool-only answer with the first call
            first = {
                "role": "assistant",
                "content": None,
                "tool_calls": [self._tool_head(0, calls[0])],
                "refusal": None,
            }
        plan.head.append(delta(first))
        plan.content += [
            delta({"content": piece}, logprobs=self._logprobs(call, [piece]))
            for piece in reply.text_pieces()
        ]
        for k, tc in enumerate(calls):
            if k or reply.text:
                plan.content.append(delta({"tool_calls": [self._tool_head(k, tc)]}))
            for piece in split_text(tc["function"]["arguments"], reply.chunk_size):
                plan.content.append(
                    delta({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
                )
        plan.tail.append(delta({}, reply.finish))
        if meta["include_usage"]:
            plan.tail.append(frame([], self._usage(reply)))
        plan.tail.append(b"data: [DONE]\n\n")
        return plan

    @staticmethod
    def _tool_head(index: int, tc: dict[str, Any]) -> dict[str, Any]:
        fn = {"name": tc["function"]["name"], "arguments": ""}
        return {"index": index, "id": tc["id"], "type": "function", "function": fn}


def choice_meta(body: dict[str, Any]) -> dict[str, Any]:
    """What shapes the choices: ``n`` and the log probabilities asked for."""
    return {
        "n": body.get("n") or 1,
        "logprobs": body.get("logprobs") is True,
        "top_logprobs": body.get("top_logprobs") or 0,
    }


def _tool_call(spec: ToolCallSpec) -> dict[str, Any]:
    if spec.custom_input is not None:
        return {
            "id": "call_" + rand(24),
            "type": "custom",
            "custom": {"name": spec.name, "input": spec.custom_input},
        }
    arguments = orjson.dumps(spec.arguments).decode()
    fn = {"name": spec.name, "arguments": arguments}
    return {"id": "call_" + rand(24), "type": "function", "function": fn}


def _token(text: str, position: int, top: int) -> dict[str, Any]:
    """One token's log probability, and ``top`` alternatives (the token itself first)."""
    logprob = -0.25 * (position + 1)
    alternatives = [
        {"token": text if k == 0 else f"{text}~{k}", "logprob": logprob - k, "bytes": None}
        for k in range(top)
    ]
    for alt in alternatives:
        alt["bytes"] = list(str(alt["token"]).encode())
    return {
        "token": text,
        "logprob": logprob,
        "bytes": list(text.encode()),
        "top_logprobs": alternatives,
    }


def adapter_for(fake: FakeOpenAI, **kwargs: Any) -> OpenAIVendor:
    """Our OpenAIVendor pointed at ``fake``, with the fake's key (any key if it takes any)."""
    return OpenAIVendor(api_key=fake.api_key or "sk-any", base_url=fake.url + "/v1", **kwargs)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
