"""The attempt loop: try the routing decision's candidates in order until one answers.

Per candidate (a deployment), tries until ``RetryDecider`` says to move on: a retryable
failure waits (the vendor's hint, else backoff on the injected clock) and tries again; our own
refusals, non-retryable errors and spent retries move to the next candidate; a malformed
request (the caller's fault) or a spent deadline stops everything. A prompt too long for its
window adds the group's context-window fallbacks next; a content-filter refusal adds its
content-filter fallbacks. When every candidate is over one of our limits, the request waits
for one to free (up to ``rate_limit_wait_s``). Everything runs under one total deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import (
    CircuitOpen,
    ContextLengthExceeded,
    LocalRateLimited,
    VendorError,
    VendorTimeout,
    VendorUnavailable,
)
from ..observability.events import FallbackTaken, RetryScheduled
from ..resilience.deadline import Deadline
from ..resilience.retry import CONTENT_FILTER, GiveUp, RetryAfter, RetryDecider
from ..routing.model import Candidate, RoutingDecision
from ..routing.router import Router
from ..settings.routing import Deployment
from .hedge import Hedge, RaceLost, Racer, hedge_delay, race
from .kinds import AttemptKind
from .scope import AttemptScope, Services, Trip

T = TypeVar("T")


@dataclass(slots=True)
class Won(Generic[T]):
    """The winning try: its value, and its still-open scope. ``scope.closing()`` closes it
    and so records the try's outcome: at once for a send, at its end for a stream."""

    value: T
    deployment: Deployment
    scope: AttemptScope


@dataclass(frozen=True, slots=True)
class Failed:
    """A candidate gave no answer: the last error, whether the hedge partner was tried too,
    and whether the whole request should stop."""

    error: VendorError
    raced: bool = False
    give_up: bool = False


class Runner:
    """Built once per dispatcher; holds no per-request state (that is the ``Trip``)."""

    def __init__(self, services: Services, router: Router) -> None:
        self.s = services
        self.router = router
        self.decider = RetryDecider(
            services.config.retry_policy, services.rng, services.retry_budgets.try_spend
        )

    async def run(self, kind: AttemptKind[T], trip: Trip) -> Won[T]:
        """The first try to win, or the error that ends the request (with ``.attempts``)."""
        queue = list(trip.decision.candidates)
        if not queue:
            raise nothing_available(trip.decision)
        waited = 0.0
        while True:
            result = await self._pass(kind, trip, list(queue))
            if isinstance(result, Won):
                return result
            wait = self._limit_wait(result, waited, trip.deadline)
            if wait is None:
                break
            waited += wait  # every candidate is over one of our limits: wait for one to free
            await self.s.clock.sleep(wait)
        if isinstance(result, LocalRateLimited) or not result.retryable:
            raise with_attempts(result, trip)
        if not trip.attempts:  # refused before sending (open breakers): say why
            reason = f"no deployment could be tried ({result})"
            raise VendorUnavailable((), result, reason=reason) from result
        raise VendorUnavailable(trip.attempts, result) from result

    def _limit_wait(self, error: VendorError, waited: float, deadline: Deadline) -> float | None:
        """How long to wait for our own rate limits to free, or None to give up."""
        if not isinstance(error, LocalRateLimited) or error.retry_after is None:
            return None
        left = min(self.s.config.rate_limit_wait_s - waited, deadline.remaining())
        wait = min(error.retry_after, left)
        return wait if wait > 0 and error.retry_after <= left else None

    async def _pass(
        self, kind: AttemptKind[T], trip: Trip, queue: list[Candidate]
    ) -> Won[T] | VendorError:
        """One pass over the candidates: the winner, or the last error."""
        failed: Failed | None = None
        position = 0
        while position < len(queue):
            candidate = queue[position]
            if failed is not None:
                self.s.emit(
                    FallbackTaken(
                        trip.request_id,
                        queue[position - 1].deployment.id,
                        candidate.deployment.id,
                        type(failed.error).__name__,
                    )
                )
            hedge = self._hedge(trip, queue, position)
            result = await self._candidate(kind, trip, candidate, hedge, position + 1 < len(queue))
            if isinstance(result, Won):
                return result
            failed = result
            queue[position + 1 : position + 1] = self._late_fallbacks(trip.decision, failed, queue)
            if failed.give_up:
                raise with_attempts(failed.error, trip)
            position += 2 if failed.raced else 1  # a hedge partner has been tried too
        assert failed is not None
        return failed.error

    async def _candidate(
        self,
        kind: AttemptKind[T],
        trip: Trip,
        candidate: Candidate,
        hedge: Hedge | None,
        has_next: bool,
    ) -> Won[T] | Failed:
        deployment = candidate.deployment
        retry = 0
        while True:
            try:
                self._admit(deployment, first=retry == 0, probe=candidate.probe)
                if hedge is None or retry:
                    return await self._try(kind, trip, deployment)
                won = await self._race(kind, trip, deployment, hedge)
                if isinstance(won, RaceLost):  # both raced and failed: both recorded
                    error = won.errors[-1]
                    return Failed(error, raced=True, give_up=self._gives_up(error, trip))
                return won
            except VendorError as exc:
                error = exc
            verdict = self.decider.decide(
                error, retry=retry, has_next=has_next, remaining=trip.deadline.remaining()
            )
            if not isinstance(verdict, RetryAfter):
                return Failed(error, give_up=isinstance(verdict, GiveUp))
            self.s.emit(
                RetryScheduled(
                    trip.request_id, deployment.vendor, verdict.delay, type(error).__name__
                )
            )
            await self.s.clock.sleep(verdict.delay)
            retry += 1

    def _admit(self, deployment: Deployment, *, first: bool, probe: bool) -> None:
        """Raise when this deployment may not be tried now: the pause a vendor's 429 asked
        for (only for new requests: the one that got the 429 follows its retry policy), or
        its open breaker (skipped at once, not recorded as a try)."""
        breakers = self.s.breakers
        paused = breakers.paused_for(deployment.id) if first else 0.0
        if paused > 0:
            raise LocalRateLimited(
                f"{deployment.id}: the vendor asked for a pause (HTTP 429 Retry-After), "
                f"{paused:.1f}s more",
                vendor=deployment.vendor,
                retry_after=paused,
                limit="retry_after",
            )
        if not breakers.admit(deployment.id, early_probe=probe):
            why = breakers.blocked(deployment.id) or "unavailable"
            raise CircuitOpen(f"{deployment.id}: {why}", vendor=deployment.vendor)

    async def _try(self, kind: AttemptKind[T], trip: Trip, deployment: Deployment) -> Won[T]:
        request = trip.request
        model = deployment.model
        sent = request if model == request.model else request.with_model(model)
        # vendor.check(sent) already ran in the router, for every candidate it returned.
        scope = AttemptScope(self.s, trip, deployment)
        await scope.open()
        try:
            async with asyncio.timeout(trip.deadline.remaining()):
                value = await kind.start(self.s.vendors[deployment.vendor], sent, scope)
        except TimeoutError as exc:  # recorded by the scope as this try's failure
            error = deadline_error(trip, deployment)
            await scope.close(error)
            raise error from exc
        except BaseException as exc:
            await scope.close(exc)
            raise
        return Won(value, deployment, scope)

    async def _race(
        self, kind: AttemptKind[T], trip: Trip, first: Deployment, hedge: Hedge
    ) -> Won[T] | RaceLost:
        racer: Racer[Won[T]] = Racer(
            start=lambda deployment: self._try(kind, trip, deployment),
            discard=lambda won: _discard(kind, won),
        )
        return await race(racer, first, hedge.partner, hedge.delay, self._may_race, trip.losers)

    def _may_race(self, deployment: Deployment) -> bool:
        return self.s.breakers.admit(deployment.id)

    def _gives_up(self, error: VendorError, trip: Trip) -> bool:
        return self.decider.gives_up(error, trip.deadline.remaining())

    def _hedge(self, trip: Trip, queue: list[Candidate], position: int) -> Hedge | None:
        """The first candidate's hedge: its partner (the second) and the delay, if its group
        hedges at all."""
        if position != 0 or len(queue) < 2:
            return None
        group = self.router.groups.get(trip.decision.group or "")
        delay = hedge_delay(group, self.s.health, queue[0].deployment, stream=trip.stream)
        return None if delay is None else Hedge(queue[1].deployment, delay)

    def _late_fallbacks(
        self, decision: RoutingDecision, failed: Failed, queue: list[Candidate]
    ) -> list[Candidate]:
        if isinstance(failed.error, ContextLengthExceeded):
            kind = "context"
        elif failed.error.error_code == CONTENT_FILTER:
            kind = "content_filter"
        else:
            return []
        queued = {c.deployment.id for c in queue}
        found = self.router.late_fallbacks(decision, kind)
        return [c for c in found if c.deployment.id not in queued]


async def _discard(kind: AttemptKind[T], won: Won[T]) -> None:
    """Hang up on a try that finished but lost (its scope records it as cancelled)."""
    async with won.scope.closing():
        await kind.discard(won.value)


def deadline_error(trip: Trip, deployment: Deployment) -> VendorTimeout:
    return VendorTimeout(
        f"the request's total deadline of {trip.deadline.total_s:g}s ran out",
        vendor=deployment.vendor,
        retryable=False,
    )


def with_attempts(error: VendorError, trip: Trip) -> VendorError:
    error.attempts = tuple(trip.attempts)
    return error


def nothing_available(decision: RoutingDecision) -> Exception:
    """Every deployment was excluded before sending. When each one refused the request itself
    (a capability, an unserved model, a window too small), raise the first refusal as it is —
    the caller has to change the request; otherwise say exactly which and why."""
    if decision.refusals and len(decision.refusals) == len(decision.excluded):
        return next(iter(decision.refusals.values()))
    reasons = "; ".join(f"{d}: {why}" for d, why in decision.excluded.items())
    return VendorUnavailable((), reason=f"no deployment can take this request ({reasons})")
