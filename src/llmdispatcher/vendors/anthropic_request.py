"""Request translation for the Anthropic Messages API (docs.anthropic.com/en/api/messages):
OpenAI-shaped messages, tools and options to ``system``, alternating ``messages`` of content
blocks, ``tools``, ``tool_choice``, ``metadata`` and ``output_config``.

Why these choices:

* ``system`` messages (wherever they are) join into the top-level ``system``; ``tool`` messages
  become ``tool_result`` blocks in a user turn, and consecutive turns of one role are merged, so
  the turns strictly alternate and a parallel call's results share one user turn, ahead of any
  text that follows them (the API wants the results first).
* Empty text is never sent (Anthropic rejects empty text blocks); a message left with nothing
  is dropped, since an empty turn is a 400 and carries nothing.
* Tool-call ``arguments`` (a JSON string) become ``tool_use.input`` (an object).
* JSON: ``json_schema`` -> ``output_config.format``, with object schemas closed
  (``additionalProperties: false``) as Anthropic requires. Anthropic has no schema-free JSON
  mode (a permissive ``{"type": "object"}`` output schema is a 400), so ``json_object`` is
  emulated the established way: one forced tool whose input schema is any object, its input
  returned as the answer's text.
* What Anthropic cannot take is refused before sending: ``UnsupportedRequest`` when another
  vendor may take it (an image type, ``json_object`` with tools), ``InvalidRequestError`` when
  the request itself is malformed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..errors import InvalidRequestError, UnsupportedRequest
from ..types import ImagePart, Message, Request, TextPart, Tool, ToolCall

TOOL_CHOICES: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
}
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# The forced tool that emulates ``response_format: json_object``.
JSON_TOOL = "json_output"
JSON_TOOL_DEF: dict[str, Any] = {
    "name": JSON_TOOL,
    "description": "Give your whole answer as this tool's input: one JSON object.",
    "input_schema": {"type": "object"},
}


def translate(request: Request, vendor: str) -> dict[str, Any]:
    """The body fields that follow from the request alone (all but ``model``, ``max_tokens``,
    sampling parameters, ``stream`` and ``extra``, which depend on the vendor's settings)."""
    system, messages = messages_to_anthropic(request.message_list, vendor)
    fields = {
        "messages": messages,
        "system": system,
        "stop_sequences": list(request.stop_list) or None,
        "tools": [tool_to_anthropic(t) for t in request.tool_list] or None,
        "tool_choice": _tool_choice(request, vendor),
        "metadata": {"user_id": request.user} if request.user else None,
    }
    body = {k: v for k, v in fields.items() if v is not None}
    body.update(response_format_fields(request, vendor))
    return body


def messages_to_anthropic(
    messages: Sequence[Message], vendor: str
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, turns): system messages joined into one prompt; the rest as alternating
    user/assistant turns of content blocks (``tool`` messages become user ``tool_result``s)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role == "system":
            if message.text:
                system.append(message.text)
            continue
        blocks = _blocks(message, f"request.messages[{i}]", vendor)
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty message says nothing anyway
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), turns


def _blocks(message: Message, where: str, vendor: str) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        content = _parts(message.content, where, vendor)
        if content:
            result["content"] = content
        return [result]
    blocks = _parts(message.content, where, vendor)
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c, where, vendor)}
            for c in message.tool_calls or ()
        ]
    return blocks


def _parts(content: Any, where: str, vendor: str) -> list[dict[str, Any]]:
    """Content blocks, without empty text (Anthropic rejects empty text blocks)."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append(_image(part, f"{where}.content[{j}]", vendor))
    return blocks


def _image(part: ImagePart, where: str, vendor: str) -> dict[str, Any]:
    if not part.is_data_uri:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    try:
        media_type, data = part.data_uri_parts()
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}", vendor=vendor) from None
    if media_type not in IMAGE_TYPES:
        raise UnsupportedRequest(
            f"{where}: Anthropic takes {', '.join(sorted(IMAGE_TYPES))} images, not "
            f"{media_type}; convert the image or route it to another vendor",
            vendor=vendor,
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_input(call: ToolCall, where: str, vendor: str) -> Any:
    """OpenAI's JSON-string arguments as the object Anthropic's ``tool_use.input`` needs."""
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{where}: the arguments of tool call {call.id!r} are not a JSON object; "
            "Anthropic needs one",
            vendor=vendor,
        )
    return value


def tool_to_anthropic(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "input_schema": dict(tool.parameters)}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(request: Request, vendor: str) -> dict[str, Any] | None:
    """``tool_choice``, with ``parallel_tool_calls: false`` as ``disable_parallel_tool_use``
    (which lives inside it: ``auto`` when the request chose nothing; ``none`` has no calls)."""
    choice: dict[str, Any] | None = tool_choice_to_anthropic(request.tool_choice, vendor)
    if request.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return choice


def tool_choice_to_anthropic(choice: Any, vendor: str) -> dict[str, str] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return dict(TOOL_CHOICES[choice])
    fn = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
        return {"type": "tool", "name": fn["name"]}
    raise InvalidRequestError(
        f"request.tool_choice: {choice!r} is not 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        vendor=vendor,
    )


def closed_schema(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that leaves it
    unset: Anthropic's structured output requires it (OpenAI only under ``strict``), and the
    anthropic SDK's ``transform_schema`` closes schemas the same way."""
    if isinstance(schema, Mapping):
        out = {k: closed_schema(v) for k, v in schema.items()}
        if out.get("type") == "object" and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed_schema(v) for v in schema]
    return schema


def wants_json_tool(request: Request) -> bool:
    fmt = request.response_format
    return fmt is not None and fmt.get("type") == "json_object"


def response_format_fields(request: Request, vendor: str) -> dict[str, Any]:
    """``output_config`` for ``json_schema``; the forced JSON tool for ``json_object``."""
    fmt = request.response_format
    kind = fmt.get("type") if fmt is not None else None
    if fmt is None or kind == "text":
        return {}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                "request.response_format.json_schema.schema: a JSON Schema object is required",
                vendor=vendor,
            )
        return {
            "output_config": {"format": {"type": "json_schema", "schema": closed_schema(schema)}}
        }
    if kind == "json_object":
        if request.tools:
            raise UnsupportedRequest(
                "request.response_format: Anthropic's json_object mode is a forced tool "
                "and cannot be combined with tools; use a json_schema response_format",
                vendor=vendor,
            )
        return {"tools": [JSON_TOOL_DEF], "tool_choice": {"type": "tool", "name": JSON_TOOL}}
    raise InvalidRequestError(
        f"request.response_format.type: {kind!r} is not text, json_object or json_schema",
        vendor=vendor,
    )
