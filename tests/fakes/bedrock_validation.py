"""Request validation for the fake Bedrock server: the JSON body checked against botocore's own
service model of ``bedrock-runtime`` (the shapes AWS publishes: required members, unions with
exactly one member, enums, lengths, ranges, patterns, unknown fields), then the conversation
rules the model cannot express (vendors.md §11): the first turn is the user's, turns alternate,
no blank text, every ``toolResult`` answers a ``toolUse`` of the turn before, and a request
with tool blocks carries ``toolConfig``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any


class Problem(Exception):
    """A request Bedrock would refuse with a 400 ValidationException."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@functools.cache
def _shapes() -> dict[str, Any]:
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("bedrock-runtime", "service-2")
    shapes: dict[str, Any] = model["shapes"]
    return shapes


def validate_converse(body: Any, json_ok: bool) -> dict[str, Any]:
    if not json_ok or not isinstance(body, dict):
        raise Problem("The request body is not a JSON object.")
    shape = dict(_shapes()["ConverseRequest"])
    # modelId travels in the URL (a "location": "uri" member), never in the body
    shape["members"] = {k: v for k, v in shape["members"].items() if k != "modelId"}
    shape["required"] = [r for r in shape.get("required", ()) if r != "modelId"]
    _check(body, shape, "")
    _conversation(body)
    return body


def _check(value: Any, shape: dict[str, Any], path: str) -> None:
    kind = shape["type"]
    checker = _CHECKS.get(kind)
    if checker is None:
        raise Problem(f"{path}: the fake cannot check shapes of type {kind}")
    checker(value, shape, path or "body")


def _structure(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, dict):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be an object")
    members = shape["members"]
    for key, item in value.items():
        if key not in members:
            raise Problem(f"Unknown field '{key}' at '{path}'")
        _check(item, _shapes()[members[key]["shape"]], f"{path}.{key}")
    for key in shape.get("required", ()):
        if key not in value:
            raise Problem(f"Value at '{path}.{key}' failed to satisfy constraint: must not be null")
    if shape.get("union") and len(value) != 1:
        raise Problem(f"Value at '{path}' must set exactly one member, not {sorted(value)}")


def _list(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, list):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be a list")
    _bounds(len(value), shape, path, "length")
    member = _shapes()[shape["member"]["shape"]]
    for i, item in enumerate(value):
        _check(item, member, f"{path}.{i + 1}.member")


def _map(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, dict):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be a map")
    _bounds(len(value), shape, path, "size")
    for key, item in value.items():
        _check(key, _shapes()[shape["key"]["shape"]], f"{path}.key")
        _check(item, _shapes()[shape["value"]["shape"]], f"{path}.{key}")


def _string(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, str):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be a string")
    if "enum" in shape and value not in shape["enum"]:
        raise Problem(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy "
            f"enum value set: [{', '.join(shape['enum'])}]"
        )
    _bounds(len(value), shape, path, "length")
    pattern = shape.get("pattern")
    if pattern and not re.fullmatch(pattern, value):
        raise Problem(
            f"Value at '{path}' failed to satisfy constraint: Member must satisfy regular "
            f"expression pattern: {pattern}"
        )


def _number(value: Any, shape: dict[str, Any], path: str) -> None:
    integral = shape["type"] in ("integer", "long")
    if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be a number")
    _bounds(value, shape, path, "value")


def _boolean(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, bool):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be a boolean")


def _blob(value: Any, shape: dict[str, Any], path: str) -> None:
    if not isinstance(value, str):
        raise Problem(f"Value at '{path}' failed to satisfy constraint: must be base64 text")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(f"Value at '{path}' is not valid base64") from None


def _document(value: Any, shape: dict[str, Any], path: str) -> None:
    return None  # any JSON value


def _bounds(size: float, shape: dict[str, Any], path: str, what: str) -> None:
    low, high = shape.get("min"), shape.get("max")
    if low is not None and size < low:
        raise Problem(
            f"Value at '{path}' failed to satisfy constraint: Member must have {what} "
            f"greater than or equal to {low}"
        )
    if high is not None and size > high:
        raise Problem(
            f"Value at '{path}' failed to satisfy constraint: Member must have {what} "
            f"less than or equal to {high}"
        )


_CHECKS = {
    "structure": lambda v, s, p: _document(v, s, p) if s.get("document") else _structure(v, s, p),
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _number,
    "long": _number,
    "float": _number,
    "double": _number,
    "boolean": _boolean,
    "blob": _blob,
    "timestamp": _string,
}


def _conversation(body: dict[str, Any]) -> None:
    messages = body["messages"]
    if not messages:
        raise Problem("A conversation must start with a user message. Try again with a ...")
    if messages[0]["role"] != "user":
        raise Problem("A conversation must start with a user message. Try again with a ...")
    uses_tools = False
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if i and message["role"] == messages[i - 1]["role"]:
            raise Problem(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        if not message["content"]:
            raise Problem(f"The content field in the Message object at messages.{i} is empty.")
        answered = set()
        for block in message["content"]:
            if "text" in block and not block["text"].strip():
                raise Problem(
                    f"The text field in the ContentBlock object at messages.{i}.content is "
                    "blank. Add text to the text field, and try again."
                )
            if "toolResult" in block:
                uses_tools = True
                answered.add(block["toolResult"]["toolUseId"])
            if "toolUse" in block:
                uses_tools = True
        if message["role"] == "user" and answered - pending:
            raise Problem(
                "The number of toolResult blocks at messages."
                f"{i}.content exceeds the number of toolUse blocks of previous turn."
            )
        pending = (
            {b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b}
            if message["role"] == "assistant"
            else set()
        )
    if uses_tools and not (body.get("toolConfig") or {}).get("tools"):
        raise Problem(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
