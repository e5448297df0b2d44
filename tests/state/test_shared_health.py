"""Health shared by replicas over a real Redis (``routing.shared_health``): a breaker that opens
on one replica opens on the others, each then probing on its own; latency health merges; a
replica that loses Redis serves on with its own view, logs once, and rejoins.

Each "replica" is a ``BreakerBoard`` + ``HealthTracker`` + ``SharedHealth`` in this process:
the channel between them is real Redis pub/sub and hashes. Waits are bounded polls, never
timed assertions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmdispatcher.clock import FakeClock
from llmdispatcher.resilience.circuit_breaker import BreakerBoard
from llmdispatcher.routing.health import HealthTracker
from llmdispatcher.routing.shared_health import SharedHealth
from llmdispatcher.settings.resilience import CircuitBreaker
from tests.state.own_redis import OwnRedis

KEY = "openai/gpt-4o-mini"
SETTINGS = CircuitBreaker(failure_threshold=3, cooldown_s=30)


@dataclass
class Replica:
    clock: FakeClock
    breakers: BreakerBoard
    health: HealthTracker
    shared: SharedHealth


def replica(url: str) -> Replica:
    clock = FakeClock()
    breakers, health = BreakerBoard(SETTINGS, clock), HealthTracker()
    shared = SharedHealth(url, breakers, health, clock, every_s=0.05, stale_after_s=5)
    return Replica(clock, breakers, health, shared)


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - another replica, over Redis, flips it
            await asyncio.sleep(0.01)


@pytest.fixture
async def three(redis_url: str, redis_prefix: str) -> AsyncIterator[list[Replica]]:
    replicas = [replica(f"{redis_url}?prefix={redis_prefix}") for _ in range(3)]
    for r in replicas:
        r.shared.start()
    await until(lambda: all(r.shared.connected for r in replicas))
    yield replicas
    for r in replicas:
        await r.shared.aclose()


def fail(r: Replica, times: int) -> None:
    for _ in range(times):
        r.breakers.record_failure(KEY, "VendorUnavailable")


async def test_a_breaker_opening_on_one_replica_opens_on_all(three: list[Replica]) -> None:
    first, second, third = three
    fail(first, SETTINGS.failure_threshold)
    assert first.breakers.state(KEY) == "open"
    await until(lambda: second.breakers.state(KEY) == third.breakers.state(KEY) == "open")
    reason = second.breakers.blocked(KEY) or ""
    assert f"opened by replica {first.shared.replica}: VendorUnavailable" in reason
    assert second.shared.received == third.shared.received == 1
    # Applying a remote opening publishes nothing back: no echo between replicas.
    await asyncio.sleep(0.2)
    assert first.shared.received == 0


async def test_each_replica_probes_on_its_own_schedule(three: list[Replica]) -> None:
    first, second, _ = three
    fail(first, SETTINGS.failure_threshold)
    await until(lambda: second.breakers.state(KEY) == "open")
    second.clock.advance(SETTINGS.cooldown_s)  # only the second replica's cooldown ran out
    assert second.breakers.state(KEY) == "half_open"
    assert second.breakers.admit(KEY)  # it sends its own probe...
    assert not second.breakers.admit(KEY)  # ...one at a time
    second.breakers.record_success(KEY)
    assert second.breakers.state(KEY) == "closed"
    await asyncio.sleep(0.2)
    assert first.breakers.state(KEY) == "open"  # a close is not shared


async def test_latency_health_merges_across_replicas(three: list[Replica]) -> None:
    first, second, third = three
    for _ in range(4):
        first.health.started(KEY)
        first.health.finished(KEY, ok=True, latency_s=2.0)
    second.health.started(KEY)
    second.health.finished(KEY, ok=True, latency_s=1.0)
    await until(lambda: third.health.view(KEY).samples == 5)
    merged = third.health.view(KEY)
    assert merged.latency_ewma_s == pytest.approx((4 * 2.0 + 1 * 1.0) / 5)
    assert merged.in_flight == 0
    await until(lambda: second.health.view(KEY).samples == 5)
    assert second.health.view(KEY).latency_ewma_s == pytest.approx(1.8)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


async def test_losing_redis_serves_locally_logs_once_and_rejoins(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = replica(own_redis.url), replica(own_redis.url)
    for r in (first, second):
        r.shared.start()
    try:
        await until(lambda: first.shared.connected and second.shared.connected)
        second.health.started(KEY)
        second.health.finished(KEY, ok=True, latency_s=1.0)
        await until(lambda: first.health.view(KEY).samples == 1)
        with caplog.at_level(logging.WARNING, logger="llmdispatcher.routing"):
            own_redis.kill()
            await until(lambda: not first.shared.connected)
            await asyncio.sleep(1.0)  # several reconnect attempts fail meanwhile
            assert first.health.view(KEY).samples == 0  # only its own view now
            fail(first, SETTINGS.failure_threshold)  # breakers keep working locally
            assert first.breakers.state(KEY) == "open"
            own_redis.start()
            await until(lambda: first.shared.connected and second.shared.connected)
            await until(lambda: first.health.view(KEY).samples == 1)
        lost = [r for r in caplog.records if "Redis unreachable" in r.message]
        back = [r for r in caplog.records if "Redis is back" in r.message]
        assert len(lost) == 2
        assert len(back) == 2
        # After rejoining, openings travel again.
        fail(second, SETTINGS.failure_threshold)
        await until(lambda: first.shared.received == 1)
    finally:
        for r in (first, second):
            await r.shared.aclose()


async def test_closing_at_any_moment_of_connecting_never_hangs(
    redis_url: str, redis_prefix: str
) -> None:
    """redis-py can swallow a cancellation that arrives mid-connect; closing must still end
    (this hung a test of two dispatchers closed right after their first request)."""
    for delay in (0, 0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.016, 0.032):
        r = replica(f"{redis_url}?prefix={redis_prefix}")
        r.shared.start()
        await asyncio.sleep(delay)
        async with asyncio.timeout(20):
            await r.shared.aclose()
