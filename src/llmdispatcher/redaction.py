"""Credentials: a wrapper that never prints itself, and scrubbing of text leaving the library.

``redact`` replaces every whole credential with ``***``, and the partly masked forms vendors
echo back in their errors: OpenAI's ``Incorrect API key provided: sk-proj-abcd****wxyz`` shows
the key's first characters and its last four. Such a form, when its visible head is the start of
a known credential and its tail that credential's last four, becomes ``***wxyz``: the last four
alone, as ``config check`` and the CLI show keys (enough to tell keys apart, nothing more), and
that form passes unchanged.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable

TAIL = 4  # characters of a credential that may be shown
# A masked key: a visible head, a run of mask characters, then the last four characters.
_MASK_RUN = r"(?:[*•.…]{3,}|…)"


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
    """Replace every credential value in ``text`` with ``***``, and a partly masked form of
    one that shows more than its last four characters with ``***`` and those four."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        if secret in text:
            text = text.replace(secret, "***")
        if len(secret) > 2 * TAIL and secret[-TAIL:] in text:
            text = _masked_form(secret).sub(functools.partial(_keep_tail, secret=secret), text)
    return text


@functools.lru_cache(maxsize=64)
def _masked_form(secret: str) -> re.Pattern[str]:
    return re.compile(r"(?P<head>[\w\-]+)" + _MASK_RUN + re.escape(secret[-TAIL:]) + r"(?!\w)")


def _keep_tail(match: re.Match[str], *, secret: str) -> str:
    head = match.group("head")
    return "***" + secret[-TAIL:] if secret.startswith(head) else match.group(0)
