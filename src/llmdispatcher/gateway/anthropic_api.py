"""The Anthropic-compatible API: ``POST /v1/messages`` (JSON and the named-event SSE stream), so
the official ``anthropic`` SDK works against the gateway and is routed to any vendor.

This is ``vendors/anthropic_request.py`` in reverse: ``system`` becomes a system message,
``tool_use`` blocks become tool calls (``input`` to a JSON string), ``tool_result`` blocks become
``tool`` messages ahead of the user text they came with, base64 images become data URIs,
``tool_choice`` ``any`` becomes ``required``, ``metadata.user_id`` becomes ``user``.

Understood: ``model, messages, max_tokens, system, temperature, top_p, stop_sequences, tools``
(``strict`` kept), ``tool_choice`` (``disable_parallel_tool_use`` is ``parallel_tool_calls:
false``), ``metadata.user_id, stream``. Dropped (no vendor sees them): everything else,
``thinking``, ``top_k`` and ``output_config`` included; thinking blocks in the history too.
A stop sequence the vendor names (Anthropic does) comes back as ``stop_reason:
"stop_sequence"`` with ``stop_sequence`` set; other vendors do not say which one matched.
Errors use Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..types import Request, Response, StreamChunk, ToolCallDelta, Usage
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

MESSAGES_FIELDS = {
    "model": STRING,
    "messages": ARRAY,
    "max_tokens": INTEGER,
    "system": ((str, list), "a string or an array of text blocks"),
    "temperature": NUMBER,
    "top_p": NUMBER,
    "stop_sequences": ARRAY,
    "tools": ARRAY,
    "tool_choice": OBJECT,
    "metadata": OBJECT,
    "stream": BOOLEAN,
}
TURN_FIELDS = {"role": STRING, "content": ((str, list), "a string or an array of blocks")}
TOOL_FIELDS = {"name": STRING, "description": STRING, "input_schema": OBJECT, "strict": BOOLEAN}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


# --- request ----------------------------------------------------------------------------------
def parse_messages(body: dict[str, Any], trace: Trace | None = None) -> tuple[Request, bool]:
    """A Messages body as a Request, and whether to stream; with ``trace``, tagged with the
    caller's key (``key_tag``)."""
    check_fields(body, MESSAGES_FIELDS)
    require(body, "model", "the model to use")
    check_model_name(body["model"])
    require(body, "messages", "at least one message")
    require(body, "max_tokens", "the maximum number of tokens to generate")
    if body.get("stop_sequences") is not None:
        check_items(body["stop_sequences"], str, "a string", "stop_sequences")
    turns = [m for i, turn in enumerate(body["messages"]) for m in _turn(turn, i)]
    tools = [_tool(t, i) for i, t in enumerate(body.get("tools") or ())]
    user = (body.get("metadata") or {}).get("user_id")
    choice = body.get("tool_choice") or {}
    serial = tools and choice.get("disable_parallel_tool_use") is True
    request = make_request(
        model=body["model"],
        messages=_system(body.get("system")) + turns,
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=body.get("stop_sequences"),
        tools=tools or None,
        tool_choice=_tool_choice(body.get("tool_choice")) if tools else None,
        user=user if isinstance(user, str) else None,
        metadata=key_tag(trace, None) if trace else None,
        parallel_tool_calls=False if serial else None,
    )
    return request, body.get("stream") is True


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}]
    texts = [_text(block, f"system[{i}]") for i, block in enumerate(value)]
    return [{"role": "system", "content": "\n\n".join(texts)}]


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise bad_request(where, 'expected a {"type": "text", "text": ...} block')
    text = block.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where}.text", "expected a string")
    return text


def _turn(turn: Any, i: int) -> list[dict[str, Any]]:
    """One Anthropic turn as OpenAI-shaped messages: tool results first, then the rest."""
    where = f"messages[{i}]"
    if not isinstance(turn, dict):
        raise bad_request(where, "expected a message object with a role")
    check_fields(turn, TURN_FIELDS, f"{where}.")
    role, content = turn.get("role"), turn.get("content")
    if role not in ("user", "assistant"):
        raise bad_request(f"{where}.role", 'expected "user" or "assistant"')
    if content is None or isinstance(content, str):
        return [{"role": role, "content": content or ""}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        _block(block, f"{where}.content[{j}]", role, (results, parts, calls))
    message: dict[str, Any] = {"role": role, "content": _content(parts)}
    if calls:
        message["tool_calls"] = calls
    return results + ([message] if parts or calls else [])


Sinks = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _block(block: Any, where: str, role: str, sinks: Sinks) -> None:
    results, parts, calls = sinks
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        parts.append({"type": "text", "text": _text(block, where)})
    elif kind == "image":
        parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
    elif kind == "tool_use" and role == "assistant":
        calls.append(_tool_use(block, where))
    elif kind == "tool_result" and role == "user":
        results.append(_tool_result(block, where))
    elif kind in ("thinking", "redacted_thinking"):
        return  # the model's private reasoning: other vendors cannot take it back
    else:
        raise bad_request(where, f"unsupported content block for role {role}: {kind!r}")


def _content(parts: list[dict[str, Any]]) -> Any:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts or None


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str) and data:
            return f"data:{media};base64,{data}"
    if isinstance(source, dict) and source.get("type") == "url":
        url = source.get("url")
        if isinstance(url, str) and url:
            return url
    raise bad_request(f"{where}.source", "expected a base64 or url image source")


def _tool_use(block: dict[str, Any], where: str) -> dict[str, Any]:
    name, call_id = block.get("name"), block.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise bad_request(where, "a tool_use block needs a string id and name")
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, content = block.get("tool_use_id"), block.get("content")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"{where}.tool_use_id", "expected the id of the tool_use it answers")
    if isinstance(content, list):
        texts = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        content = "\n".join(_text(b, f"{where}.content") for b in texts)
    elif content is not None and not isinstance(content, str):
        raise bad_request(f"{where}.content", "expected a string or an array of blocks")
    return {"role": "tool", "tool_call_id": call_id, "content": content or ""}


def _tool(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise bad_request(f"tools[{i}]", "expected a tool with a name and an input_schema")
    check_fields(tool, TOOL_FIELDS, f"tools[{i}].")
    fn = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    for key in ("description", "strict"):
        if tool.get(key) is not None:
            fn[key] = tool[key]
    return {"type": "function", "function": fn}


def _tool_choice(choice: dict[str, Any] | None) -> Any:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind in TOOL_CHOICES:
        return TOOL_CHOICES[kind]
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad_request("tool_choice", 'expected type "auto", "any", "none" or "tool" with a name')


# --- response ---------------------------------------------------------------------------------
def message_id(response_id: str | None, request_id: str) -> str:
    return response_id if response_id and response_id.startswith("msg_") else f"msg_{request_id}"


def usage_to_anthropic(usage: Usage) -> dict[str, int]:
    fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, fresh),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_input(arguments: str) -> Any:
    """OpenAI's JSON-string arguments as the object ``tool_use.input`` must be."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": value}


def message_body(response: Response, request_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if response.content:
        content.append({"type": "text", "text": response.content})
    for call in response.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    return {
        "id": message_id(response.id, request_id),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason, response.stop_sequence),
        "stop_sequence": response.stop_sequence,
        "usage": usage_to_anthropic(response.usage),
    }


def stop_reason(finish: str | None, stop_sequence: str | None) -> str:
    if stop_sequence is not None:
        return "stop_sequence"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicStreamEncoder:
    """``message_start``, content blocks (text, tool_use) opened and closed as the pieces
    arrive, ``message_delta`` with the stop reason and usage, ``message_stop``."""

    def __init__(self, msg_id: str, model: str) -> None:
        self._id, self._model = msg_id, model
        self._open: int | None = None  # the content block being streamed
        self._open_is_text = False
        self._blocks = 0
        self._tools: dict[int, int] = {}  # tool-call index -> content block index

    def head(self, chunk: StreamChunk) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message}) + self.chunk(
            chunk
        )

    def chunk(self, chunk: StreamChunk) -> bytes:
        out = b""
        if chunk.delta:
            if self._open is None or not self._open_is_text:
                out += self._start({"type": "text", "text": ""}, is_text=True)
            delta = {"type": "text_delta", "text": chunk.delta}
            out += self._delta(delta)
        for piece in chunk.tool_call_deltas:
            out += self._tool_piece(piece)
        if chunk.finish_reason is not None:
            out += self._close() + self._finish(chunk)
        return out

    def _tool_piece(self, piece: ToolCallDelta) -> bytes:
        out = b""
        block = self._tools.get(piece.index)
        if block is None:
            head = {"type": "tool_use", "id": piece.id or "", "name": piece.name or "", "input": {}}
            out += self._start(head, is_text=False)
            block = self._tools[piece.index] = self._blocks - 1
        if piece.arguments:
            delta = {"type": "input_json_delta", "partial_json": piece.arguments}
            out += event(
                "content_block_delta",
                {"type": "content_block_delta", "index": block, "delta": delta},
            )
        return out

    def _start(self, block: dict[str, Any], *, is_text: bool) -> bytes:
        out = self._close()
        self._open, self._open_is_text = self._blocks, is_text
        self._blocks += 1
        data = {"type": "content_block_start", "index": self._open, "content_block": block}
        return out + event("content_block_start", data)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        data = {"type": "content_block_delta", "index": self._open, "delta": delta}
        return event("content_block_delta", data)

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open, None
        return event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _finish(self, chunk: StreamChunk) -> bytes:
        reason = stop_reason(chunk.finish_reason, chunk.stop_sequence)
        delta = {"stop_reason": reason, "stop_sequence": chunk.stop_sequence}
        usage = usage_to_anthropic(chunk.usage or Usage())
        data = {"type": "message_delta", "delta": delta, "usage": usage}
        return event("message_delta", data) + event("message_stop", {"type": "message_stop"})

    def tail(self) -> bytes:
        return b""

    def error(self, error: ApiError) -> bytes:
        body = {
            "type": "error",
            "error": {"type": error.anthropic_type(), "message": error.message},
        }
        return event("error", body)


# --- handler ----------------------------------------------------------------------------------
async def messages(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    parsed, stream = parse_messages(await read_json(request, gateway), trace)
    if stream:
        opened = await open_stream(gateway, trace, parsed)
        model = opened.first.model or parsed.model
        encoder = AnthropicStreamEncoder(message_id(None, trace.request_id), model)
        return await relay(request, opened, encoder)
    response = await send(gateway, trace, parsed)
    return json_response(message_body(response, trace.request_id))
