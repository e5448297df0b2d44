"""Shape checks for request bodies, before the dispatcher's own value checks. Every failure is a
400 naming the field (``messages[2].content[0]``), so a malformed body never becomes a 500.

Bodies nest at most ``MAX_DEPTH`` arrays and objects deep (``check_depth``): deeper JSON parses
but cannot be encoded again for the vendor (orjson stops at 255 levels), so it is refused here
with a 400 naming the top-level field, not found out later as a 500.

Model names come from the client and end up in URLs, metric labels, logs and routing maps, so
they are checked here once for every endpoint (``check_model_name``): at most
``MAX_MODEL_NAME`` characters of ``A-Z a-z 0-9 . _ : @ + -`` in ``/``-separated segments, none of
them empty, ``.`` or ``..``. That admits what vendors name models (``gpt-4o-2024-08-06``,
``openai/gpt-4o``, ``llama3.1:8b``, ``models/gemini-1.5-flash``,
``accounts/fireworks/models/x``, ``claude-3-5-sonnet@20240620``, ``ft:gpt-4o-mini:org::id``,
``@cf/meta/llama-3-8b-instruct``) and refuses path tricks, whitespace and control characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..types import Request
from .errors import ApiError, bad_request, from_value_error

logger = logging.getLogger("llmdispatcher.gateway")
T = TypeVar("T")
MAX_MODEL_NAME = 256
MAX_DEPTH = 64
_MODEL_NAME = re.compile(r"[A-Za-z0-9._:@+\-]+(?:/[A-Za-z0-9._:@+\-]+)*")
# field -> (accepted types, what to call them in an error)
FieldTypes = Mapping[str, tuple[tuple[type, ...], str]]

NUMBER: tuple[tuple[type, ...], str] = ((int, float), "a number")
INTEGER: tuple[tuple[type, ...], str] = ((int,), "an integer")
STRING: tuple[tuple[type, ...], str] = ((str,), "a string")
OBJECT: tuple[tuple[type, ...], str] = ((dict,), "an object")
ARRAY: tuple[tuple[type, ...], str] = ((list,), "an array")
BOOLEAN: tuple[tuple[type, ...], str] = ((bool,), "true or false")


def check_fields(body: Mapping[str, Any], types: FieldTypes, where: str = "") -> None:
    """Each present, non-null field of ``types`` has one of its types (``true`` is not a
    number)."""
    for name, value in body.items():  # bodies hold few of the known fields: walk the body
        spec = types.get(name)
        if spec is None or value is None:
            continue
        accepted, what = spec
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise bad_request(f"{where}{name}", f"expected {what}, got {_json_type(value)}")


def check_items(values: list[Any], accepted: type, what: str, where: str) -> None:
    for i, value in enumerate(values):
        if not isinstance(value, accepted):
            raise bad_request(f"{where}[{i}]", f"expected {what}, got {_json_type(value)}")


def require(body: Mapping[str, Any], name: str, what: str, where: str = "") -> None:
    if body.get(name) in (None, "", []):
        raise bad_request(f"{where}{name}", f"required: {what}")


def check_depth(raw: bytes, body: Mapping[str, Any]) -> None:
    """``ApiError(400)`` naming the top-level field nested deeper than ``MAX_DEPTH``."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:  # the usual case: cannot be that deep
        return
    for name, value in body.items():
        if _depth_over(value, MAX_DEPTH - 1):
            raise bad_request(name, f"nested more than {MAX_DEPTH} arrays or objects deep")


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` holds arrays/objects more than ``limit`` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_model_name(value: str, where: str = "model") -> None:
    """``ApiError(400)`` naming ``where`` unless ``value`` looks like a model name."""
    if len(value) > MAX_MODEL_NAME:
        raise bad_request(where, f"a model name is at most {MAX_MODEL_NAME} characters")
    if not _MODEL_NAME.fullmatch(value) or (
        (value.startswith(".") or "/." in value)  # only then can a part be . or ..
        and any(part in (".", "..") for part in value.split("/"))
    ):
        raise bad_request(
            where,
            "not a model name: use letters, digits and . _ : @ + - in /-separated parts "
            "(no empty, . or .. parts, no spaces or control characters)",
        )


def build_request(make: Callable[[], T]) -> T:
    """Run the dispatcher's constructor; its ``ValueError`` names the field."""
    try:
        return make()
    except ValueError as exc:
        raise from_value_error(exc) from None
    except (TypeError, KeyError, AttributeError) as exc:  # Python's wording: not for clients
        logger.info("a request failed to build: %s: %.200s", type(exc).__name__, exc)
        raise ApiError(
            400, "malformed request: a field has the wrong type or shape", code="invalid_value"
        ) from None


def make_request(**fields: Any) -> Request:
    return build_request(lambda: Request(**fields))


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    if value is None:
        return "null"
    return names.get(type(value), "object")
