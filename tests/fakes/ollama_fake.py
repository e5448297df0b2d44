"""A strict fake of Ollama's native API: ``POST /api/chat``, ``GET /api/tags``, ``/api/version``.

Wire format per vendors.md §5 and Ollama's server (``server/routes.go``: ``ChatHandler``,
``handleScheduleError``, ``streamResponse``), checked with the official ``ollama`` SDK
(tests/test_fake_ollama_sdk.py). Usage::

    with FakeOllama() as fake:                       # no key, like a local server
        fake.enqueue(Reply(text="hi"), Fail("overloaded"))
        client = ollama.Client(host=fake.url)

Like the real server: ``stream`` defaults to true (NDJSON, ``application/x-ndjson``), sampling
knobs only under ``options``, ``content`` a string, images bare base64 (a ``data:`` prefix fails
to decode), tool-call arguments objects, Go-style error sentences in ``{"error": ...}``, model
names without a tag mean ``:latest``, durations in nanoseconds, ``created_at`` timestamps, an
empty ``messages`` just loads the model (``done_reason: "load"``). An ``api_key`` makes it behave
like Ollama cloud / an authenticating proxy: ``Authorization: Bearer`` required, else 401.

Stricter than Ollama, on purpose (Ollama swallows these silently, so an adapter bug would go
unseen): unknown top-level or message fields are 400 ``json: unknown field "x"``; unknown
``options`` keys are 400 (Ollama only logs "invalid option provided"); roles other than
system/user/assistant/tool are 400.

Fail kinds (Ollama has no type/code, only a sentence and the status): ``rate_limit`` 429 and
``quota`` 429 "...weekly usage limit..." (Ollama cloud only), ``server`` 500 (runner crash),
``overloaded`` 503 "server busy ... maximum pending requests exceeded", ``auth`` 401
"unauthorized", ``bad_request`` 400, ``not_found`` 404 'model "x" not found, try pulling it
first', ``context_length`` 400 "the input length exceeds the context length" (only with
``truncate: false``; by default Ollama truncates silently). Ollama itself never sends 408 or
409: ``timeout`` 408 and ``conflict`` 409 model a proxy / Ollama cloud and are synthetic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.ollama import OllamaVendor

from .embeddings_wire import EmbeddingProblem, ollama_answer
from .script import Fail, Reply
from .server import Call, FakeServer, Handler, StreamPlan

DEFAULT_MODELS = ("llama3.2:latest", "qwen2.5:0.5b", "llava:latest")
DEFAULT_MODEL = "llama3.2"  # the name tests send (no tag: ":latest")
EMBEDDING_DIMS = 384  # all-minilm's size
VERSION = "0.12.6"
ROLES = ("system", "user", "assistant", "tool")
OVERLOADED = "server busy, please try again.  maximum pending requests exceeded"
# kind -> (status, error sentence); "{model}" is filled in
FAILS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "too many requests, please retry shortly"),
    "quota": (
        429,
        "you (fake-user) have reached your weekly usage limit, upgrade for higher limits: "
        "https://ollama.com/upgrade",
    ),
    "server": (500, "llama runner process has terminated: exit status 2"),
    "overloaded": (503, OVERLOADED),
    "auth": (401, "unauthorized"),
    "bad_request": (
        400,
        "json: cannot unmarshal string into Go struct field ChatRequest.messages of type "
        "[]api.Message",
    ),
    "not_found": (404, 'model "{model}" not found, try pulling it first'),
    "context_length": (400, "the input length exceeds the context length"),
    "timeout": (408, "request timed out"),
    "conflict": (409, "conflict: the model is being modified by another request"),
}
# Ollama reports tool calls with done_reason "stop" and has no content filter.
DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}
TOP_FIELDS = frozenset(
    {"model", "messages", "tools", "format", "options", "stream", "keep_alive", "think"}
    | {"truncate", "shift", "logprobs", "top_logprobs"}
)
MESSAGE_FIELDS = frozenset(
    {"role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id"}
)
_FLOAT, _INT, _BOOL, _LIST = "float32", "integer", "boolean", "array"
# api.Options (server side): name -> the type its FromMap demands
OPTION_TYPES: dict[str, str] = {
    **dict.fromkeys(("numa", "low_vram", "f16_kv", "logits_all", "vocab_only"), _BOOL),
    **dict.fromkeys(("use_mmap", "use_mlock", "embedding_only", "penalize_newline"), _BOOL),
    **dict.fromkeys(("num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread"), _INT),
    **dict.fromkeys(("num_keep", "seed", "num_predict", "top_k", "repeat_last_n"), _INT),
    **dict.fromkeys(("mirostat",), _INT),
    **dict.fromkeys(("top_p", "min_p", "tfs_z", "typical_p", "temperature"), _FLOAT),
    **dict.fromkeys(("repeat_penalty", "presence_penalty", "frequency_penalty"), _FLOAT),
    **dict.fromkeys(("mirostat_tau", "mirostat_eta"), _FLOAT),
    "stop": _LIST,
}
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$")
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


class Problem(Exception):
    """A request the real server would refuse with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def adapter_for(fake: FakeOllama, **kwargs: Any) -> OllamaVendor:
    """Our adapter pointed at ``fake``, with the fake's key (none for a keyless fake)."""
    kwargs.setdefault("host", fake.url)
    kwargs.setdefault("api_key", fake.api_key or "")
    return OllamaVendor(**kwargs)


def created_at() -> str:
    """Go's RFC 3339 with nanoseconds, UTC."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}{secrets.randbelow(1000):03d}Z"


def error_response(status: int, message: str) -> web.Response:
    body = orjson.dumps({"error": message})
    return web.Response(status=status, body=body, content_type="application/json", charset="utf-8")


class FakeOllama(FakeServer):
    """Strict fake of an Ollama server (``api_key`` set: Ollama cloud-style Bearer auth)."""

    stream_content_type = "application/x-ndjson"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(api_key=api_key, host=host)
        self._initial_models = list(models)
        self.models = list(models)
        # True: tool calls without ``id``/``function.index``, as older Ollama servers send them.
        self.legacy_tool_calls = False
        self.embedding_dims = EMBEDDING_DIMS

    def reset(self) -> None:
        super().reset()
        self.embedding_dims = EMBEDDING_DIMS
        self.models = list(self._initial_models)
        self.legacy_tool_calls = False

    # ------------------------------------------------------------------------------ routing
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/embed"): self._embed,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/version"): self._version,
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
        }

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return web.Response(status=404, text="404 page not found")  # gin's default

    def _auth(self, call: Call) -> web.Response | None:
        if self.api_key is None:
            return None
        scheme, _, key = call.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            return error_response(401, "unauthorized")
        return None

    def resolve(self, model: str) -> str | None:
        """The pulled model ``model`` names (no tag means ``:latest``), or None."""
        name = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
        return name if name in self.models else None

    # ----------------------------------------------------------------------------- handlers
    async def _chat(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        model = body.get("model")
        call.meta["model"] = model if isinstance(model, str) and model else DEFAULT_MODEL
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate_chat(call.record.raw, call.body, call.json_ok)
            if self.resolve(body["model"]) is None:
                raise Problem(f'model "{body["model"]}" not found, try pulling it first', 404)
        except Problem as p:
            return error_response(p.status, p.message)
        call.stream = body.get("stream") is not False
        call.meta["logprobs"] = (body.get("top_logprobs") or 0) if body.get("logprobs") else None
        if not body.get("messages"):
            unload = body.get("keep_alive") == 0
            return self._json(self._line(call, "", done_reason="unload" if unload else "load"))
        return await self.run_step(call)

    async def _embed(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        model = body.get("model")
        call.meta["model"] = model if isinstance(model, str) and model else DEFAULT_MODEL
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        if not call.json_ok or not isinstance(model, str):
            return error_response(400, "invalid request: model is required")
        name = self.resolve(model)
        if name is None:
            return error_response(404, f"model '{model}' not found")
        self.next_step()  # a scripted Reply answers one embedding request too
        try:
            return self._json(ollama_answer(body, name, self.embedding_dims))
        except EmbeddingProblem as p:
            return error_response(p.status, p.message)

    async def _tags(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        return self._json({"models": [self._model_obj(m) for m in self.models]})

    async def _version(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        return self._json({"version": VERSION})

    async def _root(self, call: Call) -> web.StreamResponse:
        return web.Response(text="Ollama is running")

    @staticmethod
    def _model_obj(name: str) -> dict[str, Any]:
        family = re.split(r"[\d:.]", name, maxsplit=1)[0] or "llama"
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-05-01T10:00:00.123456789+02:00",
            "size": 2019393189,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    @staticmethod
    def _json(obj: Any) -> web.Response:
        return web.Response(
            body=orjson.dumps(obj), content_type="application/json", charset="utf-8"
        )

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, message = FAILS[fail.kind]
        message = fail.message or message.replace("{model}", str(call.meta.get("model")))
        resp = error_response(fail.status or status, message)
        if fail.retry_after is not None:
            resp.headers["Retry-After"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        message = FAILS[kind][1].replace("{model}", str(call.meta.get("model")))
        return orjson.dumps({"error": message}) + b"\n"

    def _tool_calls(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        """Stable ids for ``reply``'s tool calls (the same in every rendering)."""
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            alphabet = string.ascii_lowercase + string.digits
            rendered: list[dict[str, Any]] = []
            for k, spec in enumerate(reply.tool_calls):
                fn = {"name": spec.name, "arguments": spec.arguments}
                if self.legacy_tool_calls:
                    rendered.append({"function": fn})
                    continue
                call_id = "call_" + "".join(secrets.choice(alphabet) for _ in range(8))
                rendered.append({"id": call_id, "function": {"index": k, **fn}})
            call.meta[key] = rendered
        calls: list[dict[str, Any]] = call.meta[key]
        return calls

    def _line(
        self,
        call: Call,
        content: str,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        done_reason: str | None = None,
        reply: Reply | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        line: dict[str, Any] = {
            "model": call.meta["model"],
            "created_at": created_at(),
            "message": message,
            "done": done_reason is not None,
        }
        if done_reason is not None:
            line["done_reason"] = done_reason
        if reply is not None:
            line |= self._metrics(reply)
        top = call.meta.get("logprobs")
        if top is not None and content:
            pieces = reply.text_pieces() if reply is not None else [content]
            line["logprobs"] = [_logprob(p, i, top) for i, p in enumerate(pieces)]
        return line

    @staticmethod
    def _metrics(reply: Reply) -> dict[str, Any]:
        load, prompt_ns = 2_154_458, 1_500_000 * reply.prompt_tokens
        eval_ns = 20_000_000 * reply.completion_tokens
        metrics: dict[str, Any] = {"total_duration": load + prompt_ns + eval_ns + 1_000_000}
        metrics["load_duration"] = load
        if reply.prompt_tokens:  # absent when the whole prompt came from the cache
            metrics["prompt_eval_count"] = reply.prompt_tokens
        metrics["prompt_eval_duration"] = prompt_ns
        metrics["eval_count"] = reply.completion_tokens
        metrics["eval_duration"] = eval_ns
        return metrics

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        tool_calls = self._tool_calls(call, reply)
        done = DONE_REASONS[reply.finish]
        return self._json(
            self._line(call, reply.text, tool_calls=tool_calls, done_reason=done, reply=reply)
        )

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        def frame(obj: dict[str, Any]) -> bytes:
            return orjson.dumps(obj) + b"\n"

        plan = StreamPlan()
        plan.content += [frame(self._line(call, piece)) for piece in reply.text_pieces()]
        # Ollama parses a tool call whole before sending it: one line per call, no fragments.
        plan.content += [
            frame(self._line(call, "", tool_calls=[tc])) for tc in self._tool_calls(call, reply)
        ]
        done = DONE_REASONS[reply.finish]
        plan.tail.append(frame(self._line(call, "", done_reason=done, reply=reply)))
        return plan


def _logprob(token: str, position: int, top: int) -> dict[str, Any]:
    """One token's log probability (ollama SDK ``Logprob``), with ``top`` alternatives."""
    value = -0.25 * (position + 1)
    alternatives = [{"token": token + "~" * k, "logprob": value - k} for k in range(top)]
    return {"token": token, "logprob": value, "top_logprobs": alternatives}


# --------------------------------------------------------------------------------- validation
def _kind(value: Any) -> str:
    """The JSON kind as Go's decoder names it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _unmarshal(value: Any, field: str, go_type: str) -> Problem:
    return Problem(
        f"json: cannot unmarshal {_kind(value)} into Go struct field {field} of type {go_type}"
    )


def _expect(obj: dict[str, Any], key: str, kinds: tuple[type, ...], field: str, go: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        raise _unmarshal(value, field, go)


def validate_chat(raw: bytes, body: Any, json_ok: bool) -> None:
    """Raise ``Problem`` where Ollama (or the fake's stricter checks) refuses the request."""
    if not raw.strip():
        raise Problem("missing request body")
    if not json_ok:
        raise Problem("invalid character looking for beginning of value")
    if not isinstance(body, dict):
        raise Problem(f"json: cannot unmarshal {_kind(body)} into Go value of type api.ChatRequest")
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        raise Problem(f'json: unknown field "{unknown[0]}"')
    _expect(body, "model", (str,), "ChatRequest.model", "string")
    for key in ("stream", "truncate", "shift", "logprobs"):
        _expect(body, key, (bool,), f"ChatRequest.{key}", "bool")
    _expect(body, "top_logprobs", (int,), "ChatRequest.top_logprobs", "int")
    _expect(body, "messages", (list,), "ChatRequest.messages", "[]api.Message")
    _expect(body, "tools", (list,), "ChatRequest.tools", "api.Tools")
    for i, message in enumerate(body.get("messages") or ()):
        _validate_message(message, i)
    for tool in body.get("tools") or ():
        _validate_tool(tool)
    _validate_format(body.get("format"))
    _validate_keep_alive(body.get("keep_alive"))
    _validate_think(body.get("think"))
    if not 0 <= (body.get("top_logprobs") or 0) <= 20:
        raise Problem("top_logprobs must be between 0 and 20")
    if not body.get("model"):
        raise Problem("model is required")
    _validate_options(body.get("options"))


def _validate_message(message: Any, i: int) -> None:
    if not isinstance(message, dict):
        raise _unmarshal(message, "ChatRequest.messages", "api.Message")
    unknown = sorted(set(message) - MESSAGE_FIELDS)
    if unknown:
        raise Problem(f'json: unknown field "{unknown[0]}"')
    for key in ("role", "content", "thinking", "tool_name", "tool_call_id"):
        _expect(message, key, (str,), f"Message.messages.{key}", "string")
    if message.get("role") not in ROLES:
        raise Problem(f'invalid role "{message.get("role")}" in messages[{i}]')
    _expect(message, "images", (list,), "Message.messages.images", "[]api.ImageData")
    for image in message.get("images") or ():
        _validate_image(image)
    _expect(message, "tool_calls", (list,), "Message.messages.tool_calls", "[]api.ToolCall")
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _unmarshal(tc, "Message.messages.tool_calls", "api.ToolCall")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, dict):
            raise _unmarshal(
                args,
                "ToolCallFunction.messages.tool_calls.function.arguments",
                "api.ToolCallFunctionArguments",
            )


def _validate_image(image: Any) -> None:
    if not isinstance(image, str):
        raise _unmarshal(image, "Message.messages.images", "[]uint8")
    bad = next((i for i, ch in enumerate(image) if ch not in _BASE64), None)
    if bad is None:
        try:
            base64.b64decode(image, validate=True)
        except binascii.Error:
            bad = len(image) - len(image) % 4
    if bad is not None:
        raise Problem(f"illegal base64 data at input byte {bad}")


def _validate_tool(tool: Any) -> None:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise Problem(f"invalid tool type: {orjson.dumps(tool).decode()}")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise Problem("invalid tool: function.name is required")


def _validate_format(value: Any) -> None:
    if value is None or value in ("", "json") or isinstance(value, dict):
        return
    raise Problem('invalid format: expected "json" or a valid JSON schema')


def _validate_keep_alive(value: Any) -> None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return
    if not isinstance(value, str):
        raise _unmarshal(value, "ChatRequest.keep_alive", "api.Duration")
    if not _DURATION.match(value):
        raise Problem(f'time: invalid duration "{value}"')


def _validate_think(value: Any) -> None:
    if value is None or isinstance(value, bool) or value in ("high", "medium", "low"):
        return
    raise Problem(
        f"invalid think value: {orjson.dumps(value).decode()} "
        '(must be "high", "medium", "low", true, or false)'
    )


def _validate_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise _unmarshal(options, "ChatRequest.options", "map[string]interface {}")
    for key, value in options.items():
        want = OPTION_TYPES.get(key)
        if want is None:  # stricter than Ollama, which logs a warning and drops it
            raise Problem(f'invalid option provided: "{key}"')
        if not _option_ok(want, value):
            # api.Options.FromMap fails inside the scheduler: Ollama answers 500, not 400
            raise Problem(f'option "{key}" must be of type {want}', 500)


def _option_ok(want: str, value: Any) -> bool:
    if value is None:
        return True
    if want == _BOOL:
        return isinstance(value, bool)
    if want == _LIST:
        return isinstance(value, list) and all(isinstance(s, str) for s in value)
    return isinstance(value, int | float) and not isinstance(value, bool)
