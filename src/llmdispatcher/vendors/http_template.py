"""A model server with its own JSON API, described entirely in configuration (type ``http``).

The description is an ``HttpTemplate`` (``http_template_spec.py``): the URL, the body with
``{{ placeholders }}`` for the request's fields, and the paths where the answer keeps its text,
finish reason, usage and error message, for plain answers and for SSE or NDJSON streams. In a
config file its fields sit flat on the vendor::

    vendors:
      tgi:
        type: http
        url: http://127.0.0.1:8080/generate
        api_key: ${HF_TOKEN}
        headers: {Authorization: "Bearer {{ api_key }}"}
        body: {inputs: "{{ prompt }}", parameters: {max_new_tokens: "{{ max_tokens }}"}}
        response: {text: generated_text}

What a template cannot do, it refuses before sending (``UnsupportedRequest``): tools and tool
messages, images, JSON mode (``capabilities``), and streams when ``stream.format`` is ``none``.
The secret is ``api_key``: it may appear in headers (``{{ api_key }}``) and is scrubbed from
every error, like every vendor's key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import ConfigError, UnsupportedRequest, VendorConnectionError
from ..limits import Limits
from ..types import FinishReason, Message, Request, Response, StreamChunk, Usage
from .base import Capabilities, Health, Secret, secret_from
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, error_for, json_body
from .http_template_spec import (
    FINISH_DEFAULTS,
    PLACEHOLDER,
    AnswerPaths,
    ErrorPaths,
    HttpTemplate,
    JsonPath,
    placeholders,
)
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .sse import NDJSONDecoder, SSEDecoder

_MISSING = object()  # a placeholder whose field the request does not have


class HttpTemplateVendor(HttpVendor):
    """A custom HTTP model server. ``template`` describes it; ``api_key`` is its secret (if
    any), used through ``{{ api_key }}`` in ``connection.headers`` or the body."""

    def __init__(
        self,
        *,
        name: str,
        template: HttpTemplate | None = None,
        api_key: str | Secret | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        if template is None:
            raise ConfigError(
                f"vendor {name!r} (type http): describe the server: url, body and response "
                "are required (see docs/vendors/http.md)"
            )
        super().__init__(
            name=name, base_url=template.url, api_key=secret_from(api_key), connection=connection
        )
        self.template = template
        # compiled once: a request only reads them
        self._answer = AnswerReader.of(template.response)
        self._errors = ErrorReader.of(template.error) if template.error else None
        self._split_system = template.uses("system")
        self.limits = limits or Limits()
        self.pricing_name = name
        self.capabilities = Capabilities(
            streaming=template.stream.format != "none", tools=False, vision=False, json_mode=False
        )
        self._headers = {"Content-Type": "application/json", **self._own_headers()}

    def _own_headers(self) -> dict[str, str]:
        """``connection.headers`` with ``{{ api_key }}`` filled in; a header naming a value
        this vendor does not have (no key given) is not sent at all, not sent half-empty."""
        fields = {"api_key": self.api_key.reveal() if self.api_key else None}
        return {
            name: str(fill(value, fields))
            for name, value in self.extra_headers.items()
            if all(fields.get(field) is not None for field in placeholders(value))
        }

    def serves(self, model: str) -> bool:
        return model in self.template.models

    def check(self, request: Request) -> None:
        super().check(request)
        if any(m.role == "tool" or m.tool_calls for m in request.message_list):
            raise UnsupportedRequest(
                f"vendor {self.name!r} (a custom HTTP server) cannot take tool calls or tool "
                "results: route this conversation to a vendor with tools",
                vendor=self.name,
            )

    # --- request ------------------------------------------------------------------------------
    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        template = self.template
        if stream and template.stream.format == "none":
            raise UnsupportedRequest(
                f"vendor {self.name!r} cannot stream (stream.format is none): send instead",
                vendor=self.name,
            )
        fields = self._fields(request, stream=stream)
        url = (template.stream.url if stream else None) or template.url
        url = PLACEHOLDER.sub(lambda m: quote(str(fields.get(m.group(1)) or ""), safe=""), url)
        body = fill(template.body, fields)
        return HttpCall(url, self._headers, orjson.dumps(body), template.method)

    def _fields(self, request: Request, *, stream: bool) -> dict[str, Any]:
        template = self.template
        messages = request.message_list
        system = [m.text for m in messages if m.role == "system"]
        chat = [m for m in messages if not (self._split_system and m.role == "system")]
        given = {
            "model": request.model,
            "prompt": render_prompt(template, chat),
            "system": "\n\n".join(system) if system else None,
            "messages": [{"role": m.role, "content": m.text} for m in messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop_list) or None,
            "stream": stream,
            "user": request.user,
            "api_key": self.api_key.reveal() if self.api_key else None,
        }
        given |= {f"extra.{k}": v for k, v in (request.extra or {}).items()}
        for name, value in template.defaults.items():
            if given.get(name) is None:
                given[name] = value
        return given

    # --- response -----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        return self.parse_answer(data, {}, request)

    def parse_answer(self, data: Any, headers: Mapping[str, str], request: Request) -> Response:
        answer = self._answer
        text = answer.text.read(data, headers)
        if not isinstance(text, str):
            raise ValueError(f"response.text ({answer.text.text}) is {type(text).__name__}")
        return Response(
            content=text,
            vendor=self.name,
            model=request.model,
            finish_reason=answer.finish(data, headers) or "stop",
            usage=answer.usage(data, headers),
            raw=data,
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return TemplateStreamDecoder(self, request.model)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        found = self.error_in(json_body(body))
        return found or ErrorInfo(body_text(status, body))

    def error_in(self, data: Any) -> ErrorInfo | None:
        """The error ``data`` reports at the template's ``error`` paths, if it reports one."""
        paths = self._errors
        if paths is None or data is None:
            return None
        message = paths.message.read(data)
        if message is None:
            return None
        kind = paths.type.read(data) if paths.type else None
        code = paths.code.read(data) if paths.code else None
        return ErrorInfo(
            str(message),
            error_type=None if kind is None else str(kind),
            code=None if code is None else str(code),
        )

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        return list(self.template.models)

    async def health(self) -> Health:
        if self.template.health_url is None:
            return await super().health()
        return await self.timed_health(self.template.health_url, self._headers)


class TemplateStreamDecoder:
    """SSE or NDJSON events read through the template's stream paths."""

    def __init__(self, vendor: HttpTemplateVendor, model: str) -> None:
        spec = vendor.template.stream
        assert spec.answer is not None  # StreamFormat checks it for sse and ndjson
        self._vendor = vendor
        self._model = model
        self._answer = AnswerReader.of(spec.answer)
        self._done_when = JsonPath.parse(spec.done_when, "done_when") if spec.done_when else None
        self._skip_when = JsonPath.parse(spec.skip_when, "skip_when") if spec.skip_when else None
        self._done_data = spec.done_data
        self._sse = SSEDecoder(vendor.max_line) if spec.format == "sse" else None
        self._lines = NDJSONDecoder(vendor.max_line) if spec.format == "ndjson" else None
        self._done = False

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        if self._sse is not None:
            for event in self._sse.feed(data):
                yield from self._frame(event.data)
        elif self._lines is not None:
            for line in self._lines.feed(data):
                yield from self._frame(line.decode("utf-8"))

    def finish(self) -> Iterator[StreamChunk]:
        frames = [e.data for e in self._sse.flush()] if self._sse is not None else []
        if self._lines is not None:
            frames = [line.decode("utf-8") for line in self._lines.flush()]
        for frame in frames:
            yield from self._frame(frame)
        if not self._done:
            raise VendorConnectionError(
                "the stream ended before its last event", vendor=self._vendor.name
            )

    def _frame(self, data: str) -> Iterator[StreamChunk]:
        if self._done or not data.strip():
            return
        if self._done_data is not None and data == self._done_data:
            self._done = True
            yield self._chunk(finish_reason="stop")
            return
        obj = decode_json(data.encode(), self._vendor.name)
        failed = self._vendor.error_in(obj)
        if failed is not None:  # an error after the 200: the vendor failing mid-answer
            raise error_for(500, failed, vendor=self._vendor.name, secrets=self._vendor.secrets())
        text = self._answer.text.read(obj)
        skipped = self._skip_when is not None and self._skip_when.read(obj) is True
        if isinstance(text, str) and text and not skipped:
            yield self._chunk(delta=text)
        if self._done_when is not None and self._done_when.read(obj) not in (None, False):
            self._done = True
            finish = self._answer.finish(obj, {}) or "stop"
            yield self._chunk(finish_reason=finish, usage=self._answer.usage(obj, {}))

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor.name, model=self._model, **fields)


def fill(template: Any, fields: Mapping[str, Any]) -> Any:
    """``template`` with its placeholders replaced; keys whose whole value is a missing field
    are left out."""
    if isinstance(template, Mapping):
        out = {k: fill(v, fields) for k, v in template.items()}
        return {k: v for k, v in out.items() if v is not _MISSING}
    if isinstance(template, list | tuple):
        return [v for v in (fill(item, fields) for item in template) if v is not _MISSING]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template.strip())
    if whole is not None:
        value = fields.get(whole.group(1))
        return _MISSING if value is None else value
    return PLACEHOLDER.sub(lambda m: _text(fields.get(m.group(1))), template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def render_prompt(template: HttpTemplate, messages: Sequence[Message]) -> str:
    """The messages as one prompt through ``prompt_format`` (each role's template)."""
    form = template.prompt_format
    pieces = [_one(getattr(form, m.role), m.text) for m in messages]
    return form.separator.join(pieces) + form.suffix


def _one(template: str, text: str) -> str:
    return PLACEHOLDER.sub(lambda _: text, template)


@dataclass(frozen=True, slots=True)
class AnswerReader:
    """``AnswerPaths`` compiled: reads the text, finish reason and usage of one answer."""

    text: JsonPath
    finish_reason: JsonPath | None
    prompt_tokens: JsonPath | None
    completion_tokens: JsonPath | None
    total_tokens: JsonPath | None
    finish_reasons: Mapping[str, str]

    @classmethod
    def of(cls, paths: AnswerPaths) -> AnswerReader:
        return cls(
            text=JsonPath.parse(paths.text, "text"),
            finish_reason=paths.path("finish_reason"),
            prompt_tokens=paths.path("prompt_tokens"),
            completion_tokens=paths.path("completion_tokens"),
            total_tokens=paths.path("total_tokens"),
            finish_reasons=paths.finish_reasons,
        )

    def finish(self, data: Any, headers: Mapping[str, str]) -> FinishReason | None:
        raw = self.finish_reason.read(data, headers) if self.finish_reason else None
        if raw is None:
            return None
        configured = self.finish_reasons.get(str(raw))
        if configured is not None:
            return configured  # type: ignore[return-value]  # AnswerPaths checks the values
        return FINISH_DEFAULTS.get(str(raw), "stop")

    def usage(self, data: Any, headers: Mapping[str, str]) -> Usage:
        def read(path: JsonPath | None) -> int:
            return count(path.read(data, headers)) if path is not None else 0

        prompt, completion = read(self.prompt_tokens), read(self.completion_tokens)
        return Usage(prompt, completion, read(self.total_tokens) or prompt + completion)


@dataclass(frozen=True, slots=True)
class ErrorReader:
    """``ErrorPaths`` compiled."""

    message: JsonPath
    type: JsonPath | None
    code: JsonPath | None

    @classmethod
    def of(cls, paths: ErrorPaths) -> ErrorReader:
        def parse(value: str | None, name: str) -> JsonPath | None:
            return JsonPath.parse(value, name) if value is not None else None

        return cls(
            JsonPath.parse(paths.message, "message"),
            parse(paths.type, "type"),
            parse(paths.code, "code"),
        )
