"""Ollama's native chat API, ``POST /api/chat`` (Ollama's docs/api.md).

What differs from the OpenAI shape, handled here once:

* Ollama **streams unless told not to**: ``stream`` is always sent. Streams are NDJSON ending with
  a ``"done": true`` line (``done_reason`` and token counters); an ``{"error": ...}`` line fails.
* Sampling knobs live under ``options`` (a top-level ``temperature`` is silently ignored).
  ``Request.extra`` keys that are Ollama option names (every field of ``ollama.Options``:
  ``top_k``, ``seed``, ``num_ctx`` ...) go there, as does an ``extra["options"]`` mapping; other
  keys (``think``, ``keep_alive``, ``truncate`` ...) are top-level fields.
* ``content`` is one string (text parts joined with ``\\n``); images are bare base64 in
  ``images`` (https URLs cannot be sent: inline them as data URIs); tool-call ``arguments`` are
  objects; a tool result names its tool in ``tool_name``, looked up from its ``tool_call_id``.
* No ``tool_choice``: ``"auto"`` is the default, ``"none"`` sends no tools, forcing a call is
  refused before sending.

**Context overflow is silent by default**: Ollama truncates the prompt to ``num_ctx`` and answers
anyway. Set ``num_ctx`` large enough, or send ``extra={"truncate": False}`` (recent servers) to
get an error instead (``ContextLengthExceeded``).

**Vision is per model**: images go only to models in ``vision_models`` or named like a vision
model (``llava``, ``vision`` or ``vl`` in the name: ``llama3.2-vision``, ``qwen2.5vl``,
``qwen3-vl``); others are refused before sending. List e.g. ``gemma3`` in ``vision_models``.

**Errors** are ``{"error": "<sentence>"}`` without type or code, so they are classified by
status. The sentence is the only other signal, so two stable phrases refine it: a 429 "usage
limit" (Ollama cloud's session/weekly allowance, hours away) is not retried, and "exceeds the
context length" is ``ContextLengthExceeded``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from ..embeddings import EmbeddingRequest, Embeddings
from ..errors import (
    ConfigError,
    InvalidRequestError,
    UnsupportedRequest,
    VendorConnectionError,
    VendorError,
    VendorServerError,
)
from ..limits import Limits
from ..redaction import redact
from ..types import (
    FinishReason,
    ImagePart,
    Message,
    Request,
    Response,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import Capabilities, Health, Secret, secret_from
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, json_body
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .logprobs import as_choice_logprobs, entries_from_ollama
from .openai_fields import Feature, refuse_foreign
from .sse import NDJSONDecoder

DEFAULT_PORT = 11434
# Every field of ollama/_types.py ``Options``: these ``Request.extra`` keys go under ``options``.
# fmt: off
OPTION_NAMES = frozenset({
    "numa", "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv", "logits_all",
    "vocab_only", "use_mmap", "use_mlock", "embedding_only", "num_thread", "num_keep", "seed",
    "num_predict", "top_k", "top_p", "tfs_z", "typical_p", "repeat_last_n", "temperature",
    "repeat_penalty", "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau",
    "mirostat_eta", "penalize_newline", "stop",
})
# fmt: on
# Fields the adapter owns; ``Request.extra`` may not replace them.
OWNED_FIELDS = frozenset({"model", "messages", "stream"})
LOGPROBS: tuple[Feature, ...] = ("logprobs",)  # ollama SDK ``ChatRequest.logprobs``
# ``load``/``unload`` only answer empty requests; anything unknown ended normally.
DONE_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
VISION_MARKERS = ("llava", "vision", "vl")
# The two Ollama sentences that carry more than their status (see the module docstring).
QUOTA_PHRASE = "usage limit"
CONTEXT_PHRASE = "exceeds the context length"
_MODEL_IN_404 = re.compile(r"""model ["']([^"']+)["'] not found""")


class OllamaVendor(HttpVendor):
    """A local or remote Ollama server (or Ollama cloud), native ``/api/chat``.

    ``host`` is parsed like the official SDK does (``OLLAMA_HOST`` when not given): a bare
    host, ``host:port`` or a URL, default port 11434, default ``http://127.0.0.1:11434``.
    ``api_key`` (``OLLAMA_API_KEY``) is sent as ``Authorization: Bearer`` when set; a local
    server needs none. ``keep_alive`` (``"5m"``, seconds, ``-1``) and ``num_ctx`` are sent with
    every request unless ``Request.extra`` overrides them. ``connection.timeout`` (the
    per-attempt read timeout) defaults to 300 s: the first request loads the model into memory.
    """

    pricing_name = "ollama"

    default_name = "ollama"
    # Vision is per model (``supports_vision``); the flag says some models can.
    capabilities = Capabilities(
        streaming=True, tools=True, vision=True, json_mode=True, embeddings=True
    )
    # /api/embed documents no limit; this bounds one request's body and time.
    embed_batch_size = 512

    def __init__(
        self,
        *,
        host: str | None = None,
        name: str | None = None,
        api_key: str | Secret | None = None,
        keep_alive: float | str | None = None,
        num_ctx: int | None = None,
        vision_models: Sequence[str] | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(
            name=name or self.default_name,
            base_url=parse_host(host or os.environ.get("OLLAMA_HOST")),
            api_key=secret_from(api_key, "OLLAMA_API_KEY"),
            connection=connection,
            default_timeouts=(300.0, 5.0),  # a first request loads the model
        )
        self.keep_alive = keep_alive
        self.num_ctx = num_ctx
        self.vision_models = frozenset(vision_models or ())
        self._headers = self._build_headers()
        self.limits = limits or Limits()

    @classmethod
    def from_env(cls) -> OllamaVendor | None:
        return cls() if os.environ.get("OLLAMA_HOST") else None

    def _build_headers(self) -> dict[str, str]:
        # As the SDK: caller headers first, content type fixed, and the key only when the
        # caller did not bring their own Authorization header.
        headers = {**self.extra_headers, "Content-Type": "application/json"}
        headers["Accept"] = "application/json"
        given = {k.lower() for k in headers}
        if self.api_key and "authorization" not in given:
            headers["Authorization"] = f"Bearer {self.api_key.reveal()}"
        return headers

    def secrets(self) -> tuple[str, ...]:
        found = [self.api_key.reveal()] if self.api_key else []
        found += [
            value.partition(" ")[2] or value
            for key, value in self.extra_headers.items()
            if key.lower() == "authorization"
        ]
        return tuple(found)

    # --- capabilities ----------------------------------------------------------------------
    def supports_vision(self, model: str) -> bool:
        """Listed in ``vision_models`` (with or without its tag), or named like a vision model."""
        if model in self.vision_models or model.partition(":")[0] in self.vision_models:
            return True
        return any(marker in model.lower() for marker in VISION_MARKERS)

    def check(self, request: Request) -> None:
        refuse_foreign(
            request, self.name, "Ollama chat", features=LOGPROBS, understood=OPTION_NAMES
        )
        super().check(request)
        images = [part for message in request.message_list for part in message.images]
        if images and not self.supports_vision(request.model):
            raise UnsupportedRequest(
                f"Ollama model {request.model!r} is not known to take images: list it in "
                f"vision_models= of vendor {self.name!r} if it does, or use a vision model",
                vendor=self.name,
            )
        for part in images:
            image_data(part, self.name)
        tools_for(request, self.name)

    # --- request -----------------------------------------------------------------------------
    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        body = orjson.dumps(self.build_body(request, stream=stream))
        return HttpCall(f"{self.base_url}/api/chat", self._headers, body)

    def build_embed_call(self, request: EmbeddingRequest) -> HttpCall:
        body: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return HttpCall(f"{self.base_url}/api/embed", self._headers, orjson.dumps(body))

    def parse_embeddings(self, data: Any, request: EmbeddingRequest) -> Embeddings:
        vectors = [[float(x) for x in vector] for vector in data["embeddings"]]
        tokens = count(data.get("prompt_eval_count"))
        usage = Usage(tokens, 0, tokens) if tokens else None
        return Embeddings(vectors, data.get("model") or request.model, usage)

    def build_body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages_to_ollama(request.message_list, self.name),
            "stream": stream,
        }
        tools = tools_for(request, self.name)
        if tools:
            body["tools"] = tools
        response_format = format_for(request.response_format, self.name)
        if response_format is not None:
            body["format"] = response_format
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs is not None:
                body["top_logprobs"] = request.top_logprobs
        options = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "num_predict": request.max_tokens,
            "stop": list(request.stop_list) or None,
            "num_ctx": self.num_ctx,
        }
        options = {k: v for k, v in options.items() if v is not None}
        for key, value in (request.extra or {}).items():
            if key in OWNED_FIELDS:
                continue
            if key == "options" and isinstance(value, Mapping):
                options.update(value)
            elif key in OPTION_NAMES:
                options[key] = value
            else:
                body[key] = value
        if options:
            body["options"] = options
        return body

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict):
            raise VendorServerError("the response has no message", vendor=self.name)
        calls = tool_calls_from(message.get("tool_calls"), 0)
        return Response(
            content=message.get("content") or "",
            vendor=self.name,
            model=data.get("model") or request.model,
            finish_reason=map_done_reason(data.get("done_reason"), bool(calls)),
            usage=usage_from_ollama(data),
            tool_calls=calls,
            raw=data,
            logprobs=as_choice_logprobs(entries_from_ollama(data.get("logprobs"))),
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return OllamaStreamDecoder(self, request.model)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        message = error_message(status, body)
        if status == 429 and QUOTA_PHRASE in message:
            return ErrorInfo(message, code="insufficient_quota")
        if CONTEXT_PHRASE in message:
            return ErrorInfo(message, code="context_length_exceeded")
        if status == 404:
            return ErrorInfo(self._not_found_hint(message))
        return ErrorInfo(message)

    def _not_found_hint(self, message: str) -> str:
        found = _MODEL_IN_404.search(message)
        if found:
            return f"{message}: run `ollama pull {found.group(1)}` on the Ollama host"
        return f"{message}: check the host ({self.base_url}) and that the model is pulled"

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        result = await self.get(f"{self.base_url}/api/tags", self._headers)
        data = decode_json(result.body, self.name)
        models = data.get("models") if isinstance(data, dict) else None
        return sorted(str(m.get("name") or m.get("model")) for m in models or ())

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            result = await self.get(f"{self.base_url}/api/version", self._headers)
            data = decode_json(result.body, self.name)
        except VendorError as exc:
            return Health(False, time.perf_counter() - started, str(exc))
        version = data.get("version") if isinstance(data, dict) else None
        detail = f"ollama {version}" if version else "ok"
        return Health(True, time.perf_counter() - started, detail)


class OllamaStreamDecoder:
    """NDJSON lines until the one with ``"done": true``; an ``error`` line is an error."""

    def __init__(self, vendor: OllamaVendor, model: str) -> None:
        self._vendor = vendor
        self._model = model
        self._lines = NDJSONDecoder(vendor.max_line)
        self._calls = 0
        self._done = False

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for line in self._lines.feed(data):
            chunk = self._line(line)
            if chunk is not None:
                yield chunk

    def finish(self) -> Iterator[StreamChunk]:
        for line in self._lines.flush():
            chunk = self._line(line)
            if chunk is not None:
                yield chunk
        if not self._done:
            raise VendorConnectionError(
                "the stream ended before its final done:true line", vendor=self._vendor.name
            )

    def _line(self, line: bytes) -> StreamChunk | None:
        if self._done:
            return None
        obj = decode_json(line, self._vendor.name)
        if not isinstance(obj, dict):
            raise VendorServerError(
                f"unexpected stream line: {line[:200]!r}", vendor=self._vendor.name
            )
        if obj.get("error"):
            # An error after the 200 is the runner failing mid-answer: retryable until text
            # reached the caller (the dispatcher decides that).
            error = redact(str(obj["error"]), self._vendor.secrets())
            raise VendorServerError(f"error inside the stream: {error}", vendor=self._vendor.name)
        self._model = obj.get("model") or self._model
        message = obj.get("message") or {}
        calls = tool_calls_from(message.get("tool_calls"), self._calls)
        deltas = tuple(
            ToolCallDelta(self._calls + k, c.id, c.name, c.arguments) for k, c in enumerate(calls)
        )
        self._calls += len(calls)
        finish: FinishReason | None = None
        usage: Usage | None = None
        if obj.get("done"):
            self._done = True
            finish = map_done_reason(obj.get("done_reason"), self._calls > 0)
            usage = usage_from_ollama(obj)
        text = message.get("content") or ""
        logprobs = entries_from_ollama(obj.get("logprobs"))
        if not text and not deltas and finish is None and not logprobs:
            return None
        return StreamChunk(
            delta=text,
            tool_call_deltas=deltas,
            finish_reason=finish,
            usage=usage,
            vendor=self._vendor.name,
            model=self._model,
            logprobs=logprobs,
        )


# --- translation helpers ---------------------------------------------------------------------
def parse_host(host: str | None) -> str:
    """``OLLAMA_HOST`` as the official SDK reads it (ollama/_client.py ``_parse_host``):
    ``None``/``""`` -> ``http://127.0.0.1:11434``; ``example.com`` -> ``http://example.com:11434``;
    ``https://example.com`` -> ``https://example.com:443``; a path is kept, slashes trimmed."""
    host, port = host or "", DEFAULT_PORT
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    try:
        port = split.port or port
    except ValueError:
        raise ConfigError(f"Ollama host {host!r} has an invalid port") from None
    name = split.hostname or "127.0.0.1"
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"  # urlsplit drops the brackets an IPv6 literal needs in a URL
    except ValueError:
        pass
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}/{path}" if path else f"{scheme}://{name}:{port}"


def messages_to_ollama(messages: Sequence[Message], vendor: str) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id -> tool name, from the assistant turns so far
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": _text(message)}
        if message.images:
            item["images"] = [image_data(part, vendor) for part in message.images]
        if message.tool_calls:
            item["tool_calls"] = [
                {"function": {"name": c.name, "arguments": tool_arguments(c, vendor)}}
                for c in message.tool_calls
            ]
            names.update((c.id, c.name) for c in message.tool_calls)
        if message.role == "tool":
            item["tool_name"] = _tool_name(message, names, vendor)
        out.append(item)
    return out


def _text(message: Message) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def _tool_name(message: Message, names: Mapping[str, str], vendor: str) -> str:
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise InvalidRequestError(
            f"tool message answers call {message.tool_call_id!r}, which no earlier assistant "
            "message made: Ollama needs the tool's name (send the assistant turn with its "
            "tool_calls, or set name= on the tool message)",
            vendor=vendor,
        )
    return name


def image_data(part: ImagePart, vendor: str) -> str:
    """The bare base64 Ollama takes, from a ``data:`` URI."""
    if not part.is_data_uri:
        raise UnsupportedRequest(
            "Ollama cannot fetch image URLs: download the image and pass it inline as a "
            "data:image/<type>;base64,<data> URI",
            vendor=vendor,
        )
    try:
        return part.data_uri_parts()[1]
    except ValueError as exc:
        raise InvalidRequestError(str(exc), vendor=vendor) from None


def tool_arguments(call: ToolCall, vendor: str) -> dict[str, Any]:
    try:
        arguments = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(
            f"tool call {call.id!r} ({call.name}): arguments must be a JSON object string "
            f"(Ollama takes them as an object), got {call.arguments[:80]!r}",
            vendor=vendor,
        )
    return arguments


def tools_for(request: Request, vendor: str) -> list[dict[str, Any]]:
    choice = request.tool_choice
    if choice is None or choice == "auto":
        return [tool.to_openai() for tool in request.tool_list]
    if choice == "none":
        return []
    raise UnsupportedRequest(
        f"Ollama cannot force a tool call (tool_choice={choice!r}): use tool_choice='auto', "
        "or route this request to a vendor that can",
        vendor=vendor,
    )


def format_for(
    response_format: Mapping[str, Any] | None, vendor: str
) -> str | dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, Mapping):
            return dict(schema)
        raise InvalidRequestError(
            "response_format json_schema needs json_schema.schema (a JSON Schema object)",
            vendor=vendor,
        )
    if kind == "text":
        return None
    raise InvalidRequestError(
        f"response_format type {kind!r} is not one of text, json_object, json_schema",
        vendor=vendor,
    )


def tool_calls_from(raw: Any, first_index: int) -> tuple[ToolCall, ...]:
    """Ollama tool calls (arguments as objects) as ours (JSON strings). Older servers send no
    ``id``: one is made up from the call's position in the answer, ``call_<n>``."""
    calls = []
    for k, item in enumerate(raw or ()):
        fn = item.get("function") or {}
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        call_id = item.get("id") or f"call_{first_index + k}"
        calls.append(ToolCall(id=str(call_id), name=str(fn.get("name") or ""), arguments=arguments))
    return tuple(calls)


def map_done_reason(raw: str | None, has_tool_calls: bool) -> FinishReason:
    if has_tool_calls and raw in (None, "stop"):
        return "tool_calls"
    return DONE_REASONS.get(raw or "stop", "stop")


def usage_from_ollama(data: Mapping[str, Any]) -> Usage:
    # prompt_eval_count is absent when the whole prompt came from the server's cache.
    prompt = count(data.get("prompt_eval_count"))
    completion = count(data.get("eval_count"))
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def error_message(status: int, body: bytes) -> str:
    data = json_body(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return body_text(status, body)
