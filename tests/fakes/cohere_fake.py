"""A strict fake of Cohere's v2 chat API: ``POST /v2/chat``, ``GET /v1/models``.

Wire format per vendors.md §13 and the ``cohere`` SDK 7.x types (``V2ChatResponse``,
``V2ChatStreamResponse``, ``ChatMessageV2``, ``ToolV2``, ``ResponseFormatV2``), checked with the
official SDK's ``ClientV2`` (tests/test_fake_cohere_sdk.py). Usage::

    with FakeCohere(api_key="co-test-...") as fake:
        fake.enqueue(Reply(text="hi"), Fail("rate_limit", retry_after="1"))
        client = cohere.ClientV2(api_key="co-test-...", base_url=fake.url)

Strict, as a fake must be for an adapter bug to show: unknown top-level or message fields,
tool-call ``arguments`` that are not a JSON string, a tool result whose ``tool_call_id`` answers
no earlier call, an image sent to a model without vision, a ``tool_choice`` other than
REQUIRED/NONE (or without tools), ``p`` outside 0.01-0.99 and unknown models are refused
with Cohere's ``{"id", "message"}`` body.

Fail kinds (status decides, Cohere has no error type): ``rate_limit``/``quota`` 429, ``server``
500, ``overloaded`` 503, ``auth`` 401, ``bad_request``/``context_length`` 400, ``not_found``
404, ``timeout`` 504, ``conflict`` 409. A stream failing after its 200 ends with
``message-end`` whose ``finish_reason`` is ``ERROR`` and ``delta.error`` says why.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.cohere import CohereVendor

from .script import Fail, Reply, split_text
from .server import Call, FakeServer, Handler, StreamPlan

DEFAULT_MODELS = ("command-a-03-2025", "command-r-08-2024", "command-a-vision-07-2025")
FAILS: dict[str, tuple[int, str]] = {
    "rate_limit": (
        429,
        "You are past the per minute request limit, please wait and try again later.",
    ),
    "quota": (
        429,
        "You are using a Trial key, which is limited to 1000 API calls / month. You can "
        "continue to use the Trial key for free or upgrade to a Production key.",
    ),
    "server": (500, "internal server error, this has been reported to our developers"),
    "overloaded": (503, "service unavailable: the model is overloaded, please retry"),
    "auth": (401, "invalid api token"),
    "bad_request": (400, "invalid request: scripted by the fake"),
    "not_found": (
        404,
        "model '{model}' not found, make sure the correct model ID was used and that you "
        "have access to the model.",
    ),
    "context_length": (
        400,
        "too many tokens: total number of tokens in the prompt cannot exceed 256000 - "
        "received 300000. Try using a shorter prompt",
    ),
    "timeout": (504, "gateway timeout"),
    "conflict": (409, "conflict: another request is in progress"),
}
FINISH = {
    "stop": "COMPLETE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
    "content_filter": "COMPLETE",  # Cohere v2 has no content-filter finish reason
}
TOP_FIELDS = frozenset(
    {"model", "messages", "tools", "strict_tools", "documents", "citation_options"}
    | {"response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed"}
    | {"frequency_penalty", "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking"}
    | {"priority", "stream"}
)
MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "tool_plan", "citations"}),
    "tool": frozenset({"role", "tool_call_id", "content"}),
}
TOOL_PLAN = "I will look this up with the tools I have."
PROMPT_TEMPLATE_TOKENS = 61  # what Cohere adds around the prompt (counted, not billed)


class Problem(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def rand(n: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def adapter_for(fake: FakeCohere, **kwargs: Any) -> CohereVendor:
    """Our adapter pointed at ``fake`` with the fake's key."""
    kwargs.setdefault("api_key", fake.api_key or "co-any")
    return CohereVendor(base_url=fake.url, **kwargs)


def error_body(message: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "message": message}


class FakeCohere(FakeServer):
    """Strict fake of ``api.cohere.com`` v2 chat and the model list."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(api_key=api_key, host=host)
        self.models = list(models)

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/v2/chat"): self._chat, ("GET", "/v1/models"): self._models}

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return self.error(404, f"path {call.request.path} not found")

    def response_headers(self, call: Call) -> dict[str, str]:
        return {"x-trace-id": call.meta.setdefault("trace", uuid.uuid4().hex)}

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.Response(
            status=status, body=orjson.dumps(error_body(message)), content_type="application/json"
        )

    def _auth(self, call: Call) -> web.Response | None:
        scheme, _, key = call.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self.error(401, "no api key supplied")
        if self.api_key is not None and key.strip() != self.api_key:
            return self.error(401, "invalid api token")
        return None

    async def _chat(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = body.get("model")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate_chat(call.body if call.json_ok else None)
            if body["model"] not in self.models:
                raise Problem(FAILS["not_found"][1].replace("{model}", body["model"]), 404)
            if "vision" not in body["model"] and _has_image(body["messages"]):
                raise Problem(f"invalid request: model '{body['model']}' does not support images")
        except Problem as p:
            return self.error(p.status, p.message)
        call.stream = body.get("stream") is True
        call.meta["id"] = str(uuid.uuid4())
        return await self.run_step(call)

    async def _models(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        limit = int(float(call.request.query.get("page_size", "1000")))
        models = [
            {
                "name": name,
                "endpoints": ["chat", "generate"],
                "finetuned": False,
                "context_length": 256000.0,
                "tokenizer_url": f"https://storage.googleapis.com/cohere-public/tokenizers/{name}.json",
                "default_endpoints": [],
                "features": ["tools", "json_mode", "strict_tools", "json_schema"],
            }
            for name in self.models[:limit]
        ]
        return web.Response(
            body=orjson.dumps({"models": models, "next_page_token": None}),
            content_type="application/json",
        )

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, message = FAILS[fail.kind]
        message = fail.message or message.replace("{model}", str(call.meta.get("model")))
        resp = self.error(fail.status or status, message)
        if fail.retry_after is not None:
            resp.headers["Retry-After"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        delta = {"finish_reason": "ERROR", "error": FAILS[kind][1]}
        return event({"type": "message-end", "id": call.meta["id"], "delta": delta})

    def _tool_calls(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            call.meta[key] = [
                {
                    "id": f"{tc.name}_{rand(12)}",
                    "type": "function",
                    "function": {"name": tc.name, "arguments": orjson.dumps(tc.arguments).decode()},
                }
                for tc in reply.tool_calls
            ]
        calls: list[dict[str, Any]] = call.meta[key]
        return calls

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "billed_units": {
                "input_tokens": float(reply.prompt_tokens),
                "output_tokens": float(reply.completion_tokens),
            },
            "tokens": {
                "input_tokens": float(reply.prompt_tokens + PROMPT_TEMPLATE_TOKENS),
                "output_tokens": float(reply.completion_tokens + 1),
            },
            "cached_tokens": float(reply.cached_tokens),
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        calls = self._tool_calls(call, reply)
        message: dict[str, Any] = {"role": "assistant"}
        if calls:
            message |= {"tool_plan": TOOL_PLAN, "tool_calls": calls}
        if reply.text:
            message["content"] = [{"type": "text", "text": reply.text}]
        body = {
            "id": call.meta["id"],
            "finish_reason": FINISH[reply.finish],
            "message": message,
            "usage": self._usage(reply),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        calls = self._tool_calls(call, reply)
        start = {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
        plan = StreamPlan(
            head=[
                event({"type": "message-start", "id": call.meta["id"], "delta": {"message": start}})
            ]
        )
        if calls:
            plan.head.append(
                event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": TOOL_PLAN}}})
            )
        pieces = reply.text_pieces()
        if pieces:
            opening = {"message": {"content": {"type": "text", "text": ""}}}
            plan.head.append(event({"type": "content-start", "index": 0, "delta": opening}))
            plan.content += [
                event(
                    {
                        "type": "content-delta",
                        "index": 0,
                        "delta": {"message": {"content": {"text": p}}},
                    }
                )
                for p in pieces
            ]
            plan.content[-1] += event({"type": "content-end", "index": 0})
        for k, tc in enumerate(calls):
            head = {**tc, "function": {"name": tc["function"]["name"], "arguments": ""}}
            frames = [
                event(
                    {
                        "type": "tool-call-start",
                        "index": k,
                        "delta": {"message": {"tool_calls": head}},
                    }
                )
            ]
            frames += [
                event(
                    {
                        "type": "tool-call-delta",
                        "index": k,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}},
                    }
                )
                for piece in split_text(tc["function"]["arguments"], reply.chunk_size)
            ]
            frames[-1] += event({"type": "tool-call-end", "index": k})
            plan.content += frames
        end = {"finish_reason": FINISH[reply.finish], "usage": self._usage(reply)}
        plan.tail.append(event({"type": "message-end", "id": call.meta["id"], "delta": end}))
        return plan


def event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n"


# --------------------------------------------------------------------------------- validation
def validate_chat(body: Any) -> None:
    """Raise ``Problem`` where Cohere refuses the request."""
    if not isinstance(body, dict):
        raise Problem("invalid request: the body must be a JSON object")
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        raise Problem(
            f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
        )
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Problem("invalid request: model must be a non-empty string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem("invalid request: messages must be a non-empty list")
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        _validate_message(message, i, call_ids)
    tools = body.get("tools")
    if tools is not None:
        _validate_tools(tools)
    choice = body.get("tool_choice")
    if choice is not None and (choice not in ("REQUIRED", "NONE") or not tools):
        raise Problem("invalid request: tool_choice must be REQUIRED or NONE, and needs tools")
    _validate_format(body.get("response_format"))
    _validate_knobs(body)


def _validate_message(message: Any, i: int, call_ids: set[str]) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict) or message.get("role") not in MESSAGE_FIELDS:
        raise Problem(f"invalid request: {where}.role must be one of system, user, assistant, tool")
    role = message["role"]
    extra = sorted(set(message) - MESSAGE_FIELDS[role])
    if extra:
        raise Problem(f"invalid request: {where}: unknown field {extra[0]} for a {role} message")
    content = message.get("content")
    if role == "assistant":
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
                raise Problem(
                    f"invalid request: {where}.tool_calls: arguments must be a JSON string"
                )
            call_ids.add(str(call.get("id")))
        if content is None and not message.get("tool_calls") and not message.get("tool_plan"):
            raise Problem(
                f"invalid request: {where}: an assistant message needs content or tool_calls"
            )
    elif role == "tool" and message.get("tool_call_id") not in call_ids:
        raise Problem(
            f"invalid request: {where}.tool_call_id {message.get('tool_call_id')!r} does not "
            "match a tool call of an earlier assistant message"
        )
    if content is None and role != "assistant":
        raise Problem(f"invalid request: {where}.content is required")
    if isinstance(content, list):
        allowed = {"user": {"text", "image_url"}, "tool": {"text", "document"}}.get(role, {"text"})
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in allowed:
                raise Problem(
                    f"invalid request: {where}.content: parts must be one of {sorted(allowed)}"
                )
            if part["type"] == "image_url" and not isinstance(
                (part.get("image_url") or {}).get("url"), str
            ):
                raise Problem(f"invalid request: {where}.content: image_url.url is required")
    elif content is not None and not isinstance(content, str):
        raise Problem(f"invalid request: {where}.content must be a string or a list of parts")


def _has_image(messages: list[Any]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise Problem("invalid request: tools must be a list")
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise Problem(
                'invalid request: each tool is {"type": "function", "function": {"name": ...}}'
            )


def _validate_format(fmt: Any) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object"):
        raise Problem("invalid request: response_format.type must be text or json_object")
    if "json_schema" in fmt and fmt["type"] != "json_object":
        raise Problem("invalid request: json_schema is only allowed with json_object")


def _validate_knobs(body: dict[str, Any]) -> None:
    p = body.get("p")
    if p is not None and not 0.01 <= p <= 0.99:
        raise Problem("invalid request: p must be between 0.01 and 0.99")
    temperature = body.get("temperature")
    if temperature is not None and not temperature >= 0:
        raise Problem("invalid request: temperature must be at least 0")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise Problem("invalid request: max_tokens must be a positive integer")
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or len(stop) > 5):
        raise Problem("invalid request: stop_sequences must be a list of at most 5 strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Problem("invalid request: stream must be a boolean")
