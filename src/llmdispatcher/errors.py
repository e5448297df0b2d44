"""One error tree for every vendor.

::

    DispatcherError
    ├── ConfigError                  bad config file or constructor argument
    ├── BudgetExceeded               a spend limit would be crossed: refused before sending
    ├── StateError                   the shared state backend (Redis, SQLite) failed
    ├── NoVendorsRegistered          nothing to send to
    ├── VendorUnavailable            every candidate was tried and failed (lists the attempts)
    └── VendorError                  one vendor said no; carries vendor, status, retryable,
        │                            retry_after and the vendor's own error type/code/message
        ├── AuthenticationError      401/403, bad or missing key            (not retryable)
        ├── InvalidRequestError      400/404/413/422, the request is wrong  (not retryable)
        │   ├── ContextLengthExceeded  prompt + max_tokens beyond the window
        │   ├── ModelNotFound          404: this vendor does not serve the model (falls back)
        │   └── UnsupportedRequest     refused before sending: the vendor lacks a capability
        ├── RateLimitError           429 (retryable unless the quota is exhausted)
        │   └── LocalRateLimited       our own limits (rpm, tpm, ...) or a vendor's recent
        │       │                      Retry-After refused the try before anything was sent
        │       └── StateUnavailable   the limits could not be checked: state backend down
        │                              (state_failure: closed); also a StateError
        ├── CircuitOpen              the deployment's circuit breaker is open: not sent
        ├── VendorTimeout            connect/read timeout or the total deadline
        ├── VendorConnectionError    refused, reset, DNS, TLS               (retryable)
        ├── VendorServerError        5xx, 529 overloaded                    (retryable)
        │   ├── MalformedResponse      an answer not in the vendor's format (bad JSON, shape)
        │   └── ResponseTooLarge       an answer beyond a size bound (body, header, line)
        └── StreamInterrupted        a stream broke after text reached the caller; keeps
                                     ``partial_text`` and is never replayed elsewhere

Errors are classified by HTTP status first, then by the vendor's error type/code, never by
matching message text. Messages never contain API keys: adapters redact them at the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from decimal import Decimal

    from .types import Attempt


class DispatcherError(Exception):
    """Base of every error this library raises."""


class ConfigError(DispatcherError):
    """The configuration is wrong; the message names the file, the key path and the fix."""


class BudgetExceeded(DispatcherError):
    """Refused before sending: the request's worst-case cost would take a budget over its limit.

    ``budget`` is the budget that would be exceeded (scope, period, limit); ``spent`` and
    ``remaining`` (USD, ``Decimal``) are for its current period; ``requested`` is the request's
    worst-case cost; ``resets_in`` is seconds until the period starts afresh (``None`` for a
    ``total`` budget).
    """

    def __init__(
        self,
        message: str,
        *,
        budget: object,
        spent: Decimal,
        remaining: Decimal,
        requested: Decimal,
        resets_in: float | None,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.spent = spent
        self.remaining = remaining
        self.requested = requested
        self.resets_in = resets_in


class StateError(DispatcherError):
    """The state backend failed (Redis unreachable, SQLite file locked or unwritable); the
    driver's own exception is the ``__cause__``."""


class StateBusy(StateError):
    """The state backend answers, but every connection to it stayed busy for the whole wait:
    this one call is refused; it is no sign of an outage (``FailoverState`` starts none)."""


class NoVendorsRegistered(DispatcherError):
    """The dispatcher has no vendor to send to."""

    def __init__(
        self,
        message: str = "no vendors registered: pass vendors=[...] to Dispatcher, "
        "call dispatcher.register(vendor), or use Dispatcher.from_env()",
    ) -> None:
        super().__init__(message)


class VendorError(DispatcherError):
    """A vendor refused or failed a request."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # The request field at fault, as the vendor named it (OpenAI's ``error.param``) or as
        # we did when refusing before sending (``logprobs``, ``tools[0].strict``).
        self.param: str | None = None
        self.vendor = vendor
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.error_type = error_type
        self.error_code = error_code
        self.request_id = request_id
        self.attempts: tuple[Attempt, ...] = ()

    def naming(self, param: str | None) -> Self:
        """This error, naming the request field at fault."""
        self.param = param
        return self

    def __str__(self) -> str:
        where = f"{self.vendor}" + (f" HTTP {self.status}" if self.status else "")
        kind = f" {self.error_type}" if self.error_type else ""
        return f"{where}{kind}: {self.message}"


class AuthenticationError(VendorError):
    """The vendor rejected the credentials (or they are missing)."""


class InvalidRequestError(VendorError):
    """The vendor (or the adapter, before sending) cannot accept this request as written."""


class ContextLengthExceeded(InvalidRequestError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class ModelNotFound(InvalidRequestError):
    """The vendor does not serve this model (or the URL is wrong): another vendor may."""


class UnsupportedRequest(InvalidRequestError):
    """Refused before sending: this vendor cannot honour part of the request (images to a
    text-only model, tools where there are none). Another vendor may."""


class RateLimitError(VendorError):
    """The vendor's rate limit (or ours) was hit; ``retry_after`` says when to come back."""

    default_retryable = True


class LocalRateLimited(RateLimitError):
    """Refused before sending by our own limits (or a pause a vendor's 429 asked for):
    ``retry_after`` is when a slot frees, ``error_code`` names the limit (``rpm``, ``tpm``,
    ...). It says nothing about the vendor's health, so it never counts against it."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        retry_after: float | None,
        limit: str | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(
            message,
            vendor=vendor,
            retryable=not permanent,
            retry_after=retry_after,
            error_type="local_rate_limit",
            error_code=limit,
        )


class StateUnavailable(LocalRateLimited, StateError):
    """Refused before sending: this candidate's limits live in a state backend that is down
    (with ``state_failure: closed``). A local refusal to the dispatcher, so the request moves
    on to a candidate without limits; a ``StateError`` to the gateway, which answers 503."""


class CircuitOpen(VendorError):
    """Not sent: the deployment's circuit breaker is open (or its half-open probe is in
    flight). Retryable in the sense that another deployment, or later, may answer."""

    default_retryable = True


class VendorTimeout(VendorError):
    """No answer in time: a connect/read timeout, or the request's total deadline."""

    default_retryable = True


class VendorConnectionError(VendorError):
    """The vendor could not be reached, or the connection dropped before any output."""

    default_retryable = True


class VendorServerError(VendorError):
    """The vendor failed on its side (5xx, overloaded, an error event inside a stream)."""

    default_retryable = True


class MalformedResponse(VendorServerError):
    """The vendor answered something unusable: a body that is not JSON, not the expected
    shape, invalid UTF-8 in a stream, or not HTTP. ``status`` is the status it came with."""


class ResponseTooLarge(VendorServerError):
    """An answer crossed one of the HTTP client's size bounds (``ResponseBounds``: body,
    decompressed body, header, stream line); the connection was dropped."""


class StreamInterrupted(VendorError):
    """A stream failed after text had already reached the caller.

    It is never restarted on another vendor (the caller would see text twice); the text that
    arrived is in ``partial_text``.
    """

    def __init__(
        self, message: str, *, vendor: str, partial_text: str, status: int | None = None
    ) -> None:
        super().__init__(message, vendor=vendor, status=status, retryable=False)
        self.partial_text = partial_text


class VendorUnavailable(DispatcherError):
    """Every candidate vendor was tried and failed; ``attempts`` lists each try."""

    def __init__(
        self,
        attempts: Sequence[Attempt],
        last_error: BaseException | None = None,
        reason: str = "every candidate vendor failed",
    ) -> None:
        self.attempts = tuple(attempts)
        self.last_error = last_error
        lines = [f"{a.vendor}/{a.model}: {a.error} ({a.duration_s:.3f}s)" for a in self.attempts]
        super().__init__(f"{reason}: " + "; ".join(lines) if lines else reason)
