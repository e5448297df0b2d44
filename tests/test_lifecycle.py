"""The request lifecycle (lifecycle/): what one try records, hedge timing, retry decisions
as values, and the fold of a stream into the one answer the ledger sees."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, Response, StreamChunk, Usage
from llmdispatcher.errors import (
    AuthenticationError,
    CircuitOpen,
    InvalidRequestError,
    LocalRateLimited,
    ModelNotFound,
    RateLimitError,
    VendorError,
    VendorServerError,
    VendorUnavailable,
)
from llmdispatcher.observability.events import Event, RequestFinished
from llmdispatcher.resilience.retry import (
    GiveUp,
    NextCandidate,
    RetryAfter,
    RetryDecider,
    breaker_fault,
    vendor_fault,
)
from llmdispatcher.settings.resilience import CircuitBreaker, RetryPolicy
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.types import ToolCallDelta
from tests.unit.echo_vendor import EchoVendor

HI = [{"role": "user", "content": "hi"}]


class Timed(EchoVendor):
    """A vendor that moves a FakeClock forward as it works: ``takes`` seconds before it
    answers, or forever (until cancelled) when ``hangs``."""

    def __init__(self, name: str, clock: FakeClock, takes: float, hangs: bool = False) -> None:
        super().__init__(name)
        self.clock, self.takes, self.hangs = clock, takes, hangs
        self.cancelled = asyncio.Event()

    async def send(self, request: Request) -> Response:
        self.clock.advance(self.takes)
        if self.hangs:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return await super().send(request)


async def test_each_hedged_try_is_timed_from_its_own_start() -> None:
    """The loser ran from the start until it was cancelled (0.2 s, then 0.02 s more while the
    winner worked); the winner took only its own 0.02 s. Neither borrows the other's clock,
    and the cancelled loser is neither a success nor a failure of its vendor."""
    clock = FakeClock()
    slow = Timed("a", clock, takes=0.2, hangs=True)
    fast = Timed("b", clock, takes=0.02)
    group = ModelGroup("g", (Deployment("a", "m"), Deployment("b", "m")), hedge_after_s=0.01)
    async with Dispatcher(Config(model_groups=(group,)), vendors=[slow, fast], clock=clock) as d:
        response = await d.send(Request(model="g", messages=HI))
        stats = d.stats()
    assert slow.cancelled.is_set()
    tries = {a.vendor: a for a in response.attempts}
    assert [(a.vendor, a.status) for a in response.attempts] == [("a", "cancelled"), ("b", "ok")]
    assert tries["a"].duration_s == pytest.approx(0.22)
    assert tries["b"].duration_s == pytest.approx(0.02)
    assert stats.vendor_stats["b"].latency_p50_s == pytest.approx(0.02)
    assert (stats.vendor_stats["a"].successes, stats.vendor_stats["a"].failures) == (0, 0)


def decider(max_retries: int = 2, spend: bool = True) -> RetryDecider:
    policy = RetryPolicy(max_retries=max_retries, base_delay=1.0, max_delay=10.0, jitter=False)
    return RetryDecider(policy, random.Random(0), lambda _vendor: spend)


def server_error(retry_after: float | None = None) -> VendorServerError:
    return VendorServerError("boom", vendor="v", status=500, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "retry", "has_next", "remaining", "expected"),
    [
        (server_error(), 0, True, 30.0, RetryAfter(1.0)),  # backoff 1 s
        (server_error(), 1, True, 30.0, RetryAfter(2.0)),  # then 2 s
        (server_error(), 2, True, 30.0, NextCandidate()),  # retries spent
        (server_error(retry_after=3.0), 0, True, 30.0, RetryAfter(3.0)),  # the hint wins
        (server_error(retry_after=60.0), 0, True, 30.0, NextCandidate()),  # too long: move on
        (server_error(retry_after=60.0), 0, False, 30.0, RetryAfter(10.0)),  # none left: wait
        (server_error(), 0, True, 0.5, NextCandidate()),  # the wait would outlast the deadline
        (server_error(), 0, True, 0.0, GiveUp()),  # the deadline is spent
        (InvalidRequestError("bad", vendor="v", status=400), 0, True, 30.0, GiveUp()),
        (ModelNotFound("no", vendor="v", status=404), 0, True, 30.0, NextCandidate()),
        (AuthenticationError("key", vendor="v", status=401), 0, True, 30.0, NextCandidate()),
        (LocalRateLimited("rpm", vendor="v", retry_after=5), 0, True, 30.0, NextCandidate()),
        (CircuitOpen("open", vendor="v"), 0, True, 30.0, NextCandidate()),
    ],
)
def test_retry_decisions_are_values(
    error: VendorError, retry: int, has_next: bool, remaining: float, expected: object
) -> None:
    verdict = decider().decide(error, retry=retry, has_next=has_next, remaining=remaining)
    assert verdict == expected


def test_a_spent_retry_budget_moves_on() -> None:
    verdict = decider(spend=False).decide(server_error(), retry=0, has_next=True, remaining=30)
    assert verdict == NextCandidate()


def test_what_counts_against_a_vendor() -> None:
    rate_limited = RateLimitError("slow down", vendor="v", status=429, retry_after=2)
    assert vendor_fault(rate_limited)
    assert not breaker_fault(rate_limited)
    assert vendor_fault(server_error())
    assert breaker_fault(server_error())
    ours = LocalRateLimited("rpm", vendor="v", retry_after=1)
    assert not vendor_fault(ours)
    assert not breaker_fault(ours)
    assert not vendor_fault(CircuitOpen("open", vendor="v"))
    assert not vendor_fault(InvalidRequestError("bad", vendor="v", status=400))
    assert not vendor_fault(asyncio.CancelledError())


class ToolStreamer(EchoVendor):
    """Streams one tool call in two pieces, with no finish reason of its own."""

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(tool_call_deltas=(ToolCallDelta(0, "call_1", "get_weather", '{"ci'),))
        yield StreamChunk(tool_call_deltas=(ToolCallDelta(0, None, None, 'ty": "Oslo"}'),))
        yield StreamChunk(usage=Usage(5, 7, 12))


async def test_a_streamed_tool_call_reaches_the_request_record_whole() -> None:
    seen: list[Event] = []
    async with Dispatcher(vendors=[ToolStreamer("t")]) as d:
        d.subscribe(seen.append)
        chunks = [c async for c in d.stream(Request(model="m", messages=HI))]
    finished = next(e for e in seen if isinstance(e, RequestFinished))
    assert chunks[-1].finish_reason == "tool_calls"
    assert finished.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in finished.tool_calls] == [
        ("call_1", "get_weather", '{"city": "Oslo"}')
    ]
    assert finished.usage == Usage(5, 7, 12)


class Failing(EchoVendor):
    """Fails with a 500 while ``down``; records every call."""

    down = True

    async def send(self, request: Request) -> Response:
        if self.down:
            self.calls.append(request.model)
            raise VendorServerError("boom", vendor=self.name, status=500)
        return await super().send(request)


async def test_with_every_breaker_open_one_early_probe_per_interval() -> None:
    clock = FakeClock()
    only = Failing("a")
    config = Config(
        retry_policy=RetryPolicy(max_retries=0),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=60, probe_every_s=5),
    )
    request = Request(model="m", messages=HI)
    async with Dispatcher(config, vendors=[only], clock=clock) as d:
        with pytest.raises(VendorUnavailable, match="HTTP 500"):
            await d.send(request)  # opens the breaker for 60 s
        with pytest.raises(VendorUnavailable, match="HTTP 500"):
            await d.send(request)  # the early probe: sent, fails, reopens
        with pytest.raises(VendorUnavailable, match="circuit breaker open"):
            await d.send(request)  # within 5 s of that probe: not sent
        assert len(only.calls) == 2
        clock.advance(5)
        only.down = False
        assert (await d.send(request)).vendor == "a"  # the next probe closes it
        assert d.breaker_state("a") == "closed"
    assert len(only.calls) == 3


class Pausing(EchoVendor):
    """Answers 429 with Retry-After once, then normally."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.limited = True
        self.sent = 0

    async def send(self, request: Request) -> Response:
        self.sent += 1
        if self.limited:
            self.limited = False
            raise RateLimitError("slow down", vendor=self.name, status=429, retry_after=30)
        return await super().send(request)


async def test_with_the_last_deployment_paused_an_open_breaker_is_probed() -> None:
    """``a``'s breaker is open and ``b``, the one left, asked for a 30 s pause: new requests
    go to ``a`` as its half-open probe rather than all being refused for 30 s."""
    clock = FakeClock()
    a, b = Failing("a"), Pausing("b")
    config = Config(
        default_vendor="a",
        fallback_vendors=("b",),
        retry_policy=RetryPolicy(max_retries=0),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=60, probe_every_s=5),
    )
    request = Request(model="m", messages=HI)
    async with Dispatcher(config, vendors=[a, b], clock=clock) as d:
        with pytest.raises(VendorUnavailable, match="b HTTP 429"):
            await d.send(request)  # a fails (its breaker opens), b answers 429: paused 30 s
        a.down = False
        answer = await d.send(request)
        assert (answer.vendor, d.breaker_state("a")) == ("a", "closed")
        assert b.sent == 1  # only the first request: the pause was honoured
