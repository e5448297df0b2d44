"""Request translation for Bedrock's Converse API (vendors.md §11): OpenAI-shaped messages,
tools and options to ``system``, ``messages`` of content blocks, ``inferenceConfig``,
``toolConfig`` and ``outputConfig``.

Why these choices:

* ``system`` messages join the top-level ``system`` list; ``tool`` messages become
  ``toolResult`` blocks in a user turn, and consecutive turns of one role are merged (Converse
  wants alternating turns and a parallel call's results in one turn). Empty text is never sent
  (Converse rejects a blank text block); a turn left empty is dropped.
* A tool result that is a JSON object goes as ``{"json": ...}``, anything else as text.
* Tool-call ids must match ``[a-zA-Z0-9_.:-]{1,64}``; ids from other vendors that do not (a
  Gemini id with its thought signature) are rewritten the same way in the call and its result
  (a digest), so the pairing holds without a map kept between requests.
* Images: ``data:`` URIs as ``bytes`` (png, jpeg, gif, webp), ``s3://`` URLs as
  ``s3Location``; Converse takes no https image URLs, so those are refused before sending.
* JSON: ``json_schema`` -> ``outputConfig.textFormat`` (the schema as a JSON string);
  ``json_object`` has no Converse equivalent, so it is the forced ``json_output`` tool, as for
  Anthropic. ``tool_choice: "none"`` has no Converse equivalent either: refused.
* ``temperature`` above 1 is refused (Converse takes 0-1), never clipped.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..errors import InvalidRequestError, UnsupportedRequest
from ..types import ImagePart, Message, Request, TextPart, Tool, ToolCall
from .anthropic_request import JSON_TOOL, wants_json_tool

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
JSON_TOOL_SPEC: dict[str, Any] = {
    "toolSpec": {
        "name": JSON_TOOL,
        "description": "Give your whole answer as this tool's input: one JSON object.",
        "inputSchema": {"json": {"type": "object"}},
    }
}


def converse_body(request: Request, vendor: str) -> dict[str, Any]:
    """The Converse body for ``request`` (the model goes in the URL, not here)."""
    system, messages = to_messages(request.message_list, vendor)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = [{"text": text} for text in system]
    config = inference_config(request, vendor)
    if config:
        body["inferenceConfig"] = config
    tools = tool_config(request, vendor)
    if tools:
        body["toolConfig"] = tools
    output = output_config(request, vendor)
    if output:
        body["outputConfig"] = output
    return body


def to_messages(messages: Sequence[Message], vendor: str) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"request.messages[{i}]"
        if message.role == "system":
            if message.images:
                raise UnsupportedRequest(
                    f"{where}: Bedrock's system prompt takes text only: move the image to a "
                    "user message",
                    vendor=vendor,
                )
            if message.text:
                system.append(message.text)
            continue
        blocks = _blocks(message, where, vendor)
        if not blocks:
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequestError(
            "Bedrock needs at least one non-empty user message besides the system prompt",
            vendor=vendor,
        )
    return system, turns


def _blocks(message: Message, where: str, vendor: str) -> list[dict[str, Any]]:
    if message.role == "tool":
        result = {
            "toolUseId": tool_use_id(message.tool_call_id or ""),
            "content": [_result_content(message.text)],
            "status": "success",
        }
        return [{"toolResult": result}]
    blocks = _parts(message, where, vendor)
    for k, call in enumerate(message.tool_calls or ()):
        blocks.append({"toolUse": _tool_use(call, f"{where}.tool_calls[{k}]", vendor)})
    return blocks


def _parts(message: Message, where: str, vendor: str) -> list[dict[str, Any]]:
    content = message.content
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"text": part.text})
        else:
            blocks.append({"image": _image(part, f"{where}.content[{j}]", vendor)})
    return blocks


def _image(part: ImagePart, where: str, vendor: str) -> dict[str, Any]:
    if part.url.startswith("s3://"):
        fmt = IMAGE_FORMATS.get(_type_by_extension(part.url))
        if fmt is None:
            raise UnsupportedRequest(
                f"{where}: the image type of {part.url!r} is not told by its extension "
                "(.png, .jpg, .jpeg, .gif, .webp)",
                vendor=vendor,
            )
        return {"format": fmt, "source": {"s3Location": {"uri": part.url}}}
    if not part.is_data_uri:
        raise UnsupportedRequest(
            f"{where}: Bedrock takes images as data: URIs or s3:// URLs, not web URLs; "
            "send this one as a data: URI",
            vendor=vendor,
        )
    try:
        media_type, data = part.data_uri_parts()
        base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}", vendor=vendor) from None
    fmt = IMAGE_FORMATS.get(media_type)
    if fmt is None:
        raise UnsupportedRequest(
            f"{where}: Bedrock takes {', '.join(sorted(IMAGE_FORMATS))} images, not "
            f"{media_type}; convert the image or route it to another vendor",
            vendor=vendor,
        )
    return {"format": fmt, "source": {"bytes": data}}


def _type_by_extension(url: str) -> str:
    suffix = url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}.get(
        suffix, f"image/{suffix}"
    )


def _tool_use(call: ToolCall, where: str, vendor: str) -> dict[str, Any]:
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{where}.function.arguments: Bedrock needs a JSON object string, got "
            f"{call.arguments[:60]!r}",
            vendor=vendor,
        )
    return {"toolUseId": tool_use_id(call.id), "name": call.name, "input": value}


def tool_use_id(call_id: str) -> str:
    """``call_id`` when Bedrock accepts it, else a stable digest of it (same in and out)."""
    if TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "tooluse_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


def _result_content(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return {"json": value}
    return {"text": text or " "}  # a blank text block is a 400; an empty result is not


def inference_config(request: Request, vendor: str) -> dict[str, Any]:
    if request.temperature is not None and request.temperature > 1:
        raise UnsupportedRequest(
            f"request.temperature: Bedrock takes 0 to 1, not {request.temperature:g}; lower it "
            "or route the request to a vendor that takes up to 2",
            vendor=vendor,
        )
    config = {
        "maxTokens": request.max_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": list(request.stop_list) or None,
    }
    return {k: v for k, v in config.items() if v is not None}


def _tool_spec(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": dict(tool.parameters)}}
    if tool.description is not None:
        spec["description"] = tool.description
    return {"toolSpec": spec}


def tool_config(request: Request, vendor: str) -> dict[str, Any]:
    if wants_json_tool(request):
        if request.tools:
            raise UnsupportedRequest(
                "request.response_format: Bedrock's json_object mode is a forced tool and "
                "cannot be combined with tools; use a json_schema response_format",
                vendor=vendor,
            )
        return {"tools": [JSON_TOOL_SPEC], "toolChoice": {"tool": {"name": JSON_TOOL}}}
    if not request.tools:
        return {}
    config: dict[str, Any] = {"tools": [_tool_spec(t) for t in request.tool_list]}
    if request.tool_choice is not None:
        config["toolChoice"] = _tool_choice(request.tool_choice, vendor)
    return config


def _tool_choice(choice: str | Mapping[str, Any], vendor: str) -> dict[str, Any]:
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if choice == "none":
        raise UnsupportedRequest(
            "request.tool_choice: Bedrock Converse has no 'none'; leave the tools out of this "
            "request instead",
            vendor=vendor,
        )
    fn = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
        return {"tool": {"name": fn["name"]}}
    raise InvalidRequestError(
        f"request.tool_choice: {choice!r} is not 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        vendor=vendor,
    )


def output_config(request: Request, vendor: str) -> dict[str, Any]:
    fmt = request.response_format
    kind = fmt.get("type") if fmt is not None else None
    if fmt is None or kind in ("text", "json_object"):
        return {}
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if kind != "json_schema" or not isinstance(schema, Mapping):
        raise InvalidRequestError(
            f"request.response_format: {dict(fmt)!r} is not understood: use "
            '{"type": "json_object"} or {"type": "json_schema", "json_schema": {"schema": {...}}}',
            vendor=vendor,
        )
    structure: dict[str, Any] = {"schema": orjson.dumps(dict(schema)).decode()}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        structure["name"] = spec["name"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": structure}}}
