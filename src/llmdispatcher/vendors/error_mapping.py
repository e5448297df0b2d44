"""HTTP status (then the vendor's error type/code) to the shared error tree, and retry hints.

Every vendor module parses its own error body into an ``ErrorInfo`` and calls ``error_for``;
the status table below (from each vendor's documented status codes) is the one place that
decides which vendor errors are retryable; ``resilience.retry.RetryDecider`` decides what to do
with them.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import (
    AuthenticationError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    VendorError,
    VendorServerError,
    VendorTimeout,
)
from ..limits import bounded_delay
from ..redaction import redact

# Codes/types that mean "the prompt does not fit", across the OpenAI family and llama.cpp.
CONTEXT_LENGTH_CODES = frozenset(
    {"context_length_exceeded", "exceed_context_size_error", "model_context_window_exceeded"}
)
# A 429 that means "no money left", not "slow down": retrying cannot help.
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What a vendor's error body said, in neutral form."""

    message: str
    error_type: str | None = None
    code: str | None = None
    retry_after: float | None = None
    request_id: str | None = None
    param: str | None = None


def error_for(
    status: int, info: ErrorInfo, *, vendor: str, secrets: Iterable[str] = ()
) -> VendorError:
    """The error for an HTTP error status, refined by the vendor's type/code."""
    cls, retryable = _classify(status, info)
    return cls(
        redact(info.message, secrets),
        vendor=vendor,
        status=status,
        retryable=retryable,
        retry_after=info.retry_after,
        error_type=info.error_type,
        error_code=info.code,
        request_id=info.request_id,
    ).naming(info.param)


def _classify(status: int, info: ErrorInfo) -> tuple[type[VendorError], bool]:
    markers = {info.code, info.error_type}
    if markers & CONTEXT_LENGTH_CODES:
        return ContextLengthExceeded, False
    if status == 429:
        return RateLimitError, not (markers & QUOTA_CODES)
    if status in (401, 403, 498):  # 498: Cohere's "invalid token"
        return AuthenticationError, False
    if status == 404:
        return ModelNotFound, False
    if status == 408:
        return VendorTimeout, True
    if status == 409 or status >= 500:
        return VendorServerError, True
    return InvalidRequestError, False


def json_body(body: bytes) -> Any:
    """An error body's JSON, or None when it is not JSON (proxies answer in HTML or text)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def body_text(status: int, body: bytes) -> str:
    """An error body that is not the vendor's JSON, as a readable message."""
    return body[:500].decode("utf-8", "replace").strip() or f"HTTP {status} with no body"


def retry_after_from_headers(headers: Mapping[str, str], now_wall: float) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date),
    bounded by ``MAX_VENDOR_DELAY_S`` (``inf``, ``1e9`` or a date in year 9999 wait an hour;
    ``nan`` or a value that does not parse is no hint)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            hint = bounded_delay(float(raw_ms) / 1000.0)
        except ValueError:
            hint = None
        if hint is not None:
            return hint
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return bounded_delay(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return bounded_delay(when.timestamp() - now_wall)


def parse_duration(text: str) -> float | None:
    """Durations as vendors write them: ``"37s"``, ``"1.5s"``, ``"120ms"``, ``"6m0s"`` (a wait
    the vendor asks for goes through ``limits.bounded_delay`` before anyone obeys it)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number, i = 0.0, "", 0
    text = text.strip()
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number:
        return None
    return total if text else None
