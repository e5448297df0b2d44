"""A burst on a healthy Redis queues for a connection; it is not an outage. Waiting for one of
``max_connections`` is outside the per-call bound, so only Redis's own slowness starts an
outage; a wait that runs out refuses that one call with ``StateBusy``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from llmdispatcher.errors import StateBusy, StateError
from llmdispatcher.state import StatePolicy
from llmdispatcher.state.base import CounterAdd
from llmdispatcher.state.failover import FailoverState
from llmdispatcher.state.redis import RedisState

BURST = 200
DELAY_S = 0.04  # per answer: 200 calls in a row on one connection take 8 s in all


@pytest.fixture
async def slow_redis(redis_url: str) -> AsyncIterator[str]:
    """The test Redis behind a relay that holds each of its answers back 40 ms: a healthy
    Redis far away. (Slowness by the network, not by a loaded event loop, so the test does not
    depend on how busy the machine is.)"""
    target = urlsplit(redis_url)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    await asyncio.sleep(delay)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, DELAY_S))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield urlunsplit(target._replace(netloc=f"127.0.0.1:{port}"))
    server.close()


async def test_a_burst_far_beyond_the_pool_waits_and_starts_no_outage(
    slow_redis: str, redis_prefix: str
) -> None:
    # One connection, a 3 s bound per call (generous: a saturated CI machine must not time out
    # a real call), 40 ms per answer: 200 calls in a row take 8 s in all, so when the pool wait
    # counted against the bound, the tail "timed out" and began an outage on a healthy Redis.
    url = f"{slow_redis}?prefix={redis_prefix}"
    primary = RedisState(url, max_connections=1, timeout_s=2.0, connect_timeout_s=1.0,
                         pool_wait_s=120)  # fmt: skip
    state = FailoverState(primary, StatePolicy(failure="closed"))
    try:
        async with asyncio.timeout(120):
            results = await asyncio.gather(
                *(state.add_within([CounterAdd("n", 1)], 0.0) for _ in range(BURST))
            )
        assert all(result.ok for result in results)
        assert state.outages == 0
        assert await state.get(["n"], 0.0) == (BURST,)
    finally:
        await state.close()


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


async def test_a_wait_that_runs_out_refuses_that_call_only(silent_server: int) -> None:
    primary = RedisState(f"redis://127.0.0.1:{silent_server}/0", max_connections=1,
                         timeout_s=0.5, connect_timeout_s=0.5, pool_wait_s=0.05)  # fmt: skip
    state = FailoverState(primary, StatePolicy(failure="closed"))
    try:
        async with asyncio.timeout(10):
            holder = asyncio.create_task(state.get(["k"], 0.0))
            await asyncio.sleep(0.01)  # the holder has the one connection
            with pytest.raises(StateBusy, match=r"1 connections stayed busy for 0\.05s"):
                await state.get(["k"], 0.0)
            assert state.outages == 0  # busy is not down
            with pytest.raises(StateError) as down:
                await holder  # the silent server times it out: that one is an outage
        assert not isinstance(down.value, StateBusy)
        assert state.outages == 1
    finally:
        await state.close()
