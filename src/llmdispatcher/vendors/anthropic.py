"""Anthropic Messages API: ``POST {base}/v1/messages``, ``GET /v1/models``
(docs.anthropic.com/en/api/messages).

Request translation lives in ``anthropic_request``. Here:

* ``max_tokens`` is mandatory for Anthropic: ``default_max_tokens`` fills it in.
* Sampling: API version 2023-06-01 takes ``temperature`` 0-1 and ``top_p``; 2026-10-21 has
  neither, so they are dropped there (with a one-time warning) and never sent.
* Responses: text blocks -> text, ``tool_use`` blocks -> tool calls (input as a JSON string),
  the ``json_object`` tool's input -> text; usage counts cache reads and writes into the prompt.
* Errors: a 402 ``billing_error`` or a spend-limit 429 is a quota exhausted (RateLimitError,
  not retried). "prompt is too long" has no distinct Anthropic type or code (it is a plain
  ``invalid_request_error``) and messages are never matched, so it stays InvalidRequestError.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import (
    ConfigError,
    RateLimitError,
    UnsupportedRequest,
    VendorConnectionError,
    VendorError,
)
from ..limits import Limits
from ..types import (
    FinishReason,
    Request,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .anthropic_request import JSON_TOOL, translate, wants_json_tool
from .base import Capabilities, Health, Secret, missing_setting, secret_from
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, error_for, json_body
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .openai_fields import refuse_foreign
from .sse import SSEDecoder, SSEEvent
from .transport import HttpRequest

logger = logging.getLogger("llmdispatcher")

# From this API version on, temperature/top_p/top_k are gone (400 "Extra inputs are not permitted").
SAMPLING_REMOVED_IN = "2026-10-21"
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The status each error type comes with, for an ``event: error`` inside a 200 stream.
STREAM_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "timeout_error": 408,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
# 429 codes (anthropic SDK ``error.details.error_code``) for a spending cap: waiting cannot help.
SPEND_LIMIT_CODES = frozenset({"contract_spend_limit_reached", "enforced_spend_limit_reached"})
# Fields the adapter owns; ``Request.extra`` may not replace them.
OWNED_FIELDS = frozenset({"model", "messages", "stream"})
# The body fields ``count_tokens`` takes of what ``translate`` gives (not the generation ones).
COUNTED = frozenset({"messages", "system", "tools", "tool_choice", "output_config"})
# OpenAI's ``service_tier`` values with an Anthropic equivalent (and Anthropic's own).
SERVICE_TIERS = {"auto": "auto", "default": "standard_only", "standard_only": "standard_only"}


class AnthropicVendor(HttpVendor):
    """Anthropic's Messages API.

    ``base_url`` has no ``/v1`` (as in the official SDK); ``api_version`` is sent as
    ``anthropic-version``; ``default_max_tokens`` is used when a request sets no ``max_tokens``.
    """

    pricing_name = "anthropic"

    default_name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    model_prefixes = ("claude-",)
    capabilities = Capabilities(streaming=True, tools=True, vision=True, json_mode=True)

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        name: str | None = None,
        api_version: str = "2023-06-01",
        default_max_tokens: int = 4096,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        key = secret_from(api_key, "ANTHROPIC_API_KEY")
        vendor_name = name or self.default_name
        _check_settings(vendor_name, key, api_version, default_max_tokens)
        super().__init__(
            name=vendor_name,
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or self.default_base_url,
            api_key=key,
            connection=connection,
        )
        self.api_version = api_version
        self.default_max_tokens = default_max_tokens
        self._warned_sampling = False
        # x-api-key is the documented header (the SDK sends Bearer; the API takes both).
        self._headers = {
            "x-api-key": key.reveal(),
            "anthropic-version": api_version,
            "content-type": "application/json",
            "accept": "application/json",
            **self.extra_headers,
        }
        self.limits = limits or Limits()

    @classmethod
    def from_env(cls) -> AnthropicVendor | None:
        return cls() if os.environ.get("ANTHROPIC_API_KEY") else None

    # --- request -----------------------------------------------------------------------------
    def check(self, request: Request) -> None:
        refuse_foreign(
            request,
            self.name,
            "Anthropic Messages",
            features=("strict", "parallel_tool_calls"),
            understood=("service_tier",),
        )
        tier = (request.extra or {}).get("service_tier")
        if tier is not None and tier not in SERVICE_TIERS:
            raise UnsupportedRequest(
                f"request.service_tier: Anthropic has {', '.join(SERVICE_TIERS)}, not {tier!r}",
                vendor=self.name,
            ).naming("service_tier")
        super().check(request)

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        body = orjson.dumps(self.build_body(request, stream=stream))
        return HttpCall(f"{self.base_url}/v1/messages", self._headers, body)

    def build_body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            **translate(request, self.name),
        }
        body.update(self._sampling(request))
        if stream:
            body["stream"] = True
        for key, value in (request.extra or {}).items():
            if key not in OWNED_FIELDS:
                body[key] = SERVICE_TIERS.get(value, value) if key == "service_tier" else value
        return body

    def _sampling(self, request: Request) -> dict[str, float]:
        pairs = (("temperature", request.temperature), ("top_p", request.top_p))
        given = {k: v for k, v in pairs if v is not None}
        if not given:
            return {}
        if self.api_version >= SAMPLING_REMOVED_IN:
            if not self._warned_sampling:
                self._warned_sampling = True
                logger.warning(
                    "vendor %r: Anthropic API version %s takes no %s; dropping it "
                    "(pin api_version='2023-06-01' to send sampling parameters)",
                    self.name,
                    self.api_version,
                    " or ".join(given),
                )
            return {}
        temperature = given.get("temperature")
        if temperature is not None and temperature > 1:
            raise UnsupportedRequest(
                f"request.temperature: Anthropic takes 0 to 1, not {temperature:g}; lower it or "
                "route the request to a vendor that takes up to 2",
                vendor=self.name,
            )
        return given

    async def count_tokens(self, request: Request) -> int:
        """The prompt's input tokens, as ``POST /v1/messages/count_tokens`` counts them."""
        fields = translate(request, self.name)
        body = {"model": request.model, **{k: v for k, v in fields.items() if k in COUNTED}}
        url = f"{self.base_url}/v1/messages/count_tokens"
        result = await self.fetch(HttpRequest("POST", url, self._headers, orjson.dumps(body)))
        return count(decode_json(result.body, self.name).get("input_tokens"))

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        json_tool = JSON_TOOL if wants_json_tool(request) else None
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in data.get("content") or ():
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                if block.get("name") == json_tool:
                    text.append(arguments)
                else:
                    calls.append(ToolCall(block.get("id") or "", block["name"], arguments))
        return Response(
            content="".join(text),
            vendor=self.name,
            model=data.get("model") or request.model,
            finish_reason=map_stop_reason(data.get("stop_reason"), bool(calls)),
            usage=usage_from_anthropic(data.get("usage")),
            tool_calls=tuple(calls),
            raw=data,
            id=data.get("id"),
            stop_sequence=data.get("stop_sequence"),
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        json_tool = JSON_TOOL if wants_json_tool(request) else None
        return AnthropicStreamDecoder(self, request.model, json_tool)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return anthropic_error_info(status, headers, body)

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> VendorError:
        return refine_error(super()._error(status, headers, body))

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        ids: list[str] = []
        url = f"{self.base_url}/v1/models"
        while True:
            data = decode_json((await self.get(url, self._headers)).body, self.name)
            ids += [str(m.get("id")) for m in data.get("data") or []]
            last = data.get("last_id")
            if not data.get("has_more") or not last:
                return sorted(ids)
            url = f"{self.base_url}/v1/models?after_id={quote(str(last))}"

    async def health(self) -> Health:
        return await self.timed_health(f"{self.base_url}/v1/models?limit=1", self._headers)


@dataclass(slots=True)
class _Block:
    """A content block being streamed: ``kind`` is text, tool, json (the JSON-mode tool) or
    other (thinking, server tools: not passed on)."""

    kind: str
    ordinal: int = 0
    has_input: bool = False


class AnthropicStreamDecoder:
    """Named SSE events from ``message_start`` to ``message_stop``; ``error`` is an error."""

    def __init__(self, vendor: AnthropicVendor, model: str, json_tool: str | None) -> None:
        self._vendor = vendor
        self._model = model
        self._json_tool = json_tool
        self._sse = SSEDecoder(vendor.max_line)
        self._done = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for event in self._sse.feed(data):
            yield from self._event(event)

    def finish(self) -> Iterator[StreamChunk]:
        for event in self._sse.flush():
            yield from self._event(event)
        if not self._done:
            raise VendorConnectionError(
                "the stream ended before message_stop", vendor=self._vendor.name
            )

    def _event(self, event: SSEEvent) -> Iterator[StreamChunk]:
        # One ``_on_<event name>`` method per event; ping and names we do not know are skipped.
        handler: Callable[[Any], StreamChunk | None] | None = getattr(
            self, f"_on_{event.event}", None
        )
        if self._done or handler is None:
            return
        chunk = handler(decode_json(event.data.encode(), self._vendor.name))
        if chunk is not None:
            yield chunk

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor.name, model=self._model, **fields)

    def _tool_delta(
        self, block: _Block, fragment: str, head: dict[str, Any] | None = None
    ) -> StreamChunk:
        if block.kind == "json":
            return self._chunk(delta=fragment)
        call_id, name = (head.get("id") or "", head.get("name") or "") if head else (None, None)
        return self._chunk(
            tool_call_deltas=(ToolCallDelta(block.ordinal, call_id, name, fragment),)
        )

    def _on_message_start(self, data: Any) -> StreamChunk | None:
        message = data.get("message") or {}
        self._model = message.get("model") or self._model
        # output_tokens here is a placeholder; message_delta carries the real, cumulative count.
        usage = message.get("usage") or {}
        self._usage = {k: v for k, v in usage.items() if k != "output_tokens"}
        return None

    def _on_content_block_start(self, data: Any) -> StreamChunk | None:
        content = data.get("content_block") or {}
        kind = content.get("type")
        if kind == "text":
            self._blocks[data.get("index", 0)] = _Block("text")
            return self._chunk(delta=content["text"]) if content.get("text") else None
        if kind != "tool_use":
            self._blocks[data.get("index", 0)] = _Block("other")
            return None
        if content.get("name") == self._json_tool:
            self._blocks[data.get("index", 0)] = _Block("json")
            return None
        block = self._blocks[data.get("index", 0)] = _Block("tool", self._tools)
        self._tools += 1
        return self._tool_delta(block, "", content)

    def _on_content_block_delta(self, data: Any) -> StreamChunk | None:
        block = self._blocks.get(data.get("index", 0))
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk(delta=delta["text"])
        if kind != "input_json_delta" or block is None or not delta.get("partial_json"):
            return None  # thinking, signatures, citations: not part of the answer's text
        block.has_input = True
        return self._tool_delta(block, delta["partial_json"])

    def _on_content_block_stop(self, data: Any) -> StreamChunk | None:
        block = self._blocks.get(data.get("index", 0))
        if block is None or block.kind not in ("tool", "json") or block.has_input:
            return None
        # A tool without arguments streams no JSON at all; the joined arguments must be JSON.
        return self._tool_delta(block, "{}")

    def _on_message_delta(self, data: Any) -> StreamChunk | None:
        usage = data.get("usage") or {}
        # Counts here are cumulative totals: they replace, never add to, message_start's.
        self._usage.update((k, v) for k, v in usage.items() if v is not None)
        delta = data.get("delta") or {}
        return self._chunk(
            finish_reason=map_stop_reason(delta.get("stop_reason"), self._tools > 0),
            usage=usage_from_anthropic(self._usage),
            stop_sequence=delta.get("stop_sequence"),
        )

    def _on_message_stop(self, data: Any) -> StreamChunk | None:
        self._done = True
        return None

    def _on_error(self, data: Any) -> StreamChunk | None:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            info = error_info_from_body(data, None)
        else:
            info = ErrorInfo(f"the stream sent an error event: {str(data)[:200]}")
        # The HTTP status was 200; the status the error type stands for decides retrying
        # (overloaded_error -> 529, retryable until text reached the caller).
        status = STREAM_ERROR_STATUS.get(info.error_type or "", 500)
        vendor = self._vendor
        raise refine_error(error_for(status, info, vendor=vendor.name, secrets=vendor.secrets()))


def _check_settings(name: str, key: Secret, api_version: str, default_max_tokens: int) -> None:
    if not key:
        raise missing_setting("ANTHROPIC_API_KEY", "api_key", name)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", api_version):
        raise ConfigError(
            f"api_version {api_version!r} is not an Anthropic API version (YYYY-MM-DD, "
            f"e.g. '2023-06-01' or '{SAMPLING_REMOVED_IN}') (vendor {name!r})"
        )
    if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int):
        raise ConfigError(f"default_max_tokens must be a positive integer (vendor {name!r})")
    if default_max_tokens < 1:
        raise ConfigError(f"default_max_tokens must be a positive integer (vendor {name!r})")


def map_stop_reason(raw: str | None, has_tool_calls: bool) -> FinishReason | None:
    if raw is None:
        return "tool_calls" if has_tool_calls else None
    if raw == "tool_use" and not has_tool_calls:
        return "stop"  # the JSON-mode tool: its input is the answer's text
    return STOP_REASONS.get(raw, "stop")


def usage_from_anthropic(data: Mapping[str, Any] | None) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes; ours includes them."""
    if not data:
        return Usage()
    written = count(data.get("cache_creation_input_tokens"))
    read = count(data.get("cache_read_input_tokens"))
    prompt = count(data.get("input_tokens")) + written + read
    completion = count(data.get("output_tokens"))
    details = data.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        reasoning_tokens=count(details.get("thinking_tokens")),
        cache_write_tokens=written,
    )


def anthropic_error_info(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    data = json_body(body)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return error_info_from_body(data, headers.get("request-id"))
    return ErrorInfo(body_text(status, body), request_id=headers.get("request-id"))


def error_info_from_body(data: Mapping[str, Any], request_id: str | None) -> ErrorInfo:
    error = data["error"]
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return ErrorInfo(
        message=str(error.get("message") or "no message"),
        error_type=error.get("type"),
        code=code if isinstance(code, str) else None,
        request_id=request_id or data.get("request_id"),
    )


def refine_error(error: VendorError) -> VendorError:
    """What the status table cannot know: a 402 ``billing_error`` or a spending cap is a quota
    exhausted (RateLimitError, not retried, another vendor may answer), not a bad request."""
    spent = error.status == 402 or error.error_type == "billing_error"
    if not (spent or error.error_code in SPEND_LIMIT_CODES):
        return error
    return RateLimitError(
        error.message,
        vendor=error.vendor,
        status=error.status,
        retryable=False,
        retry_after=error.retry_after,
        error_type=error.error_type,
        error_code=error.error_code,
        request_id=error.request_id,
    )
