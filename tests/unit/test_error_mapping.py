"""Status (then type/code) to the error tree; retry hints from headers and bodies."""

import pytest

from llmdispatcher.errors import (
    AuthenticationError,
    ContextLengthExceeded,
    DispatcherError,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    VendorServerError,
    VendorTimeout,
)
from llmdispatcher.limits import MAX_VENDOR_DELAY_S
from llmdispatcher.vendors.error_mapping import (
    ErrorInfo,
    error_for,
    parse_duration,
    retry_after_from_headers,
)
from llmdispatcher.vendors.gemini import error_info as gemini_error_info


@pytest.mark.parametrize(
    ("status", "code", "cls", "retryable"),
    [
        (400, None, InvalidRequestError, False),
        (401, "invalid_api_key", AuthenticationError, False),
        (403, None, AuthenticationError, False),
        (404, "model_not_found", ModelNotFound, False),
        (408, None, VendorTimeout, True),
        (409, None, VendorServerError, True),
        (422, None, InvalidRequestError, False),
        (429, "rate_limit_exceeded", RateLimitError, True),
        (429, "insufficient_quota", RateLimitError, False),
        (400, "context_length_exceeded", ContextLengthExceeded, False),
        (500, None, VendorServerError, True),
        (503, None, VendorServerError, True),
        (529, None, VendorServerError, True),
    ],
)
def test_classification(status: int, code: str | None, cls: type, retryable: bool) -> None:
    error = error_for(status, ErrorInfo("boom", code=code), vendor="v")
    assert type(error) is cls
    assert isinstance(error, DispatcherError)
    assert error.retryable is retryable
    assert (error.vendor, error.status, error.error_code) == ("v", status, code)


def test_secrets_are_redacted_from_messages() -> None:
    error = error_for(
        401, ErrorInfo("bad key sk-secret-123456"), vendor="v", secrets=["sk-secret-123456"]
    )
    assert "sk-secret-123456" not in str(error)
    assert "***" in str(error)


def test_retry_after_forms() -> None:
    now = 1_750_000_000.0
    assert retry_after_from_headers({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    assert retry_after_from_headers({"retry-after": "2.5"}, now) == 2.5
    date = "Sun, 15 Jun 2025 15:06:50 GMT"  # 10 s after `now`
    assert retry_after_from_headers({"retry-after": date}, now) == pytest.approx(10.0)
    assert retry_after_from_headers({"retry-after": "soon"}, now) is None
    assert retry_after_from_headers({}, now) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "inf"}, MAX_VENDOR_DELAY_S),
        ({"retry-after": "Infinity"}, MAX_VENDOR_DELAY_S),
        ({"retry-after": "1e9"}, MAX_VENDOR_DELAY_S),
        ({"retry-after": "3601"}, MAX_VENDOR_DELAY_S),
        ({"retry-after": "3600"}, 3600.0),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "-inf"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "inf"}, MAX_VENDOR_DELAY_S),
        ({"retry-after-ms": "1e12", "retry-after": "2"}, MAX_VENDOR_DELAY_S),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),  # no hint: the next header
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_VENDOR_DELAY_S),
        ({"retry-after": "Sun, 15 Jun 2025 14:00:00 GMT"}, 0.0),  # in the past
    ],
)
def test_vendor_supplied_delays_are_bounded(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_from_headers(headers, 1_750_000_000.0) == seconds


def test_geminis_retry_delay_is_bounded() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "slow down",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "99999999s"}
            ],
        }
    }
    assert gemini_error_info(body, 429, b"").retry_after == MAX_VENDOR_DELAY_S


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("37s", 37.0),
        ("1.5s", 1.5),
        ("120ms", 0.12),
        ("6m0s", 360.0),
        ("1h2m", 3720.0),
        ("", None),
        ("10", None),
        ("5x", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)
