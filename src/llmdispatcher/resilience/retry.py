"""The retry decider: what to do after a failed try, as a value, testable without the attempt
loop. How long to wait is the ``RetryPolicy`` (settings/resilience.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import (
    CircuitOpen,
    ContextLengthExceeded,
    InvalidRequestError,
    LocalRateLimited,
    ModelNotFound,
    RateLimitError,
    UnsupportedRequest,
    VendorError,
)
from ..settings.resilience import RetryPolicy


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Try the same deployment again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class NextCandidate:
    """Stop trying this deployment; the next candidate (if any) is tried at once."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop the whole request: the caller's request is at fault, or time is up."""


Verdict = RetryAfter | NextCandidate | GiveUp
NEXT_CANDIDATE = NextCandidate()
GIVE_UP = GiveUp()


class RetryDecider:
    """The one place that decides what happens after a failed try, as a value.

    In order: a malformed request (the caller's fault) or a spent deadline gives up; our own
    refusals (limits, open breakers) and non-retryable errors move to the next candidate; so
    does the last retry, a vendor hint longer than ``max_delay`` when another candidate is
    left, a wait that would outlast the deadline, and a vendor whose retry budget is spent.
    Everything else waits (the hint, else backoff) and retries.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        rng: random.Random,
        spend_retry: Callable[[str], bool] = lambda _vendor: True,
    ) -> None:
        self.policy = policy
        self.rng = rng
        self.spend_retry = spend_retry  # the vendor's retry budget: False when it is spent

    def decide(
        self, error: VendorError, *, retry: int, has_next: bool, remaining: float
    ) -> Verdict:
        """``retry``: how many retries this candidate has had; ``remaining``: seconds left
        before the request's deadline."""
        if self.gives_up(error, remaining):
            return GIVE_UP
        if isinstance(error, LocalRateLimited | CircuitOpen) or not error.retryable:
            return NEXT_CANDIDATE
        if retry >= self.policy.max_retries:
            return NEXT_CANDIDATE
        hint = error.retry_after
        if hint is not None and hint > self.policy.max_delay and has_next:
            return NEXT_CANDIDATE  # the vendor asks for a long pause: another answers sooner
        delay = self.policy.delay(retry, hint, self.rng)
        if delay >= remaining or not self.spend_retry(error.vendor):
            return NEXT_CANDIDATE
        return RetryAfter(delay)

    @staticmethod
    def gives_up(error: VendorError, remaining: float) -> bool:
        """Whether the whole request stops: the caller's request is malformed, or time is up."""
        return caller_fault(error) or remaining <= 0


CONTENT_FILTER = "content_filter"  # error_code of an answer refused by a content filter


def vendor_fault(error: BaseException) -> bool:
    """Whether an error says the vendor is unwell (429, 5xx, timeouts, connections), for the
    deployment's health. Our own refusals say nothing about it."""
    if not isinstance(error, VendorError) or isinstance(error, LocalRateLimited | CircuitOpen):
        return False
    return error.retryable or error.status == 429 or (error.status or 0) >= 500


def breaker_fault(error: BaseException) -> bool:
    """Whether an error counts toward the circuit breaker: a vendor fault, except a 429,
    which is the vendor asking us to slow down (its Retry-After is honoured instead)."""
    return vendor_fault(error) and not isinstance(error, RateLimitError)


def caller_fault(error: VendorError) -> bool:
    """A malformed request fails the same way everywhere: do not spend fallbacks on it.
    (A model one vendor lacks, a prompt too long for one window, a capability one vendor lacks
    or one vendor's content filter may all suit the next.)"""
    return (
        isinstance(error, InvalidRequestError)
        and not isinstance(error, ContextLengthExceeded | ModelNotFound | UnsupportedRequest)
        and error.error_code != CONTENT_FILTER
    )
