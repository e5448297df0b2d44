"""Request translation for Gemini ``generateContent`` (ai.google.dev/api/generate-content):
OpenAI-shaped messages, tools and options to ``contents``, ``systemInstruction``, ``tools``,
``toolConfig`` and ``generationConfig``; and the tool-call id codec that carries thought
signatures.

Why these choices:

* Tool parameters go out as ``parametersJsonSchema``: callers write JSON Schema (OpenAI's
  ``parameters``), and Gemini's ``parameters`` field is an OpenAPI subset that rejects common
  JSON Schema words (``additionalProperties``, ``$ref``, ``const``...) with a 400; google-genai
  prefers it too (``FunctionDeclaration.from_callable(use_json_schema=True)``).
* Gemini function calls carry no id in generateContent, so ids are made up (``call_<hex>``, or
  the ``id`` Gemini sends). A call's ``thoughtSignature``, which Gemini 2.5+/3 wants back
  unchanged in later turns (Gemini 3 answers 400 without it), rides inside the id as
  ``<id>__ts_<signature>``, the signature in URL-safe base64 without padding so the id keeps to
  ``[A-Za-z0-9_-]`` (other vendors' id rules); it is restored byte for byte on the way back.
  Ids themselves are not sent: Gemini pairs responses with calls by name and order.
* Tool results become ``functionResponse`` parts in a user turn (consecutive turns of one role
  are merged, so a parallel call's results share one turn); ``response`` must be a JSON object,
  so anything else is wrapped as ``{"result": ...}``.
* What Gemini cannot take is refused before sending with ``UnsupportedRequest`` (another vendor
  may take it): more than 5 stop sequences, images in system or tool messages, image URLs that
  are not https or whose type the extension does not tell (``fileData`` needs a ``mimeType``;
  a guess could be wrong).
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..errors import InvalidRequestError, UnsupportedRequest
from ..types import ImagePart, Message, Request, TextPart, Tool, ToolCall

TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# The image types Gemini reads (ai.google.dev/gemini-api/docs/image-understanding).
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
MAX_STOP_SEQUENCES = 5
SIGNATURE_MARK = "__ts_"


def to_contents(messages: Sequence[Message], vendor: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, contents): system messages become ``systemInstruction``; the rest become
    ``user``/``model`` turns, consecutive turns of one role merged (so the results of a parallel
    call share one user turn, as Gemini requires)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(messages):
        if message.role == "system":
            if message.images:
                raise UnsupportedRequest(
                    "Gemini's systemInstruction takes text only: move the image to a user message",
                    vendor=vendor,
                )
            if message.text:
                system.append(message.text)
            continue
        role, parts = _turn(message, index, call_names, vendor)
        if not parts:  # Gemini rejects empty turns and empty text parts
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one non-empty user or assistant message besides the system "
            "prompt",
            vendor=vendor,
        )
    return system, contents


def _turn(
    message: Message, index: int, call_names: dict[str, str], vendor: str
) -> tuple[str, list[dict[str, Any]]]:
    where = f"request.messages[{index}]"
    if message.role == "tool":
        return "user", [_function_response(message, where, call_names, vendor)]
    parts = _content_parts(message, vendor)
    if message.role == "user":
        return "user", parts
    for k, call in enumerate(message.tool_calls or ()):
        call_names[call.id] = call.name
        parts.append(_function_call(call, f"{where}.tool_calls[{k}]", vendor))
    return "model", parts


def _content_parts(message: Message, vendor: str) -> list[dict[str, Any]]:
    content = message.content
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(p, vendor) for p in content if not (isinstance(p, TextPart) and not p.text)]


def _part(part: TextPart | ImagePart, vendor: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if part.is_data_uri:
        try:
            mime, data = part.data_uri_parts()
        except ValueError as exc:
            raise InvalidRequestError(f"image: {exc}", vendor=vendor) from None
        return {"inlineData": {"mimeType": mime, "data": data}}
    if not part.url.startswith("https://"):
        raise UnsupportedRequest(
            "Gemini takes images as data: URIs or https URLs; send this one as a data: URI",
            vendor=vendor,
        )
    suffix = posixpath.splitext(urlsplit(part.url).path)[1].lower()
    url_mime = IMAGE_TYPES.get(suffix)
    if url_mime is None:
        raise UnsupportedRequest(
            f"Gemini needs the image type of a URL image and {suffix or 'no extension'!r} does "
            f"not tell it (known: {', '.join(IMAGE_TYPES)}): send the image as a data: URI",
            vendor=vendor,
        )
    return {"fileData": {"mimeType": url_mime, "fileUri": part.url}}


def _function_call(call: ToolCall, where: str, vendor: str) -> dict[str, Any]:
    try:
        args = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"{where}.function.arguments: Gemini needs a JSON object string, got "
            f"{call.arguments[:60]!r}",
            vendor=vendor,
        )
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
    signature = decode_call_id(call.id)[1]
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(
    message: Message, where: str, call_names: Mapping[str, str], vendor: str
) -> dict[str, Any]:
    if message.images:
        raise UnsupportedRequest(
            f"{where}: Gemini tool results take no images here; put the image in a user message",
            vendor=vendor,
        )
    name = call_names.get(message.tool_call_id or "") or message.name
    if not name:
        raise InvalidRequestError(
            f"{where}.tool_call_id: {message.tool_call_id!r} answers no earlier assistant "
            "tool call, and Gemini needs the function's name (set the message's name)",
            vendor=vendor,
        )
    return {"functionResponse": {"name": name, "response": result_object(message.text)}}


def result_object(text: str) -> dict[str, Any]:
    """A tool result as the JSON object Gemini requires: objects as they are, the rest wrapped."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def declaration(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "parametersJsonSchema": dict(tool.parameters)}
    if tool.description is not None:
        out["description"] = tool.description
    return out


def calling_config(choice: str | Mapping[str, Any], names: set[str], vendor: str) -> dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"mode": TOOL_MODES[choice]}
    fn = choice.get("function") if isinstance(choice, Mapping) else None
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if isinstance(choice, Mapping) and choice.get("type") == "function" and isinstance(name, str):
        if name not in names:
            raise InvalidRequestError(
                f"tool_choice names {name!r}, which is not in tools", vendor=vendor
            )
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InvalidRequestError(
        f"tool_choice {choice!r} is not understood: use 'auto', 'none', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        vendor=vendor,
    )


def generation_config(request: Request, vendor: str) -> dict[str, Any]:
    stops = request.stop_list
    if len(stops) > MAX_STOP_SEQUENCES:
        raise UnsupportedRequest(
            f"Gemini takes at most {MAX_STOP_SEQUENCES} stop sequences, not {len(stops)}: "
            "drop some",
            vendor=vendor,
        )
    config = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "maxOutputTokens": request.max_tokens,
        "stopSequences": list(stops) or None,
    }
    out = {k: v for k, v in config.items() if v is not None}
    out.update(json_output(request.response_format, vendor))
    return out


def json_output(response_format: Mapping[str, Any] | None, vendor: str) -> dict[str, Any]:
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    spec = (response_format or {}).get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if kind == "json_schema" and isinstance(schema, Mapping):
        return {"responseMimeType": "application/json", "responseJsonSchema": dict(schema)}
    raise InvalidRequestError(
        f"response_format {dict(response_format or {})!r} is not understood: use "
        '{"type": "json_object"} or {"type": "json_schema", "json_schema": {"schema": {...}}}',
        vendor=vendor,
    )


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def encode_call_id(base: str, signature: str | None) -> str:
    """``base``, with the thought signature (standard base64) appended URL-safe and unpadded."""
    if not signature:
        return base
    safe = signature.rstrip("=").replace("+", "-").replace("/", "_")
    return f"{base}{SIGNATURE_MARK}{safe}"


def decode_call_id(call_id: str) -> tuple[str, str | None]:
    """(base id, signature as Gemini sent it: standard base64, padded) or (id, None)."""
    base, mark, safe = call_id.partition(SIGNATURE_MARK)
    if not mark or not safe:
        return call_id, None
    signature = safe.replace("-", "+").replace("_", "/")
    return base, signature + "=" * (-len(signature) % 4)
