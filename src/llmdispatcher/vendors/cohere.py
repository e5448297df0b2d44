"""Cohere v2 chat: ``POST {base}/v2/chat``, ``GET {base}/v1/models`` (docs.cohere.com/v2).

Request translation lives in ``cohere_request``. Here:

* Responses: ``message.content`` text parts -> text (``thinking`` parts and the ``tool_plan``
  are left in ``Response.raw``), ``message.tool_calls`` -> tool calls.
* ``finish_reason``: ``COMPLETE``/``STOP_SEQUENCE`` -> stop, ``MAX_TOKENS`` -> length,
  ``TOOL_CALL`` -> tool_calls; ``ERROR`` and ``TIMEOUT`` are the vendor failing, raised as a
  retryable ``VendorServerError`` / ``VendorTimeout`` (also at the end of a stream).
* Usage: ``billed_units`` (what Cohere bills, so what cost is computed from), else ``tokens``
  (what the model processed, prompt template included); ``cached_tokens`` as cached.
* Streams: SSE whose ``data`` carries a ``type`` (``message-start``, ``content-delta``,
  ``tool-call-start``/``-delta``/``-end``, ``message-end`` ...); the SDK ignores the SSE event
  name and so do we. The stream must end with ``message-end``.
* Errors: ``{"id": ..., "message": ...}``; Cohere has no error type or code, so the status
  decides (498 "invalid token" is an authentication failure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import VendorError, VendorServerError, VendorTimeout
from ..limits import Limits
from ..types import FinishReason, Request, Response, StreamChunk, ToolCall, ToolCallDelta, Usage
from .base import Capabilities, Health, Secret, missing_setting, secret_from
from .cohere_request import cohere_body
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, json_body
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .sse import SSEChunkDecoder

DEFAULT_BASE_URL = "https://api.cohere.com"
FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
# finish reasons that mean the answer failed, and the error raised for each
FAILED: dict[str, type[VendorError]] = {"ERROR": VendorServerError, "TIMEOUT": VendorTimeout}


class CohereVendor(HttpVendor):
    """Cohere's v2 chat API. The key is ``api_key``, else ``CO_API_KEY``, else
    ``COHERE_API_KEY`` (as the official SDK reads them); ``base_url`` (no ``/v2``), else
    ``CO_API_URL``, else ``https://api.cohere.com``."""

    capabilities = Capabilities(streaming=True, tools=True, vision=True, json_mode=True)
    model_prefixes = ("command-", "c4ai-")
    pricing_name = "cohere"

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        name: str = "cohere",
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        key = secret_from(api_key, "CO_API_KEY", "COHERE_API_KEY")
        if not key:
            raise missing_setting("CO_API_KEY", "api_key", name)
        url = base_url or os.environ.get("CO_API_URL") or DEFAULT_BASE_URL
        super().__init__(name=name, base_url=url, api_key=key, connection=connection)
        self.limits = limits or Limits()
        self._headers = {
            "Authorization": f"Bearer {key.reveal()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.extra_headers,
        }

    @classmethod
    def from_env(cls) -> CohereVendor | None:
        found = os.environ.get("CO_API_KEY") or os.environ.get("COHERE_API_KEY")
        return cls() if found else None

    # --- translation --------------------------------------------------------------------------
    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        body = cohere_body(request, stream=stream, vendor=self.name)
        headers = {**self._headers, "Accept": "text/event-stream"} if stream else self._headers
        return HttpCall(f"{self.base_url}/v2/chat", headers, orjson.dumps(body))

    def parse_response(self, data: Any, request: Request) -> Response:
        message = data.get("message") or {}
        tool_calls = tuple(
            ToolCall(
                id=c.get("id") or "",
                name=c["function"]["name"],
                arguments=c["function"].get("arguments") or "{}",
            )
            for c in message.get("tool_calls") or ()
        )
        text = "".join(
            part.get("text") or ""
            for part in message.get("content") or ()
            if part.get("type") == "text"
        )
        return Response(
            content=text,
            vendor=self.name,
            model=request.model,
            finish_reason=self.finish_reason_of(data.get("finish_reason"), data, bool(tool_calls)),
            usage=usage_from_cohere(data.get("usage")),
            tool_calls=tool_calls,
            raw=data,
            id=data.get("id"),
        )

    def finish_reason_of(self, raw: Any, where: Mapping[str, Any], tools: bool) -> FinishReason:
        """Cohere's ``finish_reason`` as ours; ``ERROR``/``TIMEOUT`` raise (``where`` holds the
        ``error`` text Cohere may send with them)."""
        failed = FAILED.get(str(raw))
        if failed is not None:
            detail = where.get("error") or f"the answer ended with finish_reason {raw}"
            raise failed(str(detail), vendor=self.name, status=200)
        if raw is None:
            return "tool_calls" if tools else "stop"
        return FINISH_REASONS.get(str(raw), "stop")

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return CohereStreamDecoder(self, request.model)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        data = json_body(body)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return ErrorInfo(data["message"], request_id=data.get("id"))
        return ErrorInfo(body_text(status, body))

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        url = f"{self.base_url}/v1/models?endpoint=chat&page_size=1000"
        result = await self.get(url, self._headers)
        data = decode_json(result.body, self.name)
        return sorted(str(m.get("name")) for m in data.get("models") or [])

    async def health(self) -> Health:
        return await self.timed_health(f"{self.base_url}/v1/models?page_size=1", self._headers)


class CohereStreamDecoder(SSEChunkDecoder):
    """SSE frames from ``message-start`` to ``message-end``, dispatched on the JSON ``type``."""

    terminal = "message-end"

    def __init__(self, vendor: CohereVendor, model: str) -> None:
        super().__init__(vendor.name, vendor.max_line)
        self._vendor = vendor
        self._model = model

    def _event(self, data: str) -> StreamChunk | None:
        if self._done or not data:
            return None
        if data == "[DONE]":
            self._done = True
            return None
        obj = decode_json(data.encode(), self._vendor.name)
        kind = obj.get("type")
        message = (obj.get("delta") or {}).get("message") or {}
        if kind in ("content-start", "content-delta"):
            content = message.get("content") or {}
            text = content.get("text") if content.get("type", "text") == "text" else None
            return self._chunk(delta=text) if text else None
        if kind in ("tool-call-start", "tool-call-delta"):
            call = message.get("tool_calls") or {}
            fn = call.get("function") or {}
            start = kind == "tool-call-start"
            piece = ToolCallDelta(
                index=count(obj.get("index")),
                id=(call.get("id") or "") if start else None,
                name=(fn.get("name") or "") if start else None,
                arguments=fn.get("arguments") or "",
            )
            return self._chunk(tool_call_deltas=(piece,))
        if kind == "message-end":
            self._done = True
            delta = obj.get("delta") or {}
            finish = self._vendor.finish_reason_of(delta.get("finish_reason"), delta, tools=False)
            return self._chunk(finish_reason=finish, usage=usage_from_cohere(delta.get("usage")))
        return None  # message-start, *-end, tool-plan-delta, citations, debug

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor.name, model=self._model, **fields)


def usage_from_cohere(data: Mapping[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    counted = data.get("billed_units") or data.get("tokens") or {}
    prompt = count(counted.get("input_tokens"))
    completion = count(counted.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=count(data.get("cached_tokens")),
    )
