"""A Responses API body (``POST /v1/responses``) as our ``Request``, whatever vendor answers.

Fields, decided once:

* understood: ``model, input`` (a string, or items: ``message`` with text and image parts,
  ``function_call``, ``function_call_output``), ``instructions`` (a system message, not kept
  for ``previous_response_id``, as OpenAI does), ``tools`` (function tools; hosted tools only
  for an OpenAI vendor on the Responses API, checked by the handler), ``tool_choice,
  max_output_tokens, temperature, top_p, text.format`` (``text``, ``json_object``,
  ``json_schema``), ``metadata, user, parallel_tool_calls, store, previous_response_id,
  stream``;
* accepted and not forwarded (hints with no effect on an answer we can honour everywhere):
  ``include, reasoning, truncation: "disabled", service_tier, safety_identifier,
  prompt_cache_key, stream_options, top_logprobs``;
* refused with a 400 saying what to do instead (they need OpenAI's servers): ``background,
  conversation, prompt, max_tool_calls``;
* anything else is a 400 naming it, as OpenAI answers an unknown parameter.

Input items are kept in one normal form (ids added, a string content as an ``input_text``
part): that is what ``GET /v1/responses/{id}/input_items`` lists and what a stored
conversation holds. ``reasoning`` items (echoed back by agent frameworks) carry nothing another
vendor can read and are skipped; other item types are a 400 naming ``input[i].type``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..types import ImagePart, Message, Request, Role, TextPart, ToolCall
from .errors import ApiError, bad_request
from .validation import (
    ARRAY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    OBJECT,
    STRING,
    check_fields,
    check_model_name,
    make_request,
    require,
)

Item = dict[str, Any]
FIELDS = {
    "model": STRING,
    "input": ((str, list), "a string or an array of input items"),
    "instructions": STRING,
    "tools": ARRAY,
    "tool_choice": ((str, dict), "a string or an object"),
    "max_output_tokens": INTEGER,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "text": OBJECT,
    "metadata": OBJECT,
    "user": STRING,
    "parallel_tool_calls": BOOLEAN,
    "store": BOOLEAN,
    "previous_response_id": STRING,
    "stream": BOOLEAN,
}
IGNORED = frozenset(
    {
        "include", "reasoning", "truncation", "service_tier", "safety_identifier",
        "prompt_cache_key", "stream_options", "top_logprobs",
    }
)  # fmt: skip
# OpenAI's own fields that need its servers: refused with what to do instead.
UNSUPPORTED = {
    "background": "background runs are not supported: wait for the answer, or stream it",
    "conversation": "conversation objects are not supported: chain previous_response_id",
    "prompt": "stored prompt templates are OpenAI's: send instructions and input",
    "max_tool_calls": "not supported: it limits hosted tool calls, which run on OpenAI only",
}
DETAILS = ("auto", "low", "high", "original")  # "original": no hint reaches the vendor
ROLES: dict[str, Role] = {
    "user": "user", "system": "system", "developer": "system", "assistant": "assistant",
}  # fmt: skip
ID_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A parsed body: the dispatcher's request, this call's input items (normal form), and
    what the response object echoes back."""

    request: Request
    input_items: list[Item]
    stream: bool
    store: bool
    echo: Item


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def check_body(body: Mapping[str, Any]) -> None:
    """Types and required fields; an unknown field is a 400 naming it."""
    for name in body:
        if name in UNSUPPORTED and body[name] not in (None, False):
            raise bad_request(name, UNSUPPORTED[name])
        if name not in FIELDS and name not in IGNORED and name not in UNSUPPORTED:
            raise ApiError(
                400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
            )
    check_fields(body, FIELDS)
    require(body, "model", "the model to use")
    check_model_name(body["model"])
    require(body, "input", "a string or an array of input items")
    if body.get("max_output_tokens") is not None and body["max_output_tokens"] < 1:
        raise bad_request("max_output_tokens", "must be a positive integer")
    if body.get("truncation") not in (None, "disabled"):
        raise bad_request("truncation", 'only "disabled" is supported')


def parse_items(value: str | list[Any]) -> list[Item]:
    """``input`` in normal form; 400 naming ``input[i]...`` for what is wrong."""
    if isinstance(value, str):
        return [_message({"role": "user", "content": value}, "input")]
    items = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(raw, dict):
            raise bad_request(where, "expected an input item object")
        kind = raw.get("type", "message" if "role" in raw else None)
        if kind == "message":
            items.append(_message(raw, where))
        elif kind == "function_call":
            items.append(_function_call(raw, where))
        elif kind == "function_call_output":
            items.append(_function_output(raw, where))
        elif kind != "reasoning":
            raise bad_request(
                f"{where}.type",
                f"unsupported input item type {str(kind)[:40]!r}: use message, function_call "
                "or function_call_output",
            )
    return items


def check_calls_answered(context: list[Item], items: list[Item]) -> None:
    """Every ``function_call_output`` answers a ``function_call`` made before it."""
    made = {item["call_id"] for item in context if item["type"] == "function_call"}
    for i, item in enumerate(items):
        if item["type"] == "function_call":
            made.add(item["call_id"])
        elif item["type"] == "function_call_output" and item["call_id"] not in made:
            raise bad_request(
                f"input[{i}].call_id",
                f"no function call with call_id {item['call_id'][:64]!r} was made in this "
                "conversation (send its function_call item, or the previous_response_id "
                "that made it)",
            )


def to_messages(instructions: str | None, items: Iterable[Item]) -> list[Message]:
    """The conversation as chat messages: adjacent ``function_call`` items (and the assistant
    text before them) become one assistant turn with tool calls, as Chat Completions has it."""
    messages = [Message("system", instructions)] if instructions else []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append(Message(ROLES[item["role"]], _content(item["content"])))
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                calls = (*(last.tool_calls or ()), call)
                messages[-1] = Message("assistant", last.content, tool_calls=calls)
            else:
                messages.append(Message("assistant", None, tool_calls=(call,)))
        else:
            messages.append(Message("tool", item["output"], tool_call_id=item["call_id"]))
    return messages


def split_tools(tools: list[Any] | None) -> tuple[list[Item], list[Item]]:
    """(function tools in Chat Completions' shape, hosted tools as given)."""
    functions, hosted = [], []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise bad_request(where, "expected a tool object with a type")
        if tool["type"] != "function":
            hosted.append(tool)
            continue
        fields = {"name": STRING, "description": STRING, "parameters": OBJECT, "strict": BOOLEAN}
        check_fields(tool, fields, f"{where}.")
        require(tool, "name", "the function's name", f"{where}.")
        fn = {k: tool[k] for k in ("name", "description", "parameters") if tool.get(k)}
        if tool.get("strict") is not None:  # kept: OpenAI enforces it, others translate/refuse
            fn["strict"] = tool["strict"]
        functions.append({"type": "function", "function": fn})
    return functions, hosted


def tool_choice(value: Any) -> Any:
    """Responses' ``tool_choice`` in Chat Completions' shape."""
    if value is None or isinstance(value, str):
        return value
    if value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    if value.get("type") == "allowed_tools":
        raise bad_request("tool_choice", "allowed_tools is not supported: narrow tools instead")
    return value  # a hosted tool's choice: the handler refuses it off OpenAI


def response_format(text: Mapping[str, Any] | None) -> Item | None:
    """``text.format`` as Chat Completions' ``response_format``."""
    fmt = (text or {}).get("format")
    if fmt is not None and not isinstance(fmt, dict):
        raise bad_request("text.format", "expected an object with a type")
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
            raise bad_request("text.format", "json_schema needs a name and a schema object")
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}
    raise bad_request("text.format.type", "expected text, json_object or json_schema")


def build_request(
    body: Mapping[str, Any],
    messages: list[Message],
    metadata: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> Request:
    functions, _ = split_tools(body.get("tools"))
    return make_request(
        model=body["model"],
        messages=messages,
        temperature=body.get("temperature"),
        max_tokens=body.get("max_output_tokens"),
        top_p=body.get("top_p"),
        tools=functions or None,
        tool_choice=tool_choice(body.get("tool_choice")) if functions else None,
        response_format=response_format(body.get("text")),
        user=body.get("user"),
        metadata=metadata,
        extra=extra or None,
    )


# --- items in normal form ---------------------------------------------------------------------
def _message(raw: Mapping[str, Any], where: str) -> Item:
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise bad_request(f"{where}.role", "expected user, system, developer or assistant")
    content = raw.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts = [_text_part(kind, content)]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    else:
        raise bad_request(f"{where}.content", "expected a string or an array of content parts")
    item_id = raw.get("id") if isinstance(raw.get("id"), str) else new_id("msg_")
    return {"type": "message", "id": item_id, "role": role, "content": parts, "status": "completed"}


def _text_part(kind: str, text: str) -> Item:
    part: Item = {"type": kind, "text": text}
    if kind == "output_text":
        part["annotations"] = []
    return part


def _part(raw: Any, where: str) -> Item:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        text = raw.get("refusal") if kind == "refusal" else raw.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{where}.text", "expected a string")
        return _text_part("output_text" if kind == "refusal" else kind, text)
    if kind == "input_image":
        url = raw.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad_request(
                f"{where}.image_url", "expected an https URL or a data: URI (file_id is not "
                "supported: send the image itself)",
            )  # fmt: skip
        detail = raw.get("detail", "auto")
        if detail not in DETAILS:
            raise bad_request(f"{where}.detail", "expected auto, low, high or original")
        return {"type": "input_image", "image_url": url, "detail": detail}
    raise bad_request(f"{where}.type", "expected input_text, input_image or output_text")


def _function_call(raw: Mapping[str, Any], where: str) -> Item:
    fields = {"call_id": STRING, "name": STRING, "arguments": STRING}
    check_fields(raw, fields, f"{where}.")
    for name in fields:
        require(raw, name, "a string", f"{where}.")
    item_id = raw.get("id") if isinstance(raw.get("id"), str) else new_id("fc_")
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": raw["call_id"],
        "name": raw["name"],
        "arguments": raw["arguments"],
        "status": "completed",
    }


def _function_output(raw: Mapping[str, Any], where: str) -> Item:
    check_fields(raw, {"call_id": STRING}, f"{where}.")
    require(raw, "call_id", "the call_id of the function_call it answers", f"{where}.")
    output = raw.get("output")
    if isinstance(output, list) and all(
        isinstance(p, dict) and isinstance(p.get("text"), str) for p in output
    ):  # text parts: their text (an image cannot go in every vendor's tool result)
        output = "".join(p["text"] for p in output)
    if not isinstance(output, str):
        raise bad_request(f"{where}.output", "expected a string or an array of text parts")
    item_id = raw.get("id") if isinstance(raw.get("id"), str) else new_id("fco_")
    return {
        "type": "function_call_output",
        "id": item_id,
        "call_id": raw["call_id"],
        "output": output,
        "status": "completed",
    }


def _content(parts: list[Item]) -> tuple[TextPart | ImagePart, ...] | str:
    if all(p["type"] != "input_image" for p in parts):
        return "".join(p["text"] for p in parts)
    return tuple(
        ImagePart(p["image_url"], None if p["detail"] == "original" else p["detail"])
        if p["type"] == "input_image"
        else TextPart(p["text"])
        for p in parts
    )
