"""A strict fake of Mistral's chat completions (``/v1/chat/completions``, ``/v1/models``).

Wire format per vendors.md §14 and the ``mistralai`` SDK's models (``ChatCompletionRequest``,
``AssistantMessage``, ``ToolMessage``, ``ToolCall``, ``CompletionChunk``), checked with the
official SDK (tests/test_fake_mistral_sdk.py). What makes it Mistral rather than OpenAI:

* unknown fields (``seed``, ``user``, ``stream_options``, ``max_completion_tokens``) are 422
  ``extra_forbidden`` with the body the SDK types (``{"detail": [{"loc", "msg", "type"}]}``);
  ``random_seed`` and ``safe_prompt`` are Mistral's own;
* tool-call ids must be 9 characters ``[a-zA-Z0-9]``, on assistant calls and tool results;
  its own ids are such (``D681PevKs``); a tool result must answer an earlier call;
* a conversation may end with an assistant message only as a prefill, ``"prefix": true``;
* ``tool_choice`` is ``auto | none | any | required`` or ``{"type": "function", ...}``;
* a stream carries usage on its last chunk (the one with ``finish_reason``) without being
  asked, then ``data: [DONE]``; a failure after the 200 is a chunk with ``finish_reason:
  "error"``;
* errors are ``{"object": "error", "message", "type", "param", "code"}``; 401 is the gateway's
  ``{"message": "Unauthorized", "request_id"}``.
"""

from __future__ import annotations

import re
import secrets
import string
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.mistral import MistralVendor

from .script import Fail, Reply
from .server import Call, FakeServer, Handler, StreamPlan

DEFAULT_MODELS = ("mistral-large-latest", "mistral-small-latest", "pixtral-large-latest")
_ALNUM = string.ascii_letters + string.digits
_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
TOP_FIELDS = frozenset(
    {"model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed"}
    | {"metadata", "response_format", "tools", "tool_choice", "presence_penalty"}
    | {"frequency_penalty", "min_tokens", "repetition_penalty", "top_k", "logprobs"}
    | {"top_logprobs", "prompt_logprobs", "top_prompt_logprobs", "n", "prediction"}
    | {"parallel_tool_calls", "reasoning_effort", "prompt_mode", "guardrails"}
    | {"prompt_cache_key", "service_tier", "safe_prompt"}
)
MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
TOOL_CHOICES = ("auto", "none", "any", "required")
FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "stop"}
# kind -> (status, type, code, message)
FAILS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit": (429, "rate_limited", "1300", "Requests rate limit exceeded"),
    "quota": (429, "rate_limited", "1300", "Monthly usage limit exceeded"),
    "server": (500, "internal_server_error", None, "Internal server error"),
    "overloaded": (
        503,
        "service_unavailable",
        None,
        "Service unavailable: the model is overloaded",
    ),
    "auth": (401, "", None, "Unauthorized"),
    "bad_request": (400, "invalid_request_error", None, "Invalid request (scripted by the fake)"),
    "not_found": (400, "invalid_model", "1500", "Invalid model: {model}"),
    "context_length": (
        400,
        "invalid_request_error",
        None,
        "Prompt contains 140000 tokens and 0 draft tokens, too large for model with 131072 "
        "maximum context length",
    ),
    "timeout": (504, "gateway_timeout", None, "Upstream request timeout"),
    "conflict": (409, "conflict", None, "Conflict"),
}


class Problem(Exception):
    def __init__(self, message: str | dict[str, Any], status: int = 400) -> None:
        super().__init__(str(message))
        self.message, self.status = message, status


def rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def adapter_for(fake: FakeMistral, **kwargs: Any) -> MistralVendor:
    kwargs.setdefault("api_key", fake.api_key or "mistral-any")
    return MistralVendor(base_url=fake.url + "/v1", **kwargs)


def error_body(message: Any, type_: str, code: str | None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": None, "code": code}


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def extra_forbidden(loc: list[Any], value: Any) -> Problem:
    detail = {
        "type": "extra_forbidden",
        "loc": ["body", *loc],
        "msg": "Extra inputs are not permitted",
        "input": value,
    }
    return Problem({"detail": [detail]}, 422)


class FakeMistral(FakeServer):
    """Strict fake of ``api.mistral.ai/v1`` chat completions and models."""

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(api_key=api_key, host=host)
        self.models = list(DEFAULT_MODELS)

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/v1/chat/completions"): self._chat, ("GET", "/v1/models"): self._models}

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return _json({"detail": "Not Found"}, 404)

    def response_headers(self, call: Call) -> dict[str, str]:
        return {"mistral-correlation-id": call.meta.setdefault("rid", str(uuid.uuid4()))}

    def _auth(self, call: Call) -> web.Response | None:
        scheme, _, key = call.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or (self.api_key is not None and key.strip() != self.api_key):
            return _json({"message": "Unauthorized", "request_id": uuid.uuid4().hex}, 401)
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
                raise Problem(f"Invalid model: {body['model']}")
        except Problem as p:
            if p.status == 422:  # the SDK's typed HTTPValidationError: {"detail": [...]}
                return _json(p.message, 422)
            return _json(error_body(p.message, "invalid_request_error", None), p.status)
        call.stream = body.get("stream") is True
        call.meta.update(id=uuid.uuid4().hex, created=int(time.time()))
        return await self.run_step(call)

    async def _models(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        data = [
            {
                "id": m,
                "object": "model",
                "created": 1733000000,
                "owned_by": "mistralai",
                "capabilities": {
                    "completion_chat": True,
                    "function_calling": True,
                    "vision": "pixtral" in m,
                },
                "type": "base",
            }
            for m in self.models
        ]
        return _json({"object": "list", "data": data})

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, type_, code, message = FAILS[fail.kind]
        message = fail.message or message.replace("{model}", str(call.meta.get("model")))
        if fail.kind == "auth":
            resp = _json(
                {"message": message, "request_id": uuid.uuid4().hex}, fail.status or status
            )
        else:
            resp = _json(error_body(message, type_, code), fail.status or status)
        if fail.retry_after is not None:
            resp.headers["Retry-After"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        return self._frame(call, [choice])

    def _tool_calls(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            call.meta[key] = [
                {
                    "id": rand(9),
                    "type": "function",
                    "function": {"name": tc.name, "arguments": orjson.dumps(tc.arguments).decode()},
                    "index": k,
                }
                for k, tc in enumerate(reply.tool_calls)
            ]
        calls: list[dict[str, Any]] = call.meta[key]
        return calls

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens,
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        calls = self._tool_calls(call, reply)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "tool_calls": calls or None,
            "prefix": False,
        }
        body = {
            "id": call.meta["id"],
            "object": "chat.completion",
            "created": call.meta["created"],
            "model": call.meta["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": FINISH[reply.finish]}],
            "usage": self._usage(reply),
        }
        return _json(body)

    def _frame(
        self, call: Call, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
    ) -> bytes:
        chunk: dict[str, Any] = {
            "id": call.meta["id"],
            "object": "chat.completion.chunk",
            "created": call.meta["created"],
            "model": call.meta["model"],
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        def delta(d: dict[str, Any]) -> bytes:
            return self._frame(call, [{"index": 0, "delta": d, "finish_reason": None}])

        plan = StreamPlan(head=[delta({"role": "assistant", "content": ""})])
        plan.content += [delta({"content": piece}) for piece in reply.text_pieces()]
        # Mistral sends each tool call whole, in one chunk (its arguments are not fragmented).
        plan.content += [
            delta({"content": "", "tool_calls": [tc]}) for tc in self._tool_calls(call, reply)
        ]
        last = {"index": 0, "delta": {"content": ""}, "finish_reason": FINISH[reply.finish]}
        plan.tail.append(self._frame(call, [last], self._usage(reply)))
        plan.tail.append(b"data: [DONE]\n\n")
        return plan


# --------------------------------------------------------------------------------- validation
def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise Problem(
            {
                "detail": [
                    {
                        "type": "model_attributes_type",
                        "loc": ["body"],
                        "msg": "Input should be a valid dictionary",
                    }
                ]
            },
            422,
        )
    for key in sorted(set(body) - TOP_FIELDS):
        raise extra_forbidden([key], body[key])
    for key in ("model", "messages"):
        if key not in body:
            raise Problem(
                {"detail": [{"type": "missing", "loc": ["body", key], "msg": "Field required"}]},
                422,
            )
    if not isinstance(body["messages"], list) or not body["messages"]:
        raise Problem(
            {
                "detail": [
                    {
                        "type": "too_short",
                        "loc": ["body", "messages"],
                        "msg": "List should have at least 1 item after validation, not 0",
                    }
                ]
            },
            422,
        )
    if "safe_prompt" in body and not isinstance(body["safe_prompt"], bool):
        raise Problem(
            {
                "detail": [
                    {
                        "type": "bool_type",
                        "loc": ["body", "safe_prompt"],
                        "msg": "Input should be a valid boolean",
                    }
                ]
            },
            422,
        )
    if "random_seed" in body and not isinstance(body["random_seed"], int):
        raise Problem(
            {
                "detail": [
                    {
                        "type": "int_type",
                        "loc": ["body", "random_seed"],
                        "msg": "Input should be a valid integer",
                    }
                ]
            },
            422,
        )
    choice = body.get("tool_choice")
    if choice is not None and not (
        choice in TOOL_CHOICES or (isinstance(choice, dict) and choice.get("type") == "function")
    ):
        raise Problem(f"Invalid tool_choice: {choice!r}")
    calls: set[str] = set()
    for i, message in enumerate(body["messages"]):
        _validate_message(message, i, calls)
    last = body["messages"][-1]
    if last.get("role") == "assistant" and last.get("prefix") is not True:
        raise Problem(
            "Expected last role User or Tool (or Assistant with prefix True) for serving but "
            "got assistant"
        )


def _validate_message(message: Any, i: int, calls: set[str]) -> None:
    role = message.get("role") if isinstance(message, dict) else None
    if role not in MESSAGE_FIELDS:
        raise Problem(
            {
                "detail": [
                    {
                        "type": "union_tag_invalid",
                        "loc": ["body", "messages", i],
                        "msg": f"Input tag '{role}' found using 'role' does not match any "
                        "of the expected tags",
                    }
                ]
            },
            422,
        )
    for key in sorted(set(message) - MESSAGE_FIELDS[role]):
        raise extra_forbidden(["messages", i, role, key], message[key])
    for call in message.get("tool_calls") or ():
        _check_id(call.get("id"))
        calls.add(call["id"])
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not call_id:
            raise Problem("Tool call id has to be defined.")
        _check_id(call_id)
        if call_id not in calls:
            raise Problem(f"Unexpected tool call id {call_id} in tool results")


def _check_id(call_id: Any) -> None:
    if not isinstance(call_id, str) or not _ID.match(call_id):
        raise Problem(f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.")
