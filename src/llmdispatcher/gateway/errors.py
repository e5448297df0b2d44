"""What a client is told when a request fails: one table from exception to HTTP status, rendered
in OpenAI's error shape (Anthropic's on ``/v1/messages``). Nothing else reaches the client: no
traceback, no exception class it did not cause.

Status choices (the vendor's own status is not always the client's):

==========================  ======  ================================================
exception                   status  why
==========================  ======  ================================================
ApiError                    its own validation (400), auth (401/403), limits (429)
ValueError                  400     a field the dispatcher refused; ``param`` names it
                                    (a ValueError from Python or a library, not raised by
                                    our code, says "invalid value" instead of its message)
ModelNotFound               404     no vendor serves the model
InvalidRequestError (+sub)  4xx     the vendor's 4xx status (400, 413, 422)
AuthenticationError         502     the *gateway's* vendor key was refused: not the client's
RateLimitError              429     with ``retry-after`` when the vendor gave a hint
VendorTimeout               504
VendorConnectionError       502
VendorServerError           502     503 when the vendor said overloaded (503/529)
VendorUnavailable           -       the status of its last error (all failed the same way)
NoVendorsRegistered         503
BudgetExceeded              429     insufficient_quota, as OpenAI says for spent credit
ConfigError                 500     the gateway's configuration cannot route the request
StateError                  503     limits/budgets unreadable (state_failure: closed)
anything else               500     logged with its traceback, never shown
==========================  ======  ================================================
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfigError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    NoVendorsRegistered,
    RateLimitError,
    StateError,
    UnsupportedRequest,
    VendorConnectionError,
    VendorError,
    VendorServerError,
    VendorTimeout,
    VendorUnavailable,
)

logger = logging.getLogger("llmdispatcher.gateway")
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
MAX_RETRY_AFTER_S = 3600  # a vendor's Retry-After is a hint: never tell a client "forever"
# status -> (OpenAI error type, Anthropic error type)
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "authentication_error"),
    403: ("permission_error", "permission_error"),
    404: ("invalid_request_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    408: ("timeout", "timeout_error"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error"),
    421: ("invalid_request_error", "invalid_request_error"),
    422: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_error"),
    502: ("upstream_error", "api_error"),
    503: ("server_error", "overloaded_error"),
    504: ("timeout", "timeout_error"),
}
DEFAULT_TYPES = ("server_error", "api_error")


class ApiError(Exception):
    """An error with the status and fields the client should see."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.kind = kind

    def openai_type(self) -> str:
        return self.kind or ERROR_TYPES.get(self.status, DEFAULT_TYPES)[0]

    def anthropic_type(self) -> str:
        return ERROR_TYPES.get(self.status, DEFAULT_TYPES)[1]

    def openai_body(self) -> dict[str, Any]:
        fields = {
            "message": self.message,
            "type": self.openai_type(),
            "param": self.param,
            "code": self.code,
        }
        return {"error": fields}

    def anthropic_body(self, request_id: str) -> dict[str, Any]:
        error = {"type": self.anthropic_type(), "message": self.message}
        return {"type": "error", "error": error, "request_id": request_id}


def bad_request(param: str, message: str) -> ApiError:
    """A 400 naming the field at fault (``messages[0].role``)."""
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


def from_value_error(exc: ValueError) -> ApiError:
    """The dispatcher's own validation (``request.temperature: must be ...``) as a 400 whose
    ``param`` is the field, without the ``request.`` prefix. A ValueError our code did not
    raise (``int()``, base64, a JSON decoder) carries Python's wording, which means nothing to
    a client and may echo internals: it becomes a plain "invalid value" (the original is
    logged)."""
    if not raised_by_us(exc):
        logger.info("a request failed on a value: %s: %.200s", type(exc).__name__, exc)
        return ApiError(400, "the request has a value that cannot be used", code="invalid_value")
    text = str(exc)
    head, sep, _ = text.partition(": ")
    param = head.removeprefix("request.") if sep and " " not in head else None
    message = text.replace("request.", "", 1) if text.startswith("request.") else text
    return ApiError(400, message, param=param, code="invalid_value")


def raised_by_us(exc: BaseException) -> bool:
    """Whether ``exc`` is a plain ValueError raised by a line of this package."""
    if type(exc) is not ValueError:  # JSONDecodeError, binascii.Error, UnicodeError...
        return False
    tb = exc.__traceback__
    if tb is None:
        return True  # built, never raised: by the caller, which is us
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR)


def api_error(exc: BaseException) -> ApiError | None:
    """The client's view of ``exc``; None for an unexpected error (a bug: log it, say 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, web.HTTPException):
        return ApiError(exc.status, exc.reason, code=_http_code(exc.status))
    if isinstance(exc, StateError):  # state_failure: closed while Redis is down
        return ApiError(503, str(exc), code="state_unavailable", retry_after=1.0)
    if isinstance(exc, VendorUnavailable):
        return _unavailable(exc)
    if isinstance(exc, VendorError):
        return _vendor_error(exc)
    if isinstance(exc, NoVendorsRegistered):
        return ApiError(503, str(exc), code="no_vendors")
    if isinstance(exc, BudgetExceeded):
        return ApiError(429, str(exc), code="insufficient_quota", retry_after=exc.resets_in)
    if isinstance(exc, ConfigError):
        return ApiError(500, f"the gateway cannot route this request: {exc}", code="config_error")
    if isinstance(exc, ValueError):
        return from_value_error(exc)
    return None


def _http_code(status: int) -> str | None:
    return {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)


def _vendor_error(exc: VendorError) -> ApiError:
    """The client's view of a vendor's error, keeping the field it named (``param``)."""
    found = _vendor_status(exc)
    found.param = exc.param
    return found


def _vendor_status(exc: VendorError) -> ApiError:
    message = str(exc)
    code = exc.error_code
    if isinstance(exc, AuthenticationError):
        text = f"the gateway's credentials for vendor {exc.vendor!r} were refused: {message}"
        return ApiError(502, text, code="vendor_authentication_failed")
    if isinstance(exc, ModelNotFound):
        return ApiError(404, message, code=code or "model_not_found")
    if isinstance(exc, ContextLengthExceeded):
        return ApiError(400, message, code=code or "context_length_exceeded")
    if isinstance(exc, UnsupportedRequest):
        return ApiError(400, message, code="unsupported_request")
    if isinstance(exc, InvalidRequestError):
        status = exc.status if exc.status in (400, 404, 409, 413, 422) else 400
        return ApiError(status, message, code=code)
    if isinstance(exc, RateLimitError):
        return ApiError(
            429, message, code=code or "rate_limit_exceeded", retry_after=exc.retry_after
        )
    if isinstance(exc, VendorTimeout):
        return ApiError(504, message, code="vendor_timeout")
    if isinstance(exc, VendorConnectionError):
        return ApiError(502, message, code="vendor_unreachable")
    if isinstance(exc, VendorServerError) and exc.status in (503, 529):
        return ApiError(503, message, code="vendor_overloaded", retry_after=exc.retry_after)
    return ApiError(502, message, code="vendor_error")


def _unavailable(exc: VendorUnavailable) -> ApiError:
    last = exc.last_error
    if isinstance(last, VendorError):
        found = _vendor_error(last)
        return ApiError(
            found.status,
            str(exc),
            param=found.param,
            code=found.code,
            retry_after=found.retry_after,
        )
    return ApiError(503, str(exc), code="vendors_unavailable")


def retry_after_header(seconds: float | None) -> str | None:
    """Whole seconds in [1, ``MAX_RETRY_AFTER_S``]; None for no hint (or NaN)."""
    if seconds is None or math.isnan(seconds):
        return None
    return str(math.ceil(min(max(1.0, seconds), MAX_RETRY_AFTER_S)))


def error_response(error: ApiError, *, anthropic: bool, request_id: str) -> web.Response:
    body = error.anthropic_body(request_id) if anthropic else error.openai_body()
    response = web.Response(
        status=error.status, body=orjson.dumps(body), content_type="application/json"
    )
    retry_after = retry_after_header(error.retry_after)
    if retry_after is not None:
        response.headers["retry-after"] = retry_after
    return response
