"""Mistral's chat completions (docs.mistral.ai/api): OpenAI's shape with stricter rules.

``MistralVendor`` is ``OpenAIVendor`` with the ``mistral`` preset and the few translations the
official ``mistralai`` SDK showed to be needed against a strict fake:

* Tool-call ids must be exactly 9 characters ``[a-zA-Z0-9]`` (anything else: 400 "Tool call
  id was ... but must be a-z, A-Z, 0-9, with a length of 9"). Ids from another vendor (an
  OpenAI ``call_...`` after a fallback, a Cohere ``get_weather_abc...``) are mapped to 9
  characters by a hash, the same on the assistant's call and on the tool result that answers
  it; Mistral's own ids pass unchanged.
* Unknown fields are 422 "Extra inputs are not permitted": ``user`` and ``stream_options`` are
  never sent, and ``extra={"seed": n}`` is sent as Mistral's ``random_seed``. Mistral's own
  knobs (``safe_prompt``, ``random_seed``, ``min_tokens``, ``prompt_mode`` ...) go through
  ``Request.extra`` unchanged.
* A conversation ending with an assistant message is a prefill (``on_stream_break: resume``
  sends one): Mistral refuses it unless that message says ``"prefix": true``, so it does.
* ``finish_reason``: ``model_length`` -> length; ``error`` (the model failed mid-answer) is a
  retryable ``VendorServerError``. Usage arrives on the last chunk of a stream unasked.
* Errors: ``{"object": "error", "message": ..., "type": ..., "code": ...}`` where ``message``
  may be a string or a validation object (``{"detail": [{"loc", "msg", "type"}]}``), or the
  SDK's typed 422 ``{"detail": [...]}``; each becomes one readable message.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import VendorServerError
from ..limits import Limits
from ..types import FinishReason, Request, Response, StreamChunk
from .base import Secret
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, json_body
from .http_vendor import StreamDecoder
from .openai import OpenAIStreamDecoder, OpenAIVendor
from .presets import PRESETS

MISTRAL = PRESETS["mistral"]
_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_ALPHABET = string.ascii_letters + string.digits
# Fields of OpenAI's body that Mistral refuses (422 extra_forbidden).
_NOT_MISTRAL = ("user", "stream_options")


class MistralVendor(OpenAIVendor):
    """Mistral's API (``https://api.mistral.ai/v1``); the key is ``api_key`` else
    ``MISTRAL_API_KEY``, as the official SDK reads it."""

    model_prefixes = ("mistral-", "magistral-", "codestral-", "devstral-", "pixtral-", "ministral-")

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        name: str = "mistral",
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            name=name,
            preset=MISTRAL,
            connection=connection,
            limits=limits,
        )
        self.model_prefixes = type(self).model_prefixes

    @classmethod
    def from_env(cls) -> MistralVendor | None:
        return cls() if os.environ.get("MISTRAL_API_KEY") else None

    def build_body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        for key in _NOT_MISTRAL:
            body.pop(key, None)
        if "seed" in body:
            body.setdefault("random_seed", body.pop("seed"))
        for message in body["messages"]:
            for call in message.get("tool_calls") or ():
                call["id"] = mistral_tool_id(call["id"])
            if message.get("tool_call_id"):
                message["tool_call_id"] = mistral_tool_id(message["tool_call_id"])
        last = body["messages"][-1]
        if last["role"] == "assistant" and not last.get("tool_calls"):
            last["prefix"] = True  # a prefill (a resumed stream): Mistral needs it said
        return body

    def parse_response(self, data: Any, request: Request) -> Response:
        for choice in data.get("choices") or ():
            choice["finish_reason"] = self.finish_reason_of(choice.get("finish_reason"))
        return super().parse_response(data, request)

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return MistralStreamDecoder(self, request.model)

    def finish_reason_of(self, raw: Any) -> FinishReason | None:
        if raw == "error":
            raise VendorServerError(
                "Mistral ended the answer with finish_reason 'error'", vendor=self.name, status=200
            )
        return "length" if raw == "model_length" else raw

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return mistral_error_info(status, headers, body)


class MistralStreamDecoder(OpenAIStreamDecoder):
    """OpenAI's framing; a chunk whose finish_reason is ``error`` is the vendor failing."""

    def __init__(self, vendor: MistralVendor, model: str) -> None:
        super().__init__(vendor, model)
        self._mistral = vendor

    def _event(self, data: str) -> StreamChunk | None:
        if data.startswith("{") and '"finish_reason"' in data:
            data = _finish_fixed(data, self._mistral)
        return super()._event(data)


def _finish_fixed(data: str, vendor: MistralVendor) -> str:
    """The chunk with Mistral's finish reason as OpenAI's (``error`` raises)."""
    obj = orjson.loads(data)
    for choice in obj.get("choices") or ():
        if choice.get("finish_reason") is not None:
            choice["finish_reason"] = vendor.finish_reason_of(choice["finish_reason"])
    return orjson.dumps(obj).decode()


def mistral_tool_id(call_id: str) -> str:
    """``call_id`` if Mistral accepts it (9 characters, letters and digits), else 9 such
    characters derived from it, so the call and the result that answers it still pair."""
    if _ID.match(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def mistral_error_info(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    data = json_body(body)
    request_id = headers.get("x-request-id") or headers.get("mistral-correlation-id")
    if not isinstance(data, dict):
        return ErrorInfo(body_text(status, body), request_id=request_id)
    if isinstance(data.get("error"), dict):  # an OpenAI-shaped body from a proxy
        data = data["error"]
    message = data.get("message", data)
    code = data.get("code")
    return ErrorInfo(
        message=_readable(message) or body_text(status, body),
        error_type=data.get("type") if isinstance(data.get("type"), str) else None,
        code=str(code) if code is not None else None,
        request_id=request_id or data.get("request_id"),
    )


def _readable(message: Any) -> str:
    """A message string, or a pydantic-style ``{"detail": [{"loc", "msg"}]}`` as one line."""
    if isinstance(message, str):
        return message
    details = message.get("detail") if isinstance(message, dict) else None
    if not isinstance(details, list):
        return ""
    return "; ".join(
        f"{'.'.join(str(p) for p in d.get('loc') or ())}: {d.get('msg')}"
        for d in details
        if isinstance(d, dict)
    )
