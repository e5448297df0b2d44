"""Request validation of the fake Anthropic ``/v1/messages`` endpoint: what the real API
rejects, worded as it words it (``<field path>: <reason>``, pydantic style)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

SAMPLING_REMOVED_IN = "2026-10-21"
SAMPLING = frozenset({"temperature", "top_p", "top_k"})
# The body fields of ``messages.create`` in anthropic SDK 2.14 (plus ``stream``).
BODY_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
    }
)
TOOL_FIELDS = frozenset(
    {
        "name",
        "description",
        "input_schema",
        "type",
        "cache_control",
        "strict",
        "input_examples",
        "defer_loading",
        "eager_input_streaming",
        "allowed_callers",
    }
)
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Block types we check closely; the other documented ones pass as they are.
OTHER_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
    }
)


class Problem(Exception):
    """A request the real API rejects with 400 ``invalid_request_error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def validate(body: Any, version: str) -> None:
    """Raise ``Problem`` for what the real endpoint rejects (messages as the API words them)."""
    if not isinstance(body, dict):
        raise Problem("There was an issue with the request body: the body is not a JSON object")
    sampling = version < SAMPLING_REMOVED_IN
    for key in body:
        if key not in BODY_FIELDS and not (sampling and key in SAMPLING):
            raise Problem(f"{key}: Extra inputs are not permitted")
    for key in ("max_tokens", "messages", "model"):
        if key not in body:
            raise Problem(f"{key}: Field required")
    if not isinstance(body["model"], str):
        raise Problem("model: Input should be a valid string")
    _number(body, "max_tokens", int, 1 if sampling else 0, None)
    _number(body, "temperature", float, 0, 1)
    _number(body, "top_p", float, 0, 1)
    _number(body, "top_k", int, 0, None)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Problem("stream: Input should be a valid boolean")
    _system(body.get("system"))
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise Problem("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None:
        for key in metadata if isinstance(metadata, dict) else ["(not an object)"]:
            if key != "user_id":
                raise Problem(f"metadata.{key}: Extra inputs are not permitted")
    _tool_choice(body.get("tool_choice"), _tools(body.get("tools")))
    _output_config(body.get("output_config"))
    _messages(body["messages"], system_role=not sampling)


def _number(body: dict[str, Any], name: str, kind: type, low: float, high: float | None) -> None:
    value = body.get(name)
    if value is None and name != "max_tokens":
        return
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if not ok or isinstance(value, bool):
        raise Problem(f"{name}: Input should be a valid {'number' if kind is float else 'integer'}")
    if value < low:
        raise Problem(f"{name}: Input should be greater than or equal to {low}")
    if high is not None and value > high:
        raise Problem(f"{name}: Input should be less than or equal to {high}")


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Problem("system: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        _text_block(block, f"system.{i}")


def _text_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise Problem(f"{where}.type: Input should be 'text'")
    if not isinstance(block.get("text"), str):
        raise Problem(f"{where}.text: Field required")
    if not block["text"]:
        raise Problem("messages: text content blocks must be non-empty")


def _tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Problem("tools: Input should be a valid list")
    names: list[str] = []
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise Problem(f"tools.{k}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):  # server tools: web_search_..., bash_...
            names.append(str(tool.get("name")))
            continue
        for key in tool:
            if key not in TOOL_FIELDS:
                raise Problem(f"tools.{k}.custom.{key}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise Problem(
                f"tools.{k}.custom.name: String should match pattern '{TOOL_NAME.pattern}'"
            )
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise Problem(f"tools.{k}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise Problem(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise Problem("tools: Tool names must be unique.")
        names.append(name)
    return names


def _tool_choice(choice: Any, names: list[str]) -> None:
    if choice is None:
        return
    if not names:
        raise Problem("tool_choice: tool_choice may only be specified while providing tools.")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise Problem(
            f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    allowed = {"type"} | ({"name"} if kind == "tool" else set())
    allowed |= set() if kind == "none" else {"disable_parallel_tool_use"}
    for key in choice:
        if key not in allowed:
            raise Problem(f"tool_choice.{kind}.{key}: Extra inputs are not permitted")
    flag = choice.get("disable_parallel_tool_use")
    if flag is not None and not isinstance(flag, bool):
        raise Problem(
            f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean"
        )
    if kind == "tool" and choice.get("name") not in names:
        raise Problem(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in tools")


# ``POST /v1/messages/count_tokens`` takes the prompt's fields (anthropic SDK
# ``MessageCountTokensParams``), not the generation ones (max_tokens, stop_sequences, stream...).
COUNT_FIELDS = frozenset(
    {"model", "messages", "cache_control", "output_config", "speed", "system", "thinking"}
    | {"tool_choice", "tools"}
)


def validate_count(body: Any, version: str) -> None:
    """What ``count_tokens`` rejects: ``validate``'s checks on the fields it takes."""
    if not isinstance(body, dict):
        raise Problem("There was an issue with the request body: the body is not a JSON object")
    for key in body:
        if key not in COUNT_FIELDS:
            raise Problem(f"{key}: Extra inputs are not permitted")
    validate({**body, "max_tokens": 1}, version)


def _output_config(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise Problem("output_config: Input should be a valid dictionary")
    for key in config:
        if key not in ("format", "effort"):
            raise Problem(f"output_config.{key}: Extra inputs are not permitted")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise Problem("output_config.format.type: Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), dict):
        raise Problem("output_config.format.schema: Field required")
    _closed(fmt["schema"])


def _closed(schema: Any) -> None:
    """Structured output needs every object schema closed (``additionalProperties: false``)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            raise Problem(
                "output_config.format.schema: For 'object' type, 'additionalProperties' must be "
                "explicitly set to false"
            )
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)


def _messages(messages: Any, *, system_role: bool) -> None:
    if not isinstance(messages, list):
        raise Problem("messages: Input should be a valid list")
    if not messages:
        raise Problem("messages: at least one message is required")
    turns: list[tuple[str, list[dict[str, Any]], int]] = []  # merged: (role, blocks, index)
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise Problem(f"messages.{i}: Input should be a valid dictionary")
        for key in msg:
            if key not in ("role", "content"):
                raise Problem(f"messages.{i}.{key}: Extra inputs are not permitted")
        role = msg.get("role")
        if role == "system" and system_role:
            _system(msg.get("content"))
            continue
        if role == "system":
            raise Problem(
                'Unexpected role "system". The Messages API accepts a top-level `system` '
                'parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Problem(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in msg:
            raise Problem(f"messages.{i}.content: Field required")
        blocks = _content(msg["content"], f"messages.{i}", role)
        if not blocks and not (role == "assistant" and i == len(messages) - 1):
            raise Problem(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if turns and turns[-1][0] == role:  # the API merges consecutive same-role turns
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks, i))
    _pairing(turns)


def _content(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise Problem(f"{where}.content: Input should be a valid string or list")
    for j, block in enumerate(content):
        _block(block, f"{where}.content.{j}", role)
    return list(content)


def _block(block: Any, where: str, role: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        _text_block(block, where)
    elif kind == "image":
        _image(block.get("source"), f"{where}.image.source")
    elif kind == "tool_use":
        if role != "assistant":
            raise Problem(f"{where}: tool_use blocks can only be in assistant messages")
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise Problem(f"{where}.tool_use.id: Field required")
        if not isinstance(block.get("input"), dict):
            raise Problem(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            raise Problem(f"{where}: tool_result blocks can only be in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise Problem(f"{where}.tool_result.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for k, part in enumerate(inner):
                _block(part, f"{where}.tool_result.content.{k}", "tool_result")
        elif inner is not None and not isinstance(inner, str):
            raise Problem(f"{where}.tool_result.content: Input should be a valid string or list")
    elif kind not in OTHER_BLOCKS:
        raise Problem(
            f"{where}: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags"
        )


def _image(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        if not str(source.get("url", "")).startswith(("https://", "http://")):
            raise Problem(f"{where}.url.url: Input should be a valid URL")
        return
    if kind != "base64":
        raise Problem(
            f"{where}: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags: 'base64', 'url', 'file'"
        )
    if source.get("media_type") not in IMAGE_TYPES:
        raise Problem(
            f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    try:
        base64.b64decode(str(source.get("data", "")), validate=True)
    except binascii.Error:
        raise Problem(f"{where}.base64.data: The image data is not valid base64") from None


def _pairing(turns: list[tuple[str, list[dict[str, Any]], int]]) -> None:
    """Every ``tool_use`` is answered by a ``tool_result`` at the head of the very next user
    turn, and every ``tool_result`` answers a ``tool_use`` of the turn before."""
    asked: list[str] = []
    asked_at = 0
    for role, blocks, i in turns:
        if role == "assistant":
            asked = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            asked_at = i
            continue
        leading: list[str] = []
        for b in blocks:
            if b.get("type") != "tool_result":
                break
            leading.append(b["tool_use_id"])
        missing = [x for x in asked if x not in leading]
        if missing:
            raise _unanswered(asked_at, missing)
        results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        stray = [x for x in results if x not in asked]
        if stray:
            raise Problem(
                f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {stray[0]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        asked = []
    if asked:
        raise _unanswered(asked_at, asked)


def _unanswered(index: int, ids: list[str]) -> Problem:
    return Problem(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding "
        "`tool_result` block in the next message."
    )
