"""The OpenAI-compatible API: ``POST /v1/chat/completions`` (JSON and SSE) and ``GET /v1/models``.

Body fields, decided once:

* understood: ``model, messages, temperature, top_p, max_completion_tokens`` (or the legacy
  ``max_tokens``), ``stop, tools, tool_choice, response_format, user, metadata, stream,
  stream_options.include_usage, n`` (only 1);
* passed to the vendor unchanged (``Request.extra``): ``gateway.passthrough_fields``, by default
  ``seed, presence_penalty, frequency_penalty, parallel_tool_calls, reasoning_effort``. They
  reach whichever vendor answers: with non-OpenAI vendors in the route, set the list to ``[]``;
* everything else is dropped: it reaches no vendor. That includes LiteLLM-style ``api_key``,
  ``api_base`` or ``base_url`` fields: clients cannot choose upstream URLs or credentials.

Messages keep ``role, content, name, tool_calls, tool_call_id``; ``developer`` is read as
``system``; other message keys an SDK echoes back (``refusal``, ``annotations``) are dropped.

The stream is OpenAI's, byte for byte: a role chunk, content chunks, a finish chunk, with
``stream_options.include_usage`` a ``choices: []`` usage chunk (and ``"usage": null`` on every
other chunk), then ``data: [DONE]``. An error after the first chunk is ``data: {"error": ...}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..types import Message, Request, Response, StreamChunk, ToolCallDelta, Usage
from ..vendors.openai import message_to_openai
from .errors import ApiError, bad_request
from .relay import json_response, key_tag, open_stream, read_json, relay, send
from .state import GATEWAY, TRACE, Trace
from .validation import (
    ARRAY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    OBJECT,
    STRING,
    check_fields,
    check_items,
    check_model_name,
    make_request,
    require,
)

CHAT_FIELDS = {
    "model": STRING,
    "messages": ARRAY,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "max_tokens": INTEGER,
    "max_completion_tokens": INTEGER,
    "stop": ((str, list), "a string or an array of strings"),
    "tools": ARRAY,
    "tool_choice": ((str, dict), "a string or an object"),
    "response_format": OBJECT,
    "user": STRING,
    "metadata": OBJECT,
    "stream": BOOLEAN,
    "stream_options": OBJECT,
    "n": INTEGER,
}
MESSAGE_FIELDS = {
    "role": STRING,
    "content": ((str, list), "a string or an array of content parts"),
    "name": STRING,
    "tool_calls": ARRAY,
    "tool_call_id": STRING,
}
FUNCTION_FIELDS = {"name": STRING, "description": STRING, "parameters": OBJECT}
CALL_FIELDS = {"name": STRING, "arguments": STRING}


@dataclass(frozen=True, slots=True)
class ChatCall:
    request: Request
    stream: bool
    include_usage: bool


# --- request ----------------------------------------------------------------------------------
def parse_chat(
    body: dict[str, Any], passthrough: tuple[str, ...], trace: Trace | None = None
) -> ChatCall:
    """A Chat Completions body as a Request; ``ApiError(400)`` naming the field at fault.
    With ``trace``, the request is tagged with the caller's key (``key_tag``)."""
    check_fields(body, CHAT_FIELDS)
    require(body, "model", "the model to use")
    check_model_name(body["model"])
    require(body, "messages", "at least one message")
    if body.get("n") not in (None, 1):
        raise bad_request("n", "only n=1 is supported")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request("stream_options", "only allowed when stream is true")
    if isinstance(body.get("stop"), list):
        check_items(body["stop"], str, "a string", "stop")
    if body.get("tools") is not None:
        _check_tools(body["tools"])
    max_tokens = body.get("max_completion_tokens")
    request = make_request(
        model=body["model"],
        messages=[_message(m, i) for i, m in enumerate(body["messages"])],
        temperature=body.get("temperature"),
        max_tokens=body.get("max_tokens") if max_tokens is None else max_tokens,
        top_p=body.get("top_p"),
        stop=body.get("stop"),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        response_format=body.get("response_format"),
        user=body.get("user"),
        metadata=key_tag(trace, body.get("metadata")) if trace else body.get("metadata"),
        extra={k: body[k] for k in passthrough if k in body} or None,
    )
    return ChatCall(request, stream, bool(options and options.get("include_usage") is True))


def _message(value: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(value, dict):
        raise bad_request(where, "expected a message object with a role")
    check_fields(value, MESSAGE_FIELDS, f"{where}.")
    if isinstance(value.get("content"), list):
        check_items(value["content"], dict, "a content part object", f"{where}.content")
    for j, call in enumerate(value.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise bad_request(f"{where}.tool_calls[{j}]", "expected a function tool call")
        check_fields(fn, CALL_FIELDS, f"{where}.tool_calls[{j}].function.")
    role: Any = value.get("role")
    try:
        return Message(
            role="system" if role == "developer" else role,
            content=value.get("content"),
            name=value.get("name"),
            tool_calls=value.get("tool_calls"),
            tool_call_id=value.get("tool_call_id"),
        )
    except ValueError as exc:
        raise ApiError(400, f"{where}: {exc}", param=where, code="invalid_value") from None


def _check_tools(tools: list[Any]) -> None:
    check_items(tools, dict, "a tool object", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise bad_request(f"tools[{i}].function", "expected a function definition")
        check_fields(fn, FUNCTION_FIELDS, f"tools[{i}].function.")


# --- response ---------------------------------------------------------------------------------
def completion_id(response_id: str | None, request_id: str) -> str:
    if response_id and response_id.startswith("chatcmpl-"):
        return response_id
    return f"chatcmpl-{request_id}"


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_body(response: Response, request_id: str) -> dict[str, Any]:
    content = response.content if response.content or not response.tool_calls else None
    message = message_to_openai(
        Message("assistant", content, tool_calls=response.tool_calls or None)
    )
    message["refusal"] = None
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": response.finish_reason or "stop",
    }
    return {
        "id": completion_id(response.id, request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [choice],
        "usage": usage_to_openai(response.usage),
    }


class OpenAIStreamEncoder:
    """``chat.completion.chunk`` frames; the constant head of each frame is encoded once."""

    def __init__(self, chunk_id: str, model: str, include_usage: bool) -> None:
        head = {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time())}
        self._prefix = b"data: " + orjson.dumps({**head, "model": model})[:-1] + b',"choices":'
        self._suffix = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        self._include_usage = include_usage

    def _frame(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._prefix + orjson.dumps([choice]) + self._suffix

    def head(self, chunk: StreamChunk) -> bytes:
        role = self._frame({"role": "assistant", "content": "", "refusal": None})
        return role + self.chunk(chunk)

    def chunk(self, chunk: StreamChunk) -> bytes:
        out = b""
        if chunk.delta or chunk.tool_call_deltas:
            delta: dict[str, Any] = {}
            if chunk.delta:
                delta["content"] = chunk.delta
            if chunk.tool_call_deltas:
                delta["tool_calls"] = [_tool_delta(d) for d in chunk.tool_call_deltas]
            out = self._frame(delta)
        if chunk.finish_reason is not None:
            out += self._frame({}, chunk.finish_reason)
            if self._include_usage:
                usage = orjson.dumps(usage_to_openai(chunk.usage or Usage()))
                out += self._prefix + b'[],"usage":' + usage + b"}\n\n"
        return out

    def tail(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, error: ApiError) -> bytes:
        return b"data: " + orjson.dumps(error.openai_body()) + b"\n\n"


def _tool_delta(delta: ToolCallDelta) -> dict[str, Any]:
    if delta.id is None:
        return {"index": delta.index, "function": {"arguments": delta.arguments}}
    fn = {"name": delta.name or "", "arguments": delta.arguments}
    return {"index": delta.index, "id": delta.id, "type": "function", "function": fn}


# --- handlers ---------------------------------------------------------------------------------
async def chat_completions(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    call = parse_chat(body, gateway.settings.passthrough_fields, trace)
    if call.stream:
        opened = await open_stream(gateway, trace, call.request)
        model = opened.first.model or call.request.model
        encoder = OpenAIStreamEncoder(
            completion_id(None, trace.request_id), model, call.include_usage
        )
        return await relay(request, opened, encoder)
    response = await send(gateway, trace, call.request)
    return json_response(completion_body(response, trace.request_id))


async def list_models(request: web.Request) -> web.StreamResponse:
    """The models of every vendor (cached), as far as the caller's key may use them."""
    gateway, key = request.app[GATEWAY], request[TRACE].key
    served = await gateway.catalog.models(gateway.dispatcher.vendors)
    owners = {group.name: "llmdispatcher" for group in gateway.dispatcher.config.model_groups}
    for model in served:  # a model two vendors serve is listed once, for the first
        owners.setdefault(model.id, model.vendor)
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": vendor}
        for model, vendor in owners.items()
        if key is None or key.allows(model)
    ]
    return json_response({"object": "list", "data": data})
