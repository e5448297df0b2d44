"""Request validation of the OpenAI Chat Completions endpoint (shared by the OpenAI-compatible
fakes). Messages, ``param`` and ``code`` follow the real API's wording."""

from __future__ import annotations

import re
from typing import Any

import orjson

# reasoning models (o1/o3/o4-mini..., gpt-5*, not the *-chat variants) reject legacy sampling knobs
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)(?!.*-chat)")

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# Every top-level field of openai/types/chat/completion_create_params.py (SDK 3.57); anything
# else is rejected like the real API does.
ALLOWED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
    "was not valid JSON. If you have trouble figuring out how to fix this, please contact us "
    "through our help center at help.openai.com.)"
)


class Problem(Exception):
    """A request the real API would reject with 400 (or ``status``)."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def _typename(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    names |= {int: "an integer", float: "a decimal", type(None): "null"}
    return names.get(type(value), "a value")


def validate_chat(body: Any) -> None:
    """Raise ``Problem`` for what the real endpoint rejects (messages as the API words them)."""
    if not isinstance(body, dict):
        raise Problem(BAD_JSON)
    for key in body:
        if key not in ALLOWED_FIELDS:
            raise Problem(f"Unrecognized request argument supplied: {key}")
    model = body.get("model")
    if model is None:
        raise Problem("you must provide a model parameter")
    if not isinstance(model, str):
        raise Problem(
            f"Invalid type for 'model': expected a string, but got {_typename(model)} instead.",
            "model",
            "invalid_type",
        )
    _validate_messages(body.get("messages"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise Problem(
            f"Invalid type for 'stream': expected a boolean, but got {_typename(stream)} instead.",
            "stream",
            "invalid_type",
        )
    if body.get("stream_options") is not None and stream is not True:
        raise Problem(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    tools = body.get("tools")
    for name in ("tool_choice", "parallel_tool_calls"):
        if body.get(name) is not None and not tools:
            raise Problem(
                f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.",
                name,
            )
    if tools is not None:
        _validate_tools(tools)
    _validate_choices(body)
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Problem(
                f"Invalid type for '{name}': expected a decimal, but got "
                f"{_typename(value)} instead.",
                name,
                "invalid_type",
            )
        if value < low:
            raise Problem(
                f"Invalid '{name}': decimal below minimum value. Expected a value >= "
                f"{low}, but got {value} instead.",
                name,
                "decimal_below_min_value",
            )
        if value > high:
            raise Problem(
                f"Invalid '{name}': decimal above maximum value. Expected a value <= "
                f"{high}, but got {value} instead.",
                name,
                "decimal_above_max_value",
            )
    if REASONING_MODEL.match(model):
        _validate_reasoning(body)
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        raise Problem(
            "Invalid 'stop': array too long. Expected an array with maximum length 4, "
            f"but got an array with length {len(stop)} instead.",
            "stop",
            "array_above_max_length",
        )
    fmt = body.get("response_format")
    wants_json = isinstance(fmt, dict) and fmt.get("type") == "json_object"
    if wants_json and "json" not in orjson.dumps(body["messages"]).decode().lower():
        raise Problem(
            "'messages' must contain the word 'json' in some form, to use "
            "'response_format' of type 'json_object'.",
            "messages",
        )


def _validate_messages(messages: Any) -> None:
    if messages is None:
        raise Problem(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise Problem(
            f"Invalid type for 'messages': expected an array, but got "
            f"{_typename(messages)} instead.",
            "messages",
            "invalid_type",
        )
    if not messages:
        raise Problem(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    pending: list[str] = []  # tool_call ids still awaiting their role:"tool" answer
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise Problem(
                f"Invalid type for '{where}': expected an object, but got "
                f"{_typename(msg)} instead.",
                where,
                "invalid_type",
            )
        role = msg.get("role")
        if role is None:
            raise Problem(
                f"Missing required parameter: '{where}.role'.",
                f"{where}.role",
                "missing_required_parameter",
            )
        if role not in ROLES:
            raise Problem(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant',"
                " 'user', 'function', 'tool', and 'developer'.",
                f"{where}.role",
                "invalid_value",
            )
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id is None:
                raise Problem(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id",
                    "missing_required_parameter",
                )
            if call_id not in pending:
                raise Problem(
                    "Invalid parameter: messages with role 'tool' must be a response to "
                    "a preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.remove(call_id)
            continue
        if pending:
            raise Problem(
                "An assistant message with 'tool_calls' must be followed by tool "
                "messages responding to each 'tool_call_id'. The following tool_call_ids"
                f" did not have response messages: {', '.join(pending)}",
                f"messages.[{i}].role",
            )
        if "content" not in msg and not (role == "assistant" and msg.get("tool_calls")):
            raise Problem(
                f"Missing required parameter: '{where}.content'.",
                f"{where}.content",
                "missing_required_parameter",
            )
        for j, tc in enumerate((msg.get("tool_calls") or []) if role == "assistant" else []):
            kind = tc.get("type") if isinstance(tc, dict) else None
            inner, field = ("custom", "input") if kind == "custom" else ("function", "arguments")
            args = (tc.get(inner) or {}).get(field) if isinstance(tc, dict) else None
            path = f"{where}.tool_calls[{j}].{inner}.{field}"
            if not isinstance(args, str):
                raise Problem(
                    f"Invalid type for '{path}': expected a string, but got "
                    f"{_typename(args)} instead.",
                    path,
                    "invalid_type",
                )
            pending.append(str(tc.get("id")))
    if pending:
        raise Problem(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not "
            f"have response messages: {', '.join(pending)}",
            f"messages.[{len(messages)}].role",
        )


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise Problem(
            f"Invalid type for 'tools': expected an array, but got {_typename(tools)} instead.",
            "tools",
            "invalid_type",
        )
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in ("function", "custom"):
            raise Problem(
                f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'.",
                f"tools[{i}].type",
                "invalid_value",
            )
        fn = tool.get(kind)
        if not isinstance(fn, dict) or not fn.get("name"):
            raise Problem(
                f"Missing required parameter: 'tools[{i}].{kind}.name'.",
                f"tools[{i}].{kind}.name",
                "missing_required_parameter",
            )
        strict = fn.get("strict")
        if kind == "function" and strict is not None and not isinstance(strict, bool):
            raise Problem(
                f"Invalid type for 'tools[{i}].function.strict': expected a boolean, but got "
                f"{_typename(strict)} instead.",
                f"tools[{i}].function.strict",
                "invalid_type",
            )


def _validate_choices(body: dict[str, Any]) -> None:
    """``n`` (1-128), ``logprobs`` and ``top_logprobs`` (0-20, only with logprobs)."""
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128):
        raise Problem(f"Invalid 'n': expected an integer from 1 to 128, but got {n}.", "n")
    top = body.get("top_logprobs")
    if top is None:
        return
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
        raise Problem(
            f"Invalid 'top_logprobs': expected an integer from 0 to 20, but got {top}.",
            "top_logprobs",
        )
    if body.get("logprobs") is not True:
        raise Problem(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true.", "top_logprobs"
        )


def _validate_reasoning(body: dict[str, Any]) -> None:
    if body.get("max_tokens") is not None:
        raise Problem(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and value != 1:
            raise Problem(
                f"Unsupported value: '{name}' does not support {value} with this model. "
                "Only the default (1) value is supported.",
                name,
                "unsupported_value",
            )
