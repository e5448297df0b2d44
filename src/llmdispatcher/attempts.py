"""The attempt loop: try the routing decision's candidates in order until one answers.

Per candidate (a deployment): up to ``retry_policy.max_retries + 1`` attempts. A retryable
failure waits (the vendor's hint, else backoff on the injected clock) and tries again, if the
vendor's retry budget allows; a long hint with another candidate left moves on at once; a
non-retryable failure moves to the next candidate; a malformed request (the caller's fault)
stops everything. A prompt too long for its window adds the group's context-window fallbacks
next; a content-filter refusal adds its content-filter fallbacks. Everything runs under one
total deadline. Every outcome feeds the deployment's health (for strategies) and its circuit
breaker (vendor faults only).

Hedging: when the decision's group sets ``hedge_after_s`` and the first candidate has not
produced its first token (for ``send``: its answer) by then, the second candidate starts too;
the first to produce wins and the other is cancelled at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .admission import LOCAL_LIMIT, Admission
from .clock import Clock
from .config import Config
from .errors import (
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    UnsupportedRequest,
    VendorError,
    VendorTimeout,
    VendorUnavailable,
)
from .observability.events import AttemptFinished, Event, FallbackTaken, RetryScheduled
from .resilience.circuit_breaker import BreakerBoard
from .resilience.deadline import Deadline
from .resilience.retry_budget import RetryBudgets
from .routing.health import HealthTracker
from .routing.model import Candidate, Deployment, ModelGroup, RoutingDecision
from .routing.router import Router
from .types import Attempt, Request, StreamChunk, Usage
from .vendors.base import Vendor

Attempter = Callable[[Vendor, Request], Awaitable[Any]]
CONTENT_FILTER = "content_filter"


@dataclass(slots=True)
class OpenedStream:
    """A vendor stream that has produced its first text or tool-call piece (or ended)."""

    chunks: AsyncIterator[StreamChunk]
    head: list[StreamChunk] = field(default_factory=list)
    ended: bool = False
    ttft_s: float | None = None
    reservation: Any = None  # rate-limit reservation, settled with the real usage at the end

    async def aclose(self) -> None:
        await self.chunks.aclose()  # type: ignore[attr-defined]


async def open_stream(vendor: Vendor, request: Request) -> OpenedStream:
    """Read a vendor stream up to its first text or tool-call piece."""
    chunks = vendor.stream(request)
    opened = OpenedStream(chunks)
    try:
        async for chunk in chunks:
            opened.head.append(chunk)
            if chunk.delta or chunk.tool_call_deltas:
                return opened
    except BaseException:
        await opened.aclose()
        raise
    opened.ended = True
    return opened


async def _close(value: object) -> None:
    if isinstance(value, OpenedStream):
        await value.aclose()


@dataclass(slots=True)
class Outcome:
    """The winning candidate's result, and every try made on the way."""

    value: Any
    deployment: Deployment
    started: float
    attempts: list[Attempt]


class _Hedge:
    """Both racers failed: their errors, in the order the candidates were tried."""

    def __init__(self, errors: list[tuple[Deployment, VendorError, float]]) -> None:
        self.errors = errors


class AttemptRunner:
    def __init__(
        self,
        config: Config,
        vendors: dict[str, Vendor],
        clock: Clock,
        rng: random.Random,
        emit: Callable[[Event], None],
        router: Router,
        health: HealthTracker,
        breakers: BreakerBoard,
        budgets: RetryBudgets,
        admission: Admission | None = None,
        worst_tokens: int = 0,
        stream: bool = False,
        group: ModelGroup | None = None,
    ) -> None:
        self.config = config
        self.vendors = vendors
        self.clock = clock
        self.rng = rng
        self.emit = emit
        self.router = router
        self.health = health
        self.breakers = breakers
        self.budgets = budgets
        self.admission = admission
        self.worst_tokens = worst_tokens  # the reservation per attempt: prompt + max_tokens
        self.stream = stream
        self.group = group  # the request's model group (hedging settings)
        self.partner_raced = False

    async def run(
        self,
        request: Request,
        request_id: str,
        decision: RoutingDecision,
        attempt: Attempter,
        accept: Callable[[Any], str | None] | None = None,
    ) -> Outcome:
        queue = list(decision.candidates)
        if not queue:
            raise _nothing_available(decision)
        deadline = Deadline.after(self.clock, request.timeout or self.config.timeout)
        waited = 0.0
        while True:
            error = await self._through(
                request, request_id, decision, list(queue), attempt, accept, deadline
            )
            if isinstance(error, Outcome):
                return error
            wait = self._limit_wait(error, waited, deadline)
            if wait is None:
                break
            waited += wait  # every candidate is over one of our limits: wait for one to free
            await self.clock.sleep(wait)
        if not error.retryable or error.error_type == LOCAL_LIMIT:
            raise _with_attempts(error, decision.attempts)
        raise VendorUnavailable(decision.attempts, error) from error

    def _limit_wait(self, error: VendorError, waited: float, deadline: Deadline) -> float | None:
        """How long to wait for our own rate limits to free, or None to give up."""
        if error.error_type != LOCAL_LIMIT or error.retry_after is None:
            return None
        left = min(self.config.rate_limit_wait_s - waited, deadline.remaining())
        wait = min(error.retry_after, left)
        return wait if wait > 0 and error.retry_after <= left else None

    async def _through(
        self,
        request: Request,
        request_id: str,
        decision: RoutingDecision,
        queue: list[Candidate],
        attempt: Attempter,
        accept: Callable[[Any], str | None] | None,
        deadline: Deadline,
    ) -> Outcome | VendorError:
        """One pass over the candidates: the outcome, or the last error."""
        attempts = decision.attempts
        error: VendorError | None = None
        position = 0
        while position < len(queue):
            deployment = queue[position].deployment
            if error is not None:
                self.emit(
                    FallbackTaken(
                        request_id,
                        queue[position - 1].deployment.id,
                        deployment.id,
                        type(error).__name__,
                    )
                )
            hedge = self._hedge_partner(decision, queue, position)
            self.partner_raced = False
            outcome, error = await self._candidate(
                request,
                request_id,
                deployment,
                hedge,
                attempt,
                accept,
                deadline,
                attempts,
                has_next=position + 1 < len(queue),
            )
            if outcome is not None:
                return outcome
            assert error is not None
            queue[position + 1 : position + 1] = self._late_fallbacks(decision, error, queue)
            if self.partner_raced:
                position += 1  # the hedge partner has been tried too
            if _caller_fault(error) or deadline.expired:
                raise _with_attempts(error, attempts)
            position += 1
        assert error is not None
        return error

    async def _candidate(
        self,
        request: Request,
        request_id: str,
        deployment: Deployment,
        hedge: Deployment | None,
        attempt: Attempter,
        accept: Callable[[Any], str | None] | None,
        deadline: Deadline,
        attempts: list[Attempt],
        *,
        has_next: bool,
    ) -> tuple[Outcome | None, VendorError | None]:
        policy = self.config.retry_policy
        error: VendorError | None = None
        for retry in range(policy.max_retries + 1):
            if retry and not self.budgets.try_spend(deployment.vendor):
                break  # over the vendor's retry budget: the next candidate instead
            if not self.breakers.admit(deployment.id):
                error = _blocked(deployment, self.breakers.blocked(deployment.id))
                break
            started = self.clock.now()
            try:
                async with asyncio.timeout(deadline.remaining()):
                    if hedge is not None and retry == 0:
                        won = await self._race(
                            request, request_id, deployment, hedge, attempt, attempts
                        )
                        if isinstance(won, _Hedge):  # both raced and failed: both recorded
                            return None, won.errors[-1][1]
                        value, deployment = won
                    else:
                        value = await self._one(request, deployment, attempt)
            except TimeoutError:
                error = VendorTimeout(
                    f"the request's total deadline of {deadline.total_s:g}s ran out",
                    vendor=deployment.vendor,
                    retryable=False,
                )
            except VendorError as exc:
                error = exc
            else:
                refused = accept(value) if accept is not None else None
                if refused is None:
                    if not isinstance(value, OpenedStream):  # a stream: judged when it ends
                        self.breakers.record_success(deployment.id)
                    return Outcome(value, deployment, started, attempts), None
                await _close(value)
                error = InvalidRequestError(
                    refused, vendor=deployment.vendor, error_code=CONTENT_FILTER
                )
            attempts.append(self._failed(request_id, deployment, error, started))
            if error.error_type == LOCAL_LIMIT:
                break  # over our own limit: the next candidate now, or wait in run()
            if not error.retryable or retry == policy.max_retries or deadline.expired:
                break
            hint = error.retry_after
            if hint is not None and hint > policy.max_delay and has_next:
                break  # the vendor asks for a long pause: another candidate answers sooner
            delay = policy.delay(retry, hint, self.rng)
            if delay >= deadline.remaining():
                break
            self.emit(RetryScheduled(request_id, deployment.vendor, delay, type(error).__name__))
            await self.clock.sleep(delay)
        return None, error

    async def _one(self, request: Request, deployment: Deployment, attempt: Attempter) -> Any:
        vendor = self.vendors[deployment.vendor]
        sent = (
            request
            if deployment.model == request.model
            else replace(request, model=deployment.model)
        )
        # vendor.check(sent) already ran in the router, for every candidate it returned.
        reservation = await self._reserve(deployment)
        self.budgets.record_request(deployment.vendor)
        self.health.started(deployment.id)
        started = self.clock.now()
        try:
            value = await attempt(vendor, sent)
        except BaseException as exc:
            fault = isinstance(exc, VendorError) and vendor_fault(exc)
            self.health.finished(deployment.id, ok=False, counts=fault)
            if not isinstance(exc, VendorError):
                self.breakers.release_probe(deployment.id)
            await self._settle(reservation, 0)  # nothing was billed that we know of
            raise
        if isinstance(value, OpenedStream):  # in flight until the caller finishes reading it
            value.ttft_s = self.clock.now() - started
            value.reservation = reservation  # settled when the stream ends
            self.health.finished(deployment.id, ok=True, ttft_s=value.ttft_s, still_open=True)
        else:
            usage = getattr(value, "usage", None)
            await self._settle(reservation, usage.total_tokens if usage is not None else 0)
            self.health.finished(deployment.id, ok=True, latency_s=self.clock.now() - started)
        return value

    async def _reserve(self, deployment: Deployment) -> Any:
        """Our own limits first: a refusal is a local RateLimitError (no request is sent)."""
        if self.admission is None:
            return None
        from .resilience.rate_limit import Refusal

        found = await self.admission.reserve(deployment, self.worst_tokens)
        if isinstance(found, Refusal):
            raise found.to_error()
        return found

    async def _settle(self, reservation: Any, tokens: int) -> None:
        if reservation is not None and self.admission is not None:
            await self.admission.settle(reservation, tokens)

    async def _race(
        self,
        request: Request,
        request_id: str,
        first: Deployment,
        second: Deployment,
        attempt: Attempter,
        attempts: list[Attempt],
    ) -> tuple[Any, Deployment] | _Hedge:
        """Start ``first``; if it has not answered after the hedge delay, start ``second`` too.
        Without a race (``first`` answered or failed in time, or ``second``'s breaker said no)
        this is just ``first``'s attempt, with its error raised as usual."""
        first_task = asyncio.create_task(self._one(request, first, attempt))
        done, _ = await asyncio.wait({first_task}, timeout=self._hedge_delay(first))
        if done or not self.breakers.admit(second.id):
            return await first_task, first
        self.partner_raced = True
        started = {first: self.clock.now(), second: self.clock.now()}
        racers = {
            first_task: first,
            asyncio.create_task(self._one(request, second, attempt)): second,
        }
        pending: set[asyncio.Task[Any]] = set(racers)
        failures: list[tuple[Deployment, VendorError, float]] = []
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is None:
                        for deployment, failed, began in failures:  # it lost, but it happened
                            attempts.append(self._failed(request_id, deployment, failed, began))
                        losers, pending = pending, set()
                        await self._cancel_losers(losers, racers, request_id, started, attempts)
                        return task.result(), racers[task]
                    if not isinstance(error, VendorError):
                        raise error
                    failures.append((racers[task], error, started[racers[task]]))
        finally:
            for task in pending:  # the deadline ran out mid-race: hang up on both
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for deployment, failed, began in failures:
            attempts.append(self._failed(request_id, deployment, failed, began))
        return _Hedge(failures)

    async def _cancel_losers(
        self,
        losers: set[asyncio.Task[Any]],
        racers: dict[asyncio.Task[Any], Deployment],
        request_id: str,
        started: dict[Deployment, float],
        attempts: list[Attempt],
    ) -> None:
        ordered = list(losers)
        for task in ordered:
            task.cancel()
        results = await asyncio.gather(*ordered, return_exceptions=True)
        for task, value in zip(ordered, results, strict=True):
            loser = racers[task]
            if isinstance(value, OpenedStream):  # it opened in the same instant: hang up
                await value.aclose()
                self.health.closed(loser.id)
                await self._settle(value.reservation, 0)
            usage = getattr(value, "usage", None)
            attempt = Attempt(
                loser.vendor,
                loser.model,
                "cancelled",
                "lost the hedge: another deployment answered first",
                self.clock.now() - started[loser],
            )
            attempts.append(attempt)
            self.emit(
                AttemptFinished(
                    request_id, attempt, usage=usage if isinstance(usage, Usage) else None
                )
            )

    def _hedge_partner(
        self, decision: RoutingDecision, queue: list[Candidate], position: int
    ) -> Deployment | None:
        if position != 0 or len(queue) < 2 or self._hedge_delay(queue[0].deployment) is None:
            return None
        return queue[1].deployment

    def _hedge_delay(self, deployment: Deployment) -> float | None:
        """The request's group's fixed delay, or the deployment's live p90: of time to first
        token for a stream, of the whole answer for a send."""
        setting = self.group.hedge_after_s if self.group is not None else None
        if setting == "p90":
            view = self.health.view(deployment.id)
            return view.ttft_p90_s if self.stream else view.latency_p90_s
        return float(setting) if setting is not None else None

    def _late_fallbacks(
        self, decision: RoutingDecision, error: VendorError, queue: list[Candidate]
    ) -> list[Candidate]:
        if isinstance(error, ContextLengthExceeded):
            kind = "context"
        elif error.error_code == CONTENT_FILTER:
            kind = "content_filter"
        else:
            return []
        queued = {c.deployment.id for c in queue}
        found = self.router.late_fallbacks(decision, kind)
        return [c for c in found if c.deployment.id not in queued]

    def _failed(
        self, request_id: str, deployment: Deployment, error: VendorError, started: float
    ) -> Attempt:
        if vendor_fault(error):
            self.breakers.record_failure(deployment.id, type(error).__name__, error.retry_after)
        else:
            self.breakers.release_probe(deployment.id)
        attempt = Attempt(
            deployment.vendor,
            deployment.model,
            type(error).__name__,
            str(error),
            self.clock.now() - started,
        )
        self.emit(AttemptFinished(request_id, attempt))
        return attempt


def vendor_fault(error: VendorError) -> bool:
    """Whether an error says the vendor is unwell (429, 5xx, timeouts, connections); our own
    rate limits refusing say nothing about it."""
    if error.error_type == LOCAL_LIMIT:
        return False
    return error.retryable or error.status == 429 or (error.status or 0) >= 500


def _caller_fault(error: VendorError) -> bool:
    """A malformed request fails the same way everywhere: do not spend fallbacks on it.
    (A model one vendor lacks, a prompt too long for one window, a capability one vendor lacks
    or one vendor's content filter may all suit the next.)"""
    return (
        isinstance(error, InvalidRequestError)
        and not isinstance(error, ContextLengthExceeded | ModelNotFound | UnsupportedRequest)
        and error.error_code != CONTENT_FILTER
    )


def _blocked(deployment: Deployment, why: str | None) -> VendorError:
    from .errors import VendorServerError

    # retryable: it is an availability problem, so running out of candidates ends in
    # VendorUnavailable; the loop moves on at once rather than waiting for the breaker.
    return VendorServerError(
        f"{deployment.id}: {why or 'unavailable'}", vendor=deployment.vendor, retryable=True
    )


def _with_attempts(error: VendorError, attempts: list[Attempt]) -> VendorError:
    error.attempts = tuple(attempts)
    return error


def _nothing_available(decision: RoutingDecision) -> Exception:
    """Every deployment was excluded before sending. When each one refused the request itself
    (a capability, an unserved model, a window too small), raise the first refusal as it is —
    the caller has to change the request; otherwise say exactly which and why."""
    if decision.refusals and len(decision.refusals) == len(decision.excluded):
        return next(iter(decision.refusals.values()))
    reasons = "; ".join(f"{d}: {why}" for d, why in decision.excluded.items())
    return VendorUnavailable((), reason=f"no deployment can take this request ({reasons})")
