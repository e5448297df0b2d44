"""Redis stops mid-load and comes back: ``state_failure: open`` serves on with local limits,
``closed`` refuses limited requests with a 503 while unlimited ones are served; one warning
per outage and one on recovery; recovery without a restart; no request waits on a dead or
silent Redis beyond the state timeouts.

Each test runs its own redis-server (tests/state/own_redis.py) and SIGKILLs it mid-test. The
dispatcher's clock is a ``FakeClock`` (its wall time fixes the rate-limit minute); the outage
itself, its probes and the timeouts run on real time, bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Limits, Request, RetryPolicy
from llmdispatcher.budgets import Budget
from llmdispatcher.errors import DispatcherError, StateError
from llmdispatcher.gateway.errors import api_error
from llmdispatcher.state import StatePolicy, open_state
from llmdispatcher.state.failover import FailoverState
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.state.own_redis import OwnRedis

HI = [{"role": "user", "content": "hi"}]
RPM = 30
CONCURRENCY = 8
BOUND_S = 60  # the whole test, outage and recovery included, must finish within this


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def dispatcher(
    a: FakeOpenAI, b: FakeOpenAI, redis_url: str, failure: str, budgets: tuple[Budget, ...] = ()
) -> Dispatcher:
    config = Config(
        budgets=budgets,
        default_vendor="a",
        fallback_vendors=("b",),
        retry_policy=RetryPolicy(max_retries=0),
        state_url=redis_url,
        state_failure=failure,  # type: ignore[arg-type]
        state_timeout_s=0.2,
        state_connect_timeout_s=0.2,
    )
    vendors = [
        OpenAIVendor(
            name="a", api_key=FAKE_OPENAI_KEY, base_url=a.url + "/v1", limits=Limits(rpm=RPM)
        ),
        OpenAIVendor(name="b", api_key=FAKE_OPENAI_KEY, base_url=b.url + "/v1"),
    ]
    return Dispatcher(config, vendors=vendors, clock=FakeClock())


async def burst(d: Dispatcher, count: int, vendor: str | None = None) -> Counter[str]:
    """``count`` requests, ``CONCURRENCY`` at a time: which vendor answered, or which error."""
    outcomes: Counter[str] = Counter()
    queue = iter(range(count))

    async def loop() -> None:
        for _ in queue:
            try:
                reply = await d.send(Request(model="gpt-4o-mini", messages=HI, vendor=vendor))
            except DispatcherError as exc:
                found = api_error(exc)
                outcomes[f"{found.status if found else 500} {type(exc).__name__}"] += 1
            else:
                outcomes[reply.vendor] += 1

    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    return outcomes


def lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name == "llmdispatcher.state")


async def until_recovered(d: Dispatcher, caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """Keep a trickle of requests going (each may start a probe) until the recovery line."""
    seen: Counter[str] = Counter()
    while not lines(caplog, "is back"):
        seen += await burst(d, 1)
        await asyncio.sleep(0.05)
    return seen


@pytest.fixture
def state_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="llmdispatcher.state")
    return caplog


async def test_open_serves_with_local_limits_and_recovers(
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    own_redis: OwnRedis,
    state_logs: pytest.LogCaptureFixture,
) -> None:
    async with (
        asyncio.timeout(BOUND_S),
        dispatcher(fake_openai, fake_openai_b, own_redis.url, "open") as d,
    ):
        before = await burst(d, 100)
        own_redis.kill()
        during = await burst(d, 400)
        own_redis.start()
        await until_recovered(d, state_logs)
        after = await burst(d, 100)
    assert before == {"a": RPM, "b": 100 - RPM}  # the shared limit, in Redis
    # Redis gone: every request served; this process holds a's limit by itself, afresh.
    assert during == {"a": RPM, "b": 400 - RPM}
    # Redis back (empty: no persistence), limits are shared again: a takes RPM more at most.
    assert after["a"] <= RPM
    assert sum(after.values()) == 100
    assert not any(" " in outcome for outcome in after)  # no errors after recovery either
    assert lines(state_logs, "state backend unavailable") == 1
    assert lines(state_logs, "is back") == 1
    assert not [r for r in state_logs.records if r.exc_info]  # no traceback, ever


async def test_closed_refuses_limited_requests_with_503_and_serves_the_rest(
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    own_redis: OwnRedis,
    state_logs: pytest.LogCaptureFixture,
) -> None:
    async with (
        asyncio.timeout(BOUND_S),
        dispatcher(fake_openai, fake_openai_b, own_redis.url, "closed") as d,
    ):
        assert await burst(d, 20, vendor="a") == {"a": 20}
        own_redis.kill()
        only_a = await burst(d, 200, vendor="a")
        only_b = await burst(d, 200, vendor="b")
        either = await burst(d, 200)  # a first, b as its fallback
        own_redis.start()
        await until_recovered(d, state_logs)
        again = await burst(d, 5, vendor="a")
    assert only_a == {"503 StateUnavailable": 200}
    assert only_b == {"b": 200}  # no limit on b: Redis is not needed
    assert either == {"b": 200}  # a's limit cannot be checked: its fallback serves
    assert again == {"a": 5}
    assert lines(state_logs, "state backend unavailable") == 1
    assert lines(state_logs, "is back") == 1


async def test_the_503_says_what_is_down_and_what_to_do(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI, own_redis: OwnRedis
) -> None:
    async with dispatcher(fake_openai, fake_openai_b, own_redis.url, "closed") as d:
        own_redis.kill()
        with pytest.raises(StateError) as caught:
            await d.send(Request(model="gpt-4o-mini", messages=HI, vendor="a"))
    found = api_error(caught.value)
    assert found is not None
    assert found.status == 503
    assert found.code == "state_unavailable"
    assert "state_failure is closed" in found.message
    assert f"127.0.0.1:{own_redis.port}" in found.message


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a black-holed Redis."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.parametrize("failure", ["open", "closed"])
async def test_a_silent_redis_costs_at_most_the_timeouts(silent_server: int, failure: str) -> None:
    policy = StatePolicy(failure=failure, timeout_s=0.1, connect_timeout_s=0.1)  # type: ignore[arg-type]
    state = open_state(f"redis://127.0.0.1:{silent_server}/0", policy=policy)
    try:
        async with asyncio.timeout(5):  # ~0.2 s for the first call, none for the rest
            answers = await asyncio.gather(
                *(state.get(["k"], 0.0) for _ in range(50)), return_exceptions=True
            )
            later = await asyncio.gather(
                *(state.get(["k"], 0.0) for _ in range(50)), return_exceptions=True
            )
    finally:
        await state.close()
    if failure == "open":
        assert answers + later == [(0,)] * 100
    else:
        assert all(isinstance(answer, StateError) for answer in answers + later)


async def test_settlements_during_an_outage_are_replayed(own_redis: OwnRedis) -> None:
    """A slot taken in Redis and given back while Redis is down is given back there on
    recovery, instead of staying taken until its lease expires an hour later."""
    state = open_state(own_redis.url, policy=StatePolicy(timeout_s=0.2, connect_timeout_s=0.2))
    assert isinstance(state, FailoverState)
    try:
        assert (await state.acquire_lease("slots", "r1", 1, 0.0, 3600.0)).acquired
        own_redis.save()  # Redis comes back holding r1's lease
        own_redis.kill()
        assert await state.release_lease("slots", "r1") is False  # queued: Redis refused it
        assert state.outage is not None
        own_redis.start()
        async with asyncio.timeout(20):
            while state.outage is not None:
                await state.get(["k"], 0.0)  # a call due for a probe starts one
                await asyncio.sleep(0.05)
        taken = await state.acquire_lease("slots", "r2", 1, 0.0, 3600.0)
    finally:
        await state.close()
    assert taken.acquired
    assert taken.held == 1


@pytest.mark.parametrize("failure", ["open", "closed"])
async def test_budgets_follow_the_policy(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI, own_redis: OwnRedis, failure: str
) -> None:
    """A budget applies to every request (scope global): open serves it from the local store,
    closed refuses it with the 503 of a StateError."""
    budgets = (Budget("global", 100, "day"),)
    async with dispatcher(fake_openai, fake_openai_b, own_redis.url, failure, budgets) as d:
        own_redis.kill()
        outcomes = await burst(d, 20, vendor="b")
    assert outcomes == ({"b": 20} if failure == "open" else {"503 StateError": 20})
