"""Rate-limit arithmetic with a FakeClock, against every state backend."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from llmdispatcher.clock import FakeClock
from llmdispatcher.errors import RateLimitError
from llmdispatcher.resilience.rate_limit import (
    Limits,
    RateLimiter,
    Refusal,
    Reservation,
    parse_duration,
)
from llmdispatcher.state import StateBackend

# FakeClock's wall clock starts at 1_750_000_000, 20 s before the minute ends (…:59:40 UTC).
TO_MINUTE_END = 20.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(state: StateBackend, clock: FakeClock) -> RateLimiter:
    return RateLimiter(state, clock, lease_ttl=300)


async def admitted(limiter: RateLimiter, limits: Limits, tokens: int) -> Reservation:
    outcome = await limiter.reserve("openai", limits, tokens)
    assert isinstance(outcome, Reservation), str(outcome)
    return outcome


async def refused(limiter: RateLimiter, limits: Limits, tokens: int) -> Refusal:
    outcome = await limiter.reserve("openai", limits, tokens)
    assert isinstance(outcome, Refusal), outcome
    return outcome


# -- windows ----------------------------------------------------------------------------------


async def test_tpm_refuses_past_the_limit_and_says_when_it_frees(limiter: RateLimiter) -> None:
    limits = Limits(tpm=1_000)
    await admitted(limiter, limits, 600)
    refusal = await refused(limiter, limits, 600)
    assert (refusal.which, refusal.scope, refusal.used, refusal.limit) == (
        "tpm",
        "openai",
        600,
        1000,
    )
    assert refusal.requested == 600
    assert refusal.frees_in == pytest.approx(TO_MINUTE_END)
    assert str(refusal) == (
        "tpm of openai: 600 of 1,000 tokens used this minute, 600 more requested; frees in 20.0s"
    )
    await admitted(limiter, limits, 400)  # exactly up to the limit


async def test_the_next_window_starts_empty(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = Limits(rpm=2, tpm=1_000)
    await admitted(limiter, limits, 900)
    await refused(limiter, limits, 200)
    clock.advance(TO_MINUTE_END)
    await admitted(limiter, limits, 1_000)
    assert await limiter.usage("openai", limits) == {"rpm": 1, "tpm": 1_000}


async def test_reconcile_gives_back_the_unused_worst_case(limiter: RateLimiter) -> None:
    limits = Limits(tpm=1_000)
    reservation = await admitted(limiter, limits, 800)
    await refused(limiter, limits, 700)
    await limiter.reconcile(reservation, 300)
    assert await limiter.usage("openai", limits) == {"tpm": 300}
    await admitted(limiter, limits, 700)


async def test_a_request_that_failed_after_reserving_keeps_its_request(
    limiter: RateLimiter,
) -> None:
    limits = Limits(rpm=10, tpm=1_000)
    reservation = await admitted(limiter, limits, 800)
    await limiter.finish(reservation, 0)  # the vendor billed nothing
    assert await limiter.usage("openai", limits) == {"rpm": 1, "tpm": 0}


async def test_usage_above_the_reservation_is_counted(limiter: RateLimiter) -> None:
    """The documented tolerance: a prompt estimated too low overshoots by the difference."""
    limits = Limits(tpm=1_000)
    reservation = await admitted(limiter, limits, 500)
    await limiter.reconcile(reservation, 1_100)
    assert await limiter.usage("openai", limits) == {"tpm": 1_100}
    await refused(limiter, limits, 1)


async def test_reconcile_corrects_the_window_it_reserved_in(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = Limits(tpm=1_000, tpd=5_000)
    reservation = await admitted(limiter, limits, 900)
    clock.advance(TO_MINUTE_END + 1)
    await admitted(limiter, limits, 1_000)
    await limiter.reconcile(reservation, 100)  # the old minute closed: only tpd is corrected
    assert await limiter.usage("openai", limits) == {"tpm": 1_000, "tpd": 1_100}


async def test_reconcile_happens_once(limiter: RateLimiter) -> None:
    reservation = await admitted(limiter, Limits(tpm=1_000), 10)
    await limiter.reconcile(reservation, 5)
    with pytest.raises(ValueError, match="already reconciled"):
        await limiter.reconcile(reservation, 5)
    with pytest.raises(ValueError, match=">= 0"):
        await limiter.reconcile(await admitted(limiter, Limits(tpm=1_000), 1), -1)


async def test_day_limits_free_at_utc_midnight(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = Limits(rpd=1)
    await admitted(limiter, limits, 0)
    refusal = await refused(limiter, limits, 0)
    wall = datetime.fromtimestamp(clock.wall(), UTC)
    midnight = (wall + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert refusal.frees_in == pytest.approx((midnight - wall).total_seconds())
    assert "requests used today (UTC)" in str(refusal)


async def test_the_refusal_names_the_limit_that_frees_last(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, tpd=100)
    await admitted(limiter, limits, 100)
    refusal = await refused(limiter, limits, 1)
    assert refusal.which == "tpd"
    assert refusal.frees_in > TO_MINUTE_END


async def test_more_tokens_than_the_limit_can_never_pass(limiter: RateLimiter) -> None:
    refusal = await refused(limiter, Limits(tpm=1_000), 1_001)
    assert refusal.permanent
    assert math.isinf(refusal.frees_in)
    assert "can never be admitted" in str(refusal)
    error = refusal.to_error()
    assert (error.retryable, error.retry_after, error.error_code) == (False, None, "tpm")


def test_refusals_become_rate_limit_errors() -> None:
    error = Refusal("openai/gpt-4o", "tpm", 990, 1_000, 50, 12.5).to_error()
    assert isinstance(error, RateLimitError)
    assert (error.vendor, error.retryable, error.retry_after) == ("openai/gpt-4o", True, 12.5)
    assert "tpm of openai/gpt-4o" in str(error)


async def test_no_limits_touch_no_state(clock: FakeClock) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"state.{name} was used")

    limiter = RateLimiter(Untouchable(), clock)  # type: ignore[arg-type]
    reservation = await admitted(limiter, Limits(), 10_000)
    await limiter.finish(reservation, 5)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="tpm: must be a positive integer"):
        Limits(tpm=0)
    with pytest.raises(ValueError, match="rpm"):
        Limits(rpm=True)
    assert Limits().unlimited
    assert not Limits(max_concurrency=1).unlimited


# -- concurrency ------------------------------------------------------------------------------


async def test_concurrency_slots_are_released(limiter: RateLimiter) -> None:
    limits = Limits(max_concurrency=2)
    first = await admitted(limiter, limits, 1)
    await admitted(limiter, limits, 1)
    refusal = await refused(limiter, limits, 1)
    assert (refusal.which, refusal.used, refusal.limit) == ("max_concurrency", 2, 2)
    assert refusal.frees_in == pytest.approx(300)  # upper bound: the oldest lease's expiry
    assert "in flight" in str(refusal)
    await limiter.release(first)
    await limiter.release(first)  # idempotent
    await admitted(limiter, limits, 1)


async def test_a_window_refusal_does_not_keep_the_slot(limiter: RateLimiter) -> None:
    limits = Limits(tpm=100, max_concurrency=1)
    await limiter.finish(await admitted(limiter, limits, 100), 100)
    await refused(limiter, limits, 1)  # tpm full: the slot it took is given back
    await refused(limiter, limits, 1_000)  # permanent: same
    assert (await limiter.reserve("openai", Limits(max_concurrency=1), 0)).__class__ is Reservation


async def test_a_crashed_holders_slot_expires(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = Limits(max_concurrency=1)
    await admitted(limiter, limits, 1)  # never released: its replica "crashed"
    clock.advance(299)
    await refused(limiter, limits, 1)
    clock.advance(1)
    await admitted(limiter, limits, 1)


async def test_renew_keeps_a_long_stream_in_its_slot(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = Limits(max_concurrency=1)
    stream = await admitted(limiter, limits, 1)
    clock.advance(250)
    assert await limiter.renew(stream)
    clock.advance(250)
    await refused(limiter, limits, 1)
    await limiter.release(stream)
    assert not await limiter.renew(stream)


async def test_concurrent_reserves_never_pass_the_limit(limiter: RateLimiter) -> None:
    limits = Limits(tpm=2_500, max_concurrency=40)
    outcomes = await asyncio.gather(*(limiter.reserve("openai", limits, 100) for _ in range(100)))
    assert sum(isinstance(outcome, Reservation) for outcome in outcomes) == 25
    assert await limiter.usage("openai", limits) == {"tpm": 2_500}


async def test_limiters_sharing_a_store_share_the_limit(
    state_factory: Callable[[], StateBackend], clock: FakeClock
) -> None:
    replicas = [RateLimiter(state_factory(), clock) for _ in range(3)]
    limits = Limits(tpm=1_000, max_concurrency=7)
    calls = [r.reserve("openai", limits, 100) for r in replicas for _ in range(10)]
    outcomes = await asyncio.gather(*calls)
    assert sum(isinstance(outcome, Reservation) for outcome in outcomes) == 7


# -- the vendor's view ------------------------------------------------------------------------


async def test_openai_headers_slow_us_down_before_a_429(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limiter.observe_headers(
        "openai",
        {
            "X-RateLimit-Remaining-Requests": "99",
            "X-RateLimit-Reset-Requests": "0.6s",
            "X-RateLimit-Remaining-Tokens": "500",
            "X-RateLimit-Reset-Tokens": "1.5s",
        },
    )
    refusal = await refused(limiter, Limits(), 600)
    assert (refusal.which, refusal.used, refusal.requested) == ("vendor_tokens", 500, 600)
    assert refusal.frees_in == pytest.approx(1.5)
    assert str(refusal) == (
        "vendor_tokens of openai: the vendor reports 500 tokens remaining, 600 requested; "
        "resets in 1.5s"
    )
    await admitted(limiter, Limits(), 400)
    await refused(limiter, Limits(), 200)  # 100 left after our own debit
    clock.advance(1.5)
    await admitted(limiter, Limits(), 10_000)


async def test_anthropic_headers_use_the_most_restrictive_token_limit(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    reset = datetime.fromtimestamp(clock.wall() + 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    limiter.observe_headers(
        "anthropic",
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-input-tokens-remaining": "9000",
            "anthropic-ratelimit-input-tokens-reset": reset,
            "anthropic-ratelimit-output-tokens-remaining": "800",
            "anthropic-ratelimit-output-tokens-reset": reset,
        },
    )
    refusal = await limiter.reserve("anthropic", Limits(), 10)
    assert isinstance(refusal, Refusal)
    assert (refusal.which, refusal.used) == ("vendor_requests", 0)
    assert refusal.frees_in == pytest.approx(30)
    limiter.observe_headers(
        "anthropic",
        {
            "anthropic-ratelimit-requests-remaining": "50",
            "anthropic-ratelimit-requests-reset": reset,
        },
    )
    refusal = await limiter.reserve("anthropic", Limits(), 801)
    assert isinstance(refusal, Refusal)
    assert (refusal.which, refusal.used) == ("vendor_tokens", 800)


async def test_a_refusal_of_our_own_gives_the_vendor_view_back(limiter: RateLimiter) -> None:
    limiter.observe_headers(
        "openai", {"x-ratelimit-remaining-tokens": "500", "x-ratelimit-reset-tokens": "1m"}
    )
    await refused(limiter, Limits(tpm=100), 300)  # our tpm refuses: the vendor view keeps 500
    await admitted(limiter, Limits(), 500)


async def test_garbled_headers_are_ignored(limiter: RateLimiter) -> None:
    limiter.observe_headers(
        "openai",
        {
            "x-ratelimit-remaining-tokens": "lots",
            "x-ratelimit-reset-tokens": "1s",
            "x-ratelimit-remaining-requests": "5",
            "x-ratelimit-reset-requests": "soon",
            "anthropic-ratelimit-tokens-remaining": "5",
            "anthropic-ratelimit-tokens-reset": "tomorrow",
        },
    )
    await admitted(limiter, Limits(), 10**9)  # nothing usable was recorded


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("59.123s", 59.123),
        ("0s", 0.0),
        ("", None),
        ("5", None),
        ("1x", None),
        ("1s junk", None),
    ],
)
def test_openai_reset_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (None if seconds is None else pytest.approx(seconds))


# -- a vendor and a deployment together -------------------------------------------------------


async def test_vendor_and_deployment_limits_are_reserved_all_or_none(
    limiter: RateLimiter,
) -> None:
    vendor = ("openai", Limits(tpm=10_000, max_concurrency=5))
    deployment = ("openai/gpt-4o", Limits(tpm=1_000, max_concurrency=1))
    first = await limiter.reserve_many([vendor, deployment], 800)
    assert isinstance(first, Reservation)
    busy = await limiter.reserve_many([vendor, deployment], 100)
    assert isinstance(busy, Refusal)
    assert (busy.which, busy.scope) == ("max_concurrency", "openai/gpt-4o")
    await limiter.release(first)
    full = await limiter.reserve_many([vendor, deployment], 300)
    assert isinstance(full, Refusal)
    assert (full.which, full.scope, full.used) == ("tpm", "openai/gpt-4o", 800)
    assert await limiter.usage("openai", vendor[1]) == {"tpm": 800}  # not charged either
    other = await limiter.reserve_many([vendor, ("openai/gpt-4o-mini", Limits(tpm=500))], 300)
    assert isinstance(other, Reservation)  # the vendor's slot was given back by the refusal
    await limiter.finish(other, 100)
    assert await limiter.usage("openai", vendor[1]) == {"tpm": 900}


async def test_scopes_must_be_distinct(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await limiter.reserve_many([("a", Limits()), ("a", Limits())], 1)
