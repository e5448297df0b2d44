"""Request validation for the fake Gemini server, as strict as the real proto-JSON front end.

Field names are checked against the v1beta message types (lowerCamelCase; snake_case is accepted
too, as the real parser does); an unknown name is the real 400 ``Invalid JSON payload received.
Unknown name "x" at 'path': Cannot find field.`` with a ``google.rpc.BadRequest`` detail. The
semantic rules (roles, empty contents/parts, one data field per part, function-call turn order,
``functionResponse.response`` being an object, generation limits) follow vendors.md §4.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

import orjson

# Field specs: a message type name, a scalar kind, or a one-item list for repeated fields.
# "struct" is google.protobuf.Struct (a JSON object), "any" is google.protobuf.Value.
Spec = str | list[str]
MESSAGES: dict[str, dict[str, Spec]] = {
    "GenerateContentRequest": {
        "model": "str",
        "contents": ["Content"],
        "systemInstruction": "Content",
        "tools": ["Tool"],
        "toolConfig": "ToolConfig",
        "safetySettings": ["SafetySetting"],
        "generationConfig": "GenerationConfig",
        "cachedContent": "str",
        "serviceTier": "str",
        "store": "bool",
    },
    "Content": {"role": "str", "parts": ["Part"]},
    "Part": {
        "text": "str",
        "inlineData": "Blob",
        "fileData": "FileData",
        "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse",
        "executableCode": "ExecutableCode",
        "codeExecutionResult": "CodeExecutionResult",
        "thought": "bool",
        "thoughtSignature": "bytes",
        "videoMetadata": "VideoMetadata",
        "partMetadata": "struct",
        "mediaResolution": "struct",
    },
    "Blob": {"mimeType": "str", "data": "bytes"},
    "FileData": {"mimeType": "str", "fileUri": "str"},
    "FunctionCall": {"id": "str", "name": "str", "args": "struct"},
    "FunctionResponse": {
        "id": "str",
        "name": "str",
        "response": "struct",
        "parts": ["struct"],
        "willContinue": "bool",
        "scheduling": "str",
    },
    "ExecutableCode": {"language": "str", "code": "str"},
    "CodeExecutionResult": {"outcome": "str", "output": "str"},
    "VideoMetadata": {"startOffset": "str", "endOffset": "str", "fps": "num"},
    "Tool": {
        "functionDeclarations": ["FunctionDeclaration"],
        "googleSearch": "struct",
        "googleSearchRetrieval": "struct",
        "codeExecution": "struct",
        "urlContext": "struct",
        "computerUse": "struct",
        "fileSearch": "struct",
        "googleMaps": "struct",
    },
    "FunctionDeclaration": {
        "name": "str",
        "description": "str",
        "behavior": "str",
        "parameters": "Schema",
        "parametersJsonSchema": "any",
        "response": "Schema",
        "responseJsonSchema": "any",
    },
    # The OpenAPI subset: JSON Schema words like additionalProperties or $ref are unknown here.
    "Schema": {
        "type": "str",
        "format": "str",
        "title": "str",
        "description": "str",
        "nullable": "bool",
        "enum": ["str"],
        "maxItems": "int",
        "minItems": "int",
        "properties": "map:Schema",
        "required": ["str"],
        "minProperties": "int",
        "maxProperties": "int",
        "minLength": "int",
        "maxLength": "int",
        "pattern": "str",
        "example": "any",
        "anyOf": ["Schema"],
        "propertyOrdering": ["str"],
        "default": "any",
        "items": "Schema",
        "minimum": "num",
        "maximum": "num",
    },
    "ToolConfig": {
        "functionCallingConfig": "FunctionCallingConfig",
        "retrievalConfig": "struct",
        "includeServerSideToolInvocations": "bool",
    },
    "FunctionCallingConfig": {"mode": "str", "allowedFunctionNames": ["str"]},
    "SafetySetting": {"category": "str", "threshold": "str"},
    "GenerationConfig": {
        "stopSequences": ["str"],
        "responseMimeType": "str",
        "responseSchema": "Schema",
        "responseJsonSchema": "any",
        "responseModalities": ["str"],
        "candidateCount": "int",
        "maxOutputTokens": "int",
        "temperature": "num",
        "topP": "num",
        "topK": "int",
        "seed": "int",
        "presencePenalty": "num",
        "frequencyPenalty": "num",
        "responseLogprobs": "bool",
        "logprobs": "int",
        "enableEnhancedCivicAnswers": "bool",
        "speechConfig": "struct",
        "thinkingConfig": "ThinkingConfig",
        "imageConfig": "struct",
        "mediaResolution": "str",
    },
    "ThinkingConfig": {"includeThoughts": "bool", "thinkingBudget": "int", "thinkingLevel": "str"},
}
PROTO_TYPES = {
    "str": "TYPE_STRING",
    "bool": "TYPE_BOOL",
    "int": "TYPE_INT32",
    "num": "TYPE_FLOAT",
    "bytes": "TYPE_BYTES",
    "struct": "type.googleapis.com/google.protobuf.Struct",
}
DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
ROLES = ("user", "model")
MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
MAX_STOP_SEQUENCES = 5
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


class Problem(Exception):
    """A request the real API rejects: status, message, RPC status and optional details."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        rpc: str = "INVALID_ARGUMENT",
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.rpc = rpc
        self.field = field

    def details(self) -> list[dict[str, Any]]:
        if self.field is None:
            return []
        violation = {"field": self.field, "description": self.message}
        return [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
        ]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _join(path: str, name: str) -> str:
    return f"{path}.{snake(name)}" if path else snake(name)


def _where(path: str) -> str:
    return f" at '{path}'" if path else ""


def _bad_value(path: str, kind: str, value: Any) -> Problem:
    shown = orjson.dumps(value).decode()[:80]
    type_name = PROTO_TYPES.get(
        kind, f"type.googleapis.com/google.ai.generativelanguage.v1beta.{kind}"
    )
    return Problem(f"Invalid value at '{path}' ({type_name}), {shown}", field=path)


def check_shape(value: Any, kind: Spec, path: str) -> Any:
    """Check ``value`` against a message type or scalar kind; returns it with camelCase keys."""
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise _bad_value(path, kind[0], value)
        return [check_shape(v, kind[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if kind.startswith("map:"):
        if not isinstance(value, dict):
            raise _bad_value(path, "struct", value)
        return {k: check_shape(v, kind[4:], f'{path}["{k}"]') for k, v in value.items()}
    if kind in MESSAGES:
        return _check_message(value, kind, path)
    return _check_scalar(value, kind, path)


def _check_message(value: Any, kind: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_value(path, kind, value)
    fields = MESSAGES[kind]
    out: dict[str, Any] = {}
    for name, item in value.items():
        key = camel(name) if "_" in name else name
        if key not in fields:
            message = (
                f'Invalid JSON payload received. Unknown name "{name}"{_where(path)}: '
                "Cannot find field."
            )
            raise Problem(message, field=path or name)
        if item is not None:
            out[key] = check_shape(item, fields[key], _join(path, key))
    return out


def _check_scalar(value: Any, kind: str, path: str) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    # int64 fields arrive as JSON numbers or, in proto JSON, as decimal strings
    integer = (number and float(value).is_integer()) or (
        isinstance(value, str) and value.lstrip("-").isdigit()
    )
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": integer,
        "num": number,
        "struct": isinstance(value, dict),
        "any": True,
    }
    if kind == "bytes":
        if isinstance(value, str) and _is_base64(value):
            return value
        raise Problem(
            f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for "
            f"{orjson.dumps(value).decode()[:60]}",
            field=path,
        )
    if not ok[kind]:
        raise _bad_value(path, kind, value)
    return value


def _is_base64(text: str) -> bool:
    """Proto JSON takes standard or URL-safe base64, padded or not."""
    normal = text.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except binascii.Error:
        return False
    return True


def validate_generate(raw: Any, *, json_ok: bool) -> dict[str, Any]:
    """The checked request (camelCase keys) or a ``Problem``."""
    if not json_ok:
        raise Problem("Invalid JSON payload received. Unexpected token.", field="")
    body: dict[str, Any] = check_shape(raw if raw is not None else {}, "GenerateContentRequest", "")
    contents = body.get("contents") or []
    if not contents:
        raise Problem("* GenerateContentRequest.contents: contents is not specified\n")
    for i, content in enumerate(contents):
        _check_content(content, f"contents[{i}]")
    if "systemInstruction" in body:
        _check_parts(body["systemInstruction"].get("parts") or [], "system_instruction")
    _check_turn_order(contents)
    _check_generation(body.get("generationConfig") or {})
    names = _check_tools(body.get("tools") or [])
    _check_tool_config(body.get("toolConfig") or {}, names)
    return body


def _check_content(content: dict[str, Any], path: str) -> None:
    role = content.get("role")
    if role is not None and role not in ROLES:
        raise Problem("Please use a valid role: user, model.")
    _check_parts(content.get("parts") or [], path)


def _check_parts(parts: list[dict[str, Any]], path: str) -> None:
    if not parts:
        raise Problem(f"* GenerateContentRequest.{path}.parts: contents.parts must not be empty.\n")
    for j, part in enumerate(parts):
        where = f"{path}.parts[{j}]"
        present = [f for f in DATA_FIELDS if f in part]
        if not present:
            raise Problem(
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
                "one initialized field\n"
            )
        if len(present) > 1:
            raise Problem(
                f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. "
                f"Cannot set '{present[1]}'",
                field=where,
            )
        _check_data(part, where)


def _check_data(part: dict[str, Any], where: str) -> None:
    if "inlineData" in part and not (
        part["inlineData"].get("mimeType") and part["inlineData"].get("data")
    ):
        raise Problem(
            f"* GenerateContentRequest.{where}.inline_data: mime_type and data are required\n"
        )
    if "fileData" in part and not part["fileData"].get("fileUri"):
        raise Problem(f"* GenerateContentRequest.{where}.file_data.file_uri: missing file_uri\n")
    for key, label in (
        ("functionCall", "function_call"),
        ("functionResponse", "function_response"),
    ):
        if key in part and not part[key].get("name"):
            raise Problem(f"* GenerateContentRequest.{where}.{label}.name: Name cannot be empty.\n")
    if "functionResponse" in part and "response" not in part["functionResponse"]:
        raise Problem(
            f"* GenerateContentRequest.{where}.function_response.response: response is required\n"
        )


def _count(content: dict[str, Any], field: str) -> int:
    return sum(1 for p in content.get("parts") or () if field in p)


def _check_turn_order(contents: list[dict[str, Any]]) -> None:
    for i, content in enumerate(contents):
        previous = contents[i - 1] if i else None
        calls = _count(content, "functionCall")
        responses = _count(content, "functionResponse")
        if calls and (previous is None or previous.get("role", "user") != "user"):
            raise Problem(
                "Please ensure that function call turn comes immediately after a user turn or "
                "after a function response turn."
            )
        if not responses:
            continue
        expected = _count(previous, "functionCall") if previous is not None else 0
        if previous is None or previous.get("role") != "model" or not expected:
            raise Problem(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        if responses != expected:
            raise Problem(
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )


def current_turn_calls(contents: list[dict[str, Any]]) -> Iterable[tuple[int, dict[str, Any]]]:
    """(content index, first functionCall part) of each model step since the last user text:
    the parts Gemini 3 requires a ``thoughtSignature`` on."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and not _count(content, "functionResponse"):
            start = i
    for i in range(start, len(contents)):
        calls = [p for p in contents[i].get("parts") or () if "functionCall" in p]
        if contents[i].get("role") == "model" and calls:
            yield i, calls[0]


def _check_generation(config: dict[str, Any]) -> None:
    prefix = "* GenerateContentRequest.generation_config"
    if len(config.get("stopSequences") or ()) > MAX_STOP_SEQUENCES:
        raise Problem(
            f"{prefix}.stop_sequences: stop_sequences must have at most "
            f"{MAX_STOP_SEQUENCES} items\n"
        )
    for key, low, high in (("temperature", 0.0, 2.0), ("topP", 0.0, 1.0)):
        if key in config and not low <= config[key] <= high:
            raise Problem(f"{prefix}.{snake(key)}: must be between {low:g} and {high:g}\n")
    if "maxOutputTokens" in config and int(config["maxOutputTokens"]) < 1:
        raise Problem(f"{prefix}.max_output_tokens: must be positive\n")
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise Problem(f"{prefix}: response_schema and response_json_schema are exclusive\n")
    has_schema = "responseSchema" in config or "responseJsonSchema" in config
    if has_schema and config.get("responseMimeType") not in ("application/json", "text/x.enum"):
        raise Problem(
            f"{prefix}.response_mime_type: a response schema is only supported with "
            "response_mime_type application/json or text/x.enum\n"
        )


def _check_tools(tools: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for i, tool in enumerate(tools):
        for j, decl in enumerate(tool.get("functionDeclarations") or ()):
            where = f"* GenerateContentRequest.tools[{i}].function_declarations[{j}]"
            name = decl.get("name", "")
            if not _NAME.match(name):
                raise Problem(
                    f"{where}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), "
                    "colons (:), or dashes (-), with a maximum length of 128.\n"
                )
            if name in names:
                raise Problem(f"{where}.name: Duplicate function declaration name: {name}\n")
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise Problem(
                    f"{where}: parameters and parameters_json_schema are mutually exclusive\n"
                )
            schema = decl.get("parametersJsonSchema")
            if schema is not None and (
                not isinstance(schema, dict) or schema.get("type") != "object"
            ):
                raise Problem(
                    f"{where}.parameters_json_schema: the schema must describe an object\n"
                )
            names.add(name)
    return names


def _check_tool_config(config: dict[str, Any], declared: set[str]) -> None:
    calling = config.get("functionCallingConfig") or {}
    where = "* GenerateContentRequest.tool_config.function_calling_config"
    mode = calling.get("mode", "AUTO")
    if mode not in MODES:
        raise Problem(
            f"Invalid value at 'tool_config.function_calling_config.mode' "
            f"(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode),"
            f' "{mode}"',
            field="tool_config.function_calling_config.mode",
        )
    allowed = calling.get("allowedFunctionNames") or []
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise Problem(
            f"{where}.allowed_function_names: allowed_function_names may only be set when mode "
            "is ANY or VALIDATED\n"
        )
    for name in allowed:
        if name not in declared:
            raise Problem(
                f"{where}.allowed_function_names: function {name!r} is not declared in tools\n"
            )
