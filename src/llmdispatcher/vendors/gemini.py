"""Google Gemini ``generateContent`` with an API key (ai.google.dev/api/generate-content).

Request translation lives in ``gemini_request``; this module sends, and reads answers back.
Why the response side is as it is:

* ``STOP`` with ``functionCall`` parts is ``tool_calls`` (Gemini has no tool finish value); a
  blocked prompt (``promptFeedback.blockReason``, no candidates) is an empty ``content_filter``
  answer, not an error.
* Finish reasons that mean the model's output broke (``MALFORMED_FUNCTION_CALL`` and friends)
  raise ``VendorServerError``, retryable: a new sample usually succeeds, while "stop" with no
  content would pass a failure off as an empty answer. ``MISSING_THOUGHT_SIGNATURE`` is the
  caller's history: ``InvalidRequestError``.
* A stream just ends: it is complete once a chunk carried a ``finishReason``; usage is cumulative
  per chunk, so the last one counts.
* Errors: a bad key is a 400 with reason ``API_KEY_INVALID`` (-> AuthenticationError), 504
  ``DEADLINE_EXCEEDED`` is a timeout, the retry delay is in the body (``google.rpc.RetryInfo``),
  and a 429 for a per-day quota (or a zero limit) is not retryable. A too-long prompt is a plain
  400 ``INVALID_ARGUMENT`` with no structured marker, so it stays an ``InvalidRequestError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..embeddings import EmbeddingRequest, Embeddings
from ..errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    RateLimitError,
    VendorConnectionError,
    VendorError,
    VendorServerError,
    VendorTimeout,
)
from ..limits import Limits, bounded_delay
from ..types import (
    FinishReason,
    Request,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import Capabilities, Health, Secret, missing_setting, secret_from
from .connection import Connection
from .error_mapping import (
    ErrorInfo,
    body_text,
    error_for,
    json_body,
    parse_duration,
    retry_after_from_headers,
)
from .gemini_request import (
    calling_config,
    declaration,
    encode_call_id,
    generation_config,
    new_call_id,
    to_contents,
)
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .logprobs import as_choice_logprobs, entries_from_gemini
from .openai_fields import Feature, refuse_foreign
from .path_segment import path_segment
from .sse import SSEDecoder

FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
    | {"IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER", "IMAGE_RECITATION", "MODEL_ARMOR"}
    | {"ESCALATION", "PUP_LIMITED_DISABLED"}
)
TRUNCATED = frozenset({"MAX_TOKENS", "CONTINUATION"})
BROKEN_OUTPUT = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
    | {"MALFORMED_RESPONSE"}
)
AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
# strict: functionCallingConfig mode VALIDATED; logprobs: responseLogprobs + logprobs.
FEATURES: tuple[Feature, ...] = ("strict", "logprobs")
# OpenAI body fields (in Request.extra) with a generationConfig equivalent.
PENALTIES = {
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
MAX_MODEL_PAGES = 20
OWNED_FIELDS = frozenset({"contents"})


class GeminiVendor(HttpVendor):
    """Gemini Developer API (generativelanguage.googleapis.com) with an API key.

    Like google-genai, the key comes from ``api_key``, else ``GOOGLE_API_KEY``, else
    ``GEMINI_API_KEY``, and the base URL from ``base_url``, else ``GOOGLE_GEMINI_BASE_URL``.
    The key travels in the ``x-goog-api-key`` header only (a ``?key=`` query lands in logs).
    """

    pricing_name = "google"

    default_name = "google"
    default_base_url = "https://generativelanguage.googleapis.com"
    api_key_env: tuple[str, ...] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    model_prefixes = ("gemini-", "gemma-", "models/gemini-")
    capabilities = Capabilities(
        streaming=True, tools=True, vision=True, json_mode=True, embeddings=True
    )
    embed_batch_size = 100  # batchEmbedContents' documented limit

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        name: str | None = None,
        api_version: str = "v1beta",
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        key = secret_from(api_key, *self.api_key_env)
        vendor_name = name or self.default_name
        if not key.reveal().strip():
            raise missing_setting(
                "GOOGLE_API_KEY or GEMINI_API_KEY",
                "api_key",
                vendor_name,
                "; GOOGLE_API_KEY wins when both are set; keys come from "
                "https://aistudio.google.com/apikey",
            )
        if not api_version.strip("/"):
            raise ConfigError(
                f"GeminiVendor api_version must be like 'v1beta' or 'v1' (vendor {vendor_name!r})"
            )
        super().__init__(
            name=vendor_name,
            base_url=base_url or os.environ.get(self.base_url_env) or self.default_base_url,
            api_key=Secret(key.reveal().strip()),
            connection=connection,
        )
        self.api_version = api_version.strip("/")
        self._headers = {
            "Content-Type": "application/json",
            "x-goog-api-key": self.api_key.reveal(),
            **self.extra_headers,
        }
        self.limits = limits or Limits()

    @classmethod
    def from_env(cls) -> GeminiVendor | None:
        return cls() if any(os.environ.get(n, "").strip() for n in cls.api_key_env) else None

    @property
    def root(self) -> str:
        return f"{self.base_url}/{self.api_version}"

    # --- request -----------------------------------------------------------------------------
    def model_path(self, model: str) -> str:
        """``models/{id}`` or ``tunedModels/{id}`` for a request's model; ``UnsupportedRequest``
        when the id is not one safe path segment (it would reach another resource)."""
        collection, slash, model_id = model.partition("/")
        if not slash or collection not in ("models", "tunedModels"):
            collection, model_id = "models", model
        safe_id = path_segment(model_id, field="model", vendor=self.name, whole=model)
        return f"{collection}/{safe_id}"

    def model_url(self, model: str, method: str) -> str:
        # A plain string: the colon before the method must not be re-encoded as a segment.
        return f"{self.root}/{self.model_path(model)}:{method}"

    def check(self, request: Request) -> None:
        self.model_path(request.model)
        refuse_foreign(request, self.name, "Gemini", features=FEATURES, understood=PENALTIES)
        super().check(request)

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = orjson.dumps(self.build_body(request))
        return HttpCall(self.model_url(request.model, method), self._headers, body)

    def build_embed_call(self, request: EmbeddingRequest) -> HttpCall:
        """``batchEmbedContents`` for any number of inputs, as google-genai sends it (one
        ``embedContent`` request each, every one naming the model)."""
        path = self.model_path(request.model)
        entries = []
        for text in request.inputs:
            entry: dict[str, Any] = {
                "model": path,
                "content": {"role": "user", "parts": [{"text": text}]},
            }
            if request.dimensions is not None:
                entry["outputDimensionality"] = request.dimensions
            entries.append(entry)
        body = orjson.dumps({"requests": entries})
        return HttpCall(self.model_url(request.model, "batchEmbedContents"), self._headers, body)

    def parse_embeddings(self, data: Any, request: EmbeddingRequest) -> Embeddings:
        vectors = [[float(x) for x in item["values"]] for item in data["embeddings"]]
        meta = data.get("usageMetadata")
        usage = usage_from_gemini(meta) if meta else None
        return Embeddings(vectors, request.model, usage)

    def build_body(self, request: Request) -> dict[str, Any]:
        system, contents = to_contents(request.message_list, self.name)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [declaration(t) for t in request.tool_list]}]
        calling = self._calling(request)
        if calling is not None:
            body["toolConfig"] = {"functionCallingConfig": calling}
        config = generation_config(request, self.name)
        for key, value in (request.extra or {}).items():
            if key == "generationConfig" and isinstance(value, Mapping):
                config.update(value)
            elif key in PENALTIES:
                config[PENALTIES[key]] = value
            elif key not in OWNED_FIELDS:
                body[key] = value
        if request.logprobs:
            config["responseLogprobs"] = True
            if request.top_logprobs:
                config["logprobs"] = request.top_logprobs
        if config:
            body["generationConfig"] = config
        return body

    def _calling(self, request: Request) -> dict[str, Any] | None:
        """``functionCallingConfig``: strict tools with an automatic choice are ``VALIDATED``
        (calls guaranteed to follow their schema); ``ANY`` already guarantees it."""
        choice = request.tool_choice
        strict = any(t.strict for t in request.tool_list)
        if choice is None or (strict and choice == "auto"):
            return {"mode": "VALIDATED"} if strict else None
        return calling_config(choice, {t.name for t in request.tool_list}, self.name)

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        candidate = first_candidate(data)
        usage = usage_from_gemini(data.get("usageMetadata"))
        model = data.get("modelVersion") or request.model
        if candidate is None:
            if not prompt_blocked(data):
                raise VendorServerError("the response has no candidates", vendor=self.name)
            return Response(
                "", self.name, model, "content_filter", usage, raw=data, id=data.get("responseId")
            )
        text, calls = read_parts(candidate)
        finish = map_finish_reason(candidate.get("finishReason"), bool(calls), self.name)
        entries = entries_from_gemini(candidate.get("logprobsResult"))
        return Response(
            content=text,
            vendor=self.name,
            model=model,
            finish_reason=finish,
            usage=usage,
            tool_calls=tuple(calls),
            raw=data,
            id=data.get("responseId"),
            logprobs=as_choice_logprobs(entries),
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return GeminiStreamDecoder(self, request.model)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return error_info(json_body(body), status, body)

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> VendorError:
        data = json_body(body)
        info = error_info(data, status, body)
        if info.retry_after is None:  # Gemini puts it in the body; a proxy may use the header
            hint = retry_after_from_headers(headers, time.time())
            info = ErrorInfo(info.message, info.error_type, info.code, hint, info.request_id)
        return gemini_error(status, info, quota_exhausted(data), self)

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        """Models that serve generateContent (embedding-only models are left out)."""
        names: list[str] = []
        token = ""
        for _ in range(MAX_MODEL_PAGES):
            url = f"{self.root}/models?pageSize=1000"
            if token:
                url += f"&pageToken={quote(token, safe='')}"
            data = decode_json((await self.get(url, self._headers)).body, self.name)
            for model in data.get("models") or ():
                methods = model.get("supportedGenerationMethods")
                if methods is None or "generateContent" in methods:
                    names.append(str(model.get("name", "")).removeprefix("models/"))
            token = data.get("nextPageToken") or ""
            if not token:
                break
        return sorted(names)

    async def health(self) -> Health:
        return await self.timed_health(f"{self.root}/models?pageSize=1", self._headers)


class GeminiStreamDecoder:
    """``data: <GenerateContentResponse>`` events, each a delta; the stream is complete once a
    candidate carried a ``finishReason`` (or the prompt was blocked). Usage is cumulative:
    the last one seen is passed on."""

    def __init__(self, vendor: GeminiVendor, model: str) -> None:
        self._vendor = vendor
        self._model = model
        self._sse = SSEDecoder(vendor.max_line)
        self._calls = 0
        self._usage: Usage | None = None
        self._done = False

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for event in self._sse.feed(data):
            yield from self._event(event.data)

    def finish(self) -> Iterator[StreamChunk]:
        for event in self._sse.flush():
            yield from self._event(event.data)
        if not self._done:
            raise VendorConnectionError(
                "the stream ended before a chunk with a finishReason", vendor=self._vendor.name
            )

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor.name, model=self._model, **fields)

    def _event(self, data: str) -> Iterator[StreamChunk]:
        if not data.strip():
            return
        obj = decode_json(data.encode(), self._vendor.name)
        if isinstance(obj.get("error"), dict):
            raise stream_error(obj, self._vendor)
        self._model = obj.get("modelVersion") or self._model
        if obj.get("usageMetadata"):
            self._usage = usage_from_gemini(obj["usageMetadata"])
            if self._done:  # a late usage update after the finish: the last one counts
                yield self._chunk(usage=self._usage)
        candidate = first_candidate(obj)
        if candidate is None:
            if prompt_blocked(obj) and not self._done:
                self._done = True
                yield self._chunk(finish_reason="content_filter", usage=self._usage)
            return
        text, calls = read_parts(candidate)
        deltas = tuple(
            ToolCallDelta(self._calls + k, c.id, c.name, c.arguments) for k, c in enumerate(calls)
        )
        self._calls += len(calls)
        if text or deltas:
            logprobs = entries_from_gemini(candidate.get("logprobsResult"))
            yield self._chunk(delta=text, tool_call_deltas=deltas, logprobs=logprobs)
        raw = candidate.get("finishReason")
        if raw and not self._done:
            finish = map_finish_reason(raw, self._calls > 0, self._vendor.name)
            self._done = True
            yield self._chunk(finish_reason=finish, usage=self._usage)


# --- response translation -----------------------------------------------------------------------
def first_candidate(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = data.get("candidates") or []
    return candidates[0] if candidates else None


def prompt_blocked(data: Mapping[str, Any]) -> bool:
    return bool((data.get("promptFeedback") or {}).get("blockReason"))


def read_parts(candidate: Mapping[str, Any]) -> tuple[str, list[ToolCall]]:
    """The answer text (thought summaries left out) and the function calls of a candidate."""
    text: list[str] = []
    calls: list[ToolCall] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if isinstance(part.get("text"), str) and not part.get("thought"):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            call_id = encode_call_id(call.get("id") or new_call_id(), part.get("thoughtSignature"))
            arguments = orjson.dumps(call.get("args") or {}).decode()
            calls.append(ToolCall(id=call_id, name=str(call.get("name", "")), arguments=arguments))
    return "".join(text), calls


def map_finish_reason(raw: str | None, has_calls: bool, vendor: str) -> FinishReason | None:
    if raw is None:
        return "tool_calls" if has_calls else None
    if raw in BROKEN_OUTPUT:
        raise VendorServerError(
            f"the model's output was unusable (finishReason {raw}); a new try usually succeeds",
            vendor=vendor,
            error_type=raw,
        )
    if raw == "MISSING_THOUGHT_SIGNATURE":
        raise InvalidRequestError(
            "Gemini wants the thought signatures of earlier tool calls: send the assistant "
            "tool_calls back with the ids this adapter returned, unchanged",
            vendor=vendor,
            error_type=raw,
        )
    if raw in FILTERED:
        return "content_filter"
    if raw in TRUNCATED:
        return "length"
    return "tool_calls" if has_calls else "stop"


def usage_from_gemini(meta: Mapping[str, Any] | None) -> Usage:
    if not meta:
        return Usage()
    prompt = count(meta.get("promptTokenCount")) + count(meta.get("toolUsePromptTokenCount"))
    thoughts = count(meta.get("thoughtsTokenCount"))
    completion = count(meta.get("candidatesTokenCount")) + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count(meta.get("totalTokenCount")) or prompt + completion,
        cached_tokens=count(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


# --- errors -------------------------------------------------------------------------------------
def error_info(data: Any, status: int, raw: bytes) -> ErrorInfo:
    """``{"error": {code, message, status, details}}`` in neutral form: ``error_type`` is the
    RPC status, ``code`` the first ``details[].reason``, ``retry_after`` from RetryInfo (at most
    ``MAX_VENDOR_DELAY_S``)."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ErrorInfo(body_text(status, raw))
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    reason = next((str(d["reason"]) for d in details if d.get("reason")), None)
    asked = next(
        (
            parse_duration(d["retryDelay"])
            for d in details
            if str(d.get("@type", "")).endswith("google.rpc.RetryInfo")
            and isinstance(d.get("retryDelay"), str)
        ),
        None,
    )
    delay = None if asked is None else bounded_delay(asked)
    status_name = error.get("status")
    return ErrorInfo(
        message=str(error.get("message") or "no message"),
        error_type=str(status_name) if status_name else None,
        code=reason,
        retry_after=delay,
    )


def quota_exhausted(data: Any) -> bool:
    """A 429 for a per-day quota or a zero limit: waiting seconds will not help."""
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if not (isinstance(detail, dict) and str(detail.get("@type", "")).endswith("QuotaFailure")):
            continue
        for violation in detail.get("violations") or ():
            if (
                "PerDay" in str(violation.get("quotaId", ""))
                or str(violation.get("quotaValue")) == "0"
            ):
                return True
    return False


def gemini_error(
    status: int, info: ErrorInfo, exhausted: bool, vendor: GeminiVendor
) -> VendorError:
    """``error_for`` plus Gemini's own signals: a 400 bad key is an authentication failure, a
    504 DEADLINE_EXCEEDED a timeout, a spent daily quota not retryable."""
    error = error_for(status, info, vendor=vendor.name, secrets=vendor.secrets())
    cls: type[VendorError] = type(error)
    retryable = error.retryable
    if info.code in AUTH_REASONS:
        cls, retryable = AuthenticationError, False
    elif info.error_type == "DEADLINE_EXCEEDED":
        cls, retryable = VendorTimeout, True
    elif isinstance(error, RateLimitError) and exhausted:
        retryable = False
    if cls is type(error) and retryable == error.retryable:
        return error
    return cls(
        error.message,
        vendor=error.vendor,
        status=error.status,
        retryable=retryable,
        retry_after=error.retry_after,
        error_type=error.error_type,
        error_code=error.error_code,
    )


def stream_error(data: Mapping[str, Any], vendor: GeminiVendor) -> VendorError:
    """An error object inside a 200 stream: classified by its code (500 when it has none)."""
    code = count(data["error"].get("code"))
    status = code if code >= 400 else 500
    info = error_info(data, status, b"")
    return gemini_error(status, info, quota_exhausted(data), vendor)
