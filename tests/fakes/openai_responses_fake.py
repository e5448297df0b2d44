"""The Responses API half of the fake OpenAI (``POST /v1/responses``): request checks and the
rendering of a scripted step as a response object or its typed event stream, as the real API
sends them (proven with the official SDK's ``responses.create`` / ``responses.stream`` in
tests/test_fake_openai_responses_sdk.py). ``FakeOpenAI`` routes here by path."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from .openai_validation import Problem
from .script import Reply, split_text
from .server import Call, StreamPlan

# The top-level fields of openai/types/responses/response_create_params.py (SDK 3.63).
ALLOWED_FIELDS = frozenset(
    {
        "model", "input", "background", "conversation", "include", "instructions",
        "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "reasoning", "safety_identifier",
        "service_tier", "store", "stream", "stream_options", "temperature", "text",
        "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    }
)  # fmt: skip
ITEM_TYPES = ("message", "function_call", "function_call_output")
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# kind -> (code, message) of a ``response.failed`` / ``error`` event
STREAM_FAILS = {"rate_limit": "rate_limit_exceeded", "server": "server_error"}


def validate_responses(body: Any) -> None:
    """What the real API refuses with a 400 (the subset our adapter could get wrong)."""
    if not isinstance(body, dict):
        raise Problem("We could not parse the JSON body of your request.", code="invalid_json")
    for name in body:
        if name not in ALLOWED_FIELDS:
            raise Problem(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    for name in ("model", "input"):
        if body.get(name) in (None, "", []):
            raise Problem(
                f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
            )
    max_out = body.get("max_output_tokens")
    if max_out is not None and (not isinstance(max_out, int) or max_out < 16):
        raise Problem(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
            f"but got {max_out} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    if isinstance(body["input"], list):
        for i, item in enumerate(body["input"]):
            _validate_item(item, f"input[{i}]")
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") == "function" and "function" in tool:
            raise Problem(
                f"Unknown parameter: 'tools[{i}].function'.",
                f"tools[{i}].function",
                "unknown_parameter",
            )


def _validate_item(item: Any, where: str) -> None:
    kind = item.get("type", "message") if isinstance(item, dict) else None
    if kind not in ITEM_TYPES:
        raise Problem(f"Invalid value: '{kind}'.", f"{where}.type", "invalid_value")
    if kind == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
        raise Problem(f"Invalid value: '{item.get('role')}'.", f"{where}.role", "invalid_value")
    if kind != "message" and not isinstance(item.get("call_id"), str):
        raise Problem(f"Missing required parameter: '{where}.call_id'.", f"{where}.call_id")


def start(call: Call, body: dict[str, Any]) -> None:
    call.meta.update(
        api="responses",
        id="resp_" + secrets.token_hex(24),
        created=int(time.time()),
        echo=body,
        seq=0,
    )


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": reply.total_tokens,
    }


def _items(call: Call, reply: Reply) -> list[dict[str, Any]]:
    """Stable output items for ``reply`` (the same ids in every frame)."""
    key = f"items-{id(reply)}"
    if key not in call.meta:
        items: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
            items.append(
                {"type": "message", "id": "msg_" + secrets.token_hex(24), "status": "completed",
                 "role": "assistant", "content": [part]}
            )  # fmt: skip
        for tc in reply.tool_calls:
            items.append(
                {"type": "function_call", "id": "fc_" + secrets.token_hex(24),
                 "call_id": "call_" + secrets.token_hex(12), "name": tc.name,
                 "arguments": orjson.dumps(tc.arguments).decode(), "status": "completed"}
            )  # fmt: skip
        call.meta[key] = items
    found: list[dict[str, Any]] = call.meta[key]
    return found


def response_object(call: Call, reply: Reply | None, status: str) -> dict[str, Any]:
    echo = call.meta["echo"]
    reason = INCOMPLETE.get(reply.finish) if reply is not None else None
    if reason and status == "completed":
        status = "incomplete"
    done = status in ("completed", "incomplete")
    return {
        "id": call.meta["id"],
        "object": "response",
        "created_at": call.meta["created"],
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason and done else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": echo.get("model"),
        "output": _items(call, reply) if reply is not None and done else [],
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "store": echo.get("store", True),
        "temperature": echo.get("temperature", 1.0),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools") or [],
        "top_p": echo.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(reply) if reply is not None and done else None,
        "user": echo.get("user"),
        "metadata": echo.get("metadata") or {},
    }


def event(call: Call, kind: str, **fields: Any) -> bytes:
    data = {"type": kind, "sequence_number": call.meta["seq"], **fields}
    call.meta["seq"] += 1
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream_plan(call: Call, reply: Reply) -> StreamPlan:
    plan = StreamPlan()
    plan.head.append(
        event(call, "response.created", response=response_object(call, None, "in_progress"))
    )
    plan.head.append(
        event(call, "response.in_progress", response=response_object(call, None, "in_progress"))
    )
    for index, item in enumerate(_items(call, reply)):
        plan.content += _item_frames(call, reply, index, item)
    plan.tail.append(
        event(call, "response.completed", response=response_object(call, reply, "completed"))
    )
    return plan


def _item_frames(call: Call, reply: Reply, index: int, item: dict[str, Any]) -> list[bytes]:
    """One frame per delta, the item's opening events riding on the first and its closing
    events on the last (so ``after_chunks`` counts pieces of the answer, as for chat)."""
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        part = item["content"][0]
        opened = {**item, "status": "in_progress", "content": []}
        head = event(call, "response.output_item.added", output_index=index, item=opened)
        head += event(call, "response.content_part.added", **where, content_index=0,
                      part={**part, "text": ""})  # fmt: skip
        deltas = [
            event(call, "response.output_text.delta", **where, content_index=0, delta=piece,
                  logprobs=[])
            for piece in reply.text_pieces()
        ]  # fmt: skip
        tail = event(call, "response.output_text.done", **where, content_index=0,
                     text=part["text"], logprobs=[])  # fmt: skip
        tail += event(call, "response.content_part.done", **where, content_index=0, part=part)
    else:
        opened = {**item, "status": "in_progress", "arguments": ""}
        head = event(call, "response.output_item.added", output_index=index, item=opened)
        deltas = [
            event(call, "response.function_call_arguments.delta", **where, delta=piece)
            for piece in split_text(item["arguments"], reply.chunk_size)
        ]
        tail = event(call, "response.function_call_arguments.done", **where, name=item["name"],
                     arguments=item["arguments"])  # fmt: skip
    tail += event(call, "response.output_item.done", output_index=index, item=item)
    frames = deltas or [b""]
    frames[0] = head + frames[0]
    frames[-1] += tail
    return frames


def stream_error_frame(call: Call, kind: str, message: str) -> bytes:
    code = STREAM_FAILS.get(kind, "server_error")
    return event(call, "error", code=code, message=message, param=None)
