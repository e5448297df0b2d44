"""One try against one deployment, opened and closed in one place for every kind of request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import Clock
from ..config import Config
from ..errors import LocalRateLimited, RateLimitError, StreamInterrupted, VendorError
from ..observability.events import AttemptFinished, Event
from ..resilience.circuit_breaker import BreakerBoard
from ..resilience.deadline import Deadline
from ..resilience.retry import breaker_fault, vendor_fault
from ..resilience.retry_budget import RetryBudgets
from ..routing.health import HealthTracker
from ..routing.model import RoutingDecision
from ..settings.routing import Deployment
from ..types import Attempt, Request, Usage
from ..vendors.base import Vendor

if TYPE_CHECKING:
    from ..observability.events import RequestFinished
    from ..quotas import Quotas
    from ..resilience.rate_limit import Reservation
    from .accounting import Ticket

LOST = "lost the hedge: another deployment answered first"


class Tracer(Protocol):
    """Spans for requests and tries (observability/tracing.py; None when tracing is off)."""

    def request_started(self, ticket: Ticket) -> None: ...

    def attempt_started(self, trip: Trip, deployment: Deployment) -> None: ...

    def request_finished(self, ticket: Ticket, event: RequestFinished) -> None: ...


@dataclass(slots=True)
class Services:
    """What every request of one dispatcher shares, for the dispatcher's life."""

    config: Config
    vendors: Mapping[str, Vendor]
    clock: Clock
    rng: random.Random
    emit: Callable[[Event], None]
    health: HealthTracker
    breakers: BreakerBoard
    retry_budgets: RetryBudgets
    quotas: Quotas
    tracer: Tracer | None = None


@dataclass(slots=True)
class Trip:
    """One request on its way through its candidates: what every try of it shares."""

    request: Request
    request_id: str
    decision: RoutingDecision
    deadline: Deadline
    stream: bool
    worst_tokens: int = 0  # reserved against rate limits per try: estimated prompt + max_tokens
    losers: set[str] = field(default_factory=set)  # deployments that lost a hedge race
    span: Any = None  # the request's span, parent of each try's (with tracing on)

    @property
    def attempts(self) -> list[Attempt]:
        return self.decision.attempts


class AttemptScope:
    """``async with AttemptScope(...)``: one try, from the moment its request starts.

    Entering reserves the deployment's rate limits (raising ``LocalRateLimited`` when they
    refuse, recorded as a try) and counts the request for health and the retry budget.
    Leaving records the outcome exactly once, whatever ended the try:

    * no exception: a success, with ``usage`` and, for a stream, the time to first token;
    * a ``VendorError`` (or ``StreamInterrupted`` caused by one): a failure, counted against
      health, and against the breaker only for vendor faults other than 429 — a 429 pauses
      the deployment for its Retry-After instead;
    * cancellation: neither a success nor a failure of the vendor (a hedge loser, a caller
      that went away).
    """

    __slots__ = ("_reservation", "_s", "deployment", "key", "started", "trip", "ttft", "usage")

    def __init__(self, services: Services, trip: Trip, deployment: Deployment) -> None:
        self._s = services
        self.trip = trip
        self.deployment = deployment
        self.key = deployment.id
        self.started = 0.0
        self.ttft: float | None = None
        self.usage: Usage | None = None
        self._reservation: Reservation | None = None

    async def __aenter__(self) -> AttemptScope:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(exc)

    async def open(self) -> None:
        """Reserve the limits and count the try; raises ``LocalRateLimited`` (recorded)."""
        s, deployment = self._s, self.deployment
        self.started = s.clock.now()
        if s.tracer is not None:
            s.tracer.attempt_started(self.trip, deployment)
        if s.quotas.limits_active:
            try:
                self._reservation = await s.quotas.reserve_limits(
                    deployment, self.trip.worst_tokens
                )
            except LocalRateLimited as refused:
                s.breakers.release_probe(self.key)
                self._record(type(refused).__name__, str(refused))
                raise
        s.retry_budgets.record_request(deployment.vendor)
        s.health.started(self.key)
        self.started = s.clock.now()

    def first_token(self) -> None:
        """A stream produced its first piece: it stays in flight until the scope closes."""
        self.ttft = self._s.clock.now() - self.started
        self._s.health.finished(self.key, ok=True, ttft_s=self.ttft, still_open=True)

    async def close(self, exc: BaseException | None) -> None:
        """Record the try's outcome (``exc``: what ended it, None for a success)."""
        status, message, cause = self._outcome(exc)
        if self._reservation is not None:
            tokens = self.usage.total_tokens if self.usage is not None else 0
            await self._s.quotas.settle_limits(self._reservation, tokens)
        self._judge(status == "ok", cause)
        self._record(status, message)

    def closing(self) -> _Closing:
        """``async with scope.closing():`` closes an opened scope with what ends the block."""
        return _Closing(self)

    def _outcome(self, exc: BaseException | None) -> tuple[str, str | None, BaseException | None]:
        """(status, message, the vendor's error if it failed) of the try."""
        if exc is None:
            return "ok", None, None
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            if self.key in self.trip.losers:
                return "cancelled", LOST, None
            return "cancelled", "the caller went away", None
        cause = exc.__cause__ if isinstance(exc, StreamInterrupted) else exc
        return type(exc).__name__, str(exc), cause

    def _judge(self, ok: bool, cause: BaseException | None) -> None:
        """Health and breaker: only the vendor's faults count against it."""
        s, key = self._s, self.key
        fault = vendor_fault(cause) if cause is not None else False
        if self.ttft is not None:  # a stream that opened: it was a success at its first token
            s.health.closed(key)
            if fault:
                s.health.failed_after_open(key)
        elif ok:
            s.health.finished(key, ok=True, latency_s=s.clock.now() - self.started)
        else:
            s.health.finished(key, ok=False, counts=fault)
        if ok:
            s.breakers.record_success(key)
        elif cause is not None and breaker_fault(cause):
            assert isinstance(cause, VendorError)
            s.breakers.record_failure(key, type(cause).__name__, cause.retry_after)
        else:
            s.breakers.release_probe(key)
        if isinstance(cause, RateLimitError) and cause.retry_after:
            s.breakers.pause(key, cause.retry_after)  # the vendor asked: others wait too

    def _record(self, status: str, message: str | None) -> None:
        deployment = self.deployment
        attempt = Attempt(
            deployment.vendor,
            deployment.model,
            status,
            message,
            self._s.clock.now() - self.started,
        )
        self.trip.decision.attempts.append(attempt)
        self._s.emit(
            AttemptFinished(
                self.trip.request_id,
                attempt,
                ttft_s=self.ttft if status == "ok" else None,
                usage=self.usage,
                deployment=self.key,
            )
        )


class _Closing:
    __slots__ = ("scope",)

    def __init__(self, scope: AttemptScope) -> None:
        self.scope = scope

    async def __aenter__(self) -> AttemptScope:
        return self.scope

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.scope.close(exc)
