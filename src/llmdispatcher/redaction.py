"""Credentials: a wrapper that never prints itself, and scrubbing of text leaving the library."""

from __future__ import annotations

import os
from collections.abc import Iterable


class Secret:
    """A credential that never shows itself in ``repr``, ``str``, logs or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def secret_from(value: str | Secret | None, *env_vars: str) -> Secret:
    """The explicit value, else the first set environment variable, else an empty secret."""
    if isinstance(value, Secret):
        return value
    if value is not None:
        return Secret(value)
    for var in env_vars:
        found = os.environ.get(var)
        if found:
            return Secret(found)
    return Secret("")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every credential value in ``text`` with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text
