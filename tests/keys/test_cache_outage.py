"""PostgreSQL holding the keys goes away mid-run: every key known before keeps authenticating
from the cache, the cache logs the outage once, and when the database returns the changes
made meanwhile (a key created, a key revoked directly in it) arrive without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from llmdispatcher.clock import FakeClock
from llmdispatcher.gateway.key_cache import KeyCache
from llmdispatcher.keys import open_key_store
from llmdispatcher.keys.model import digest_of
from tests.ledger.tcp_forwarder import TcpForwarder
from tests.ledger.test_outage import through


@pytest.fixture
async def forwarder(postgres_url: str) -> AsyncIterator[TcpForwarder]:
    parts = urlsplit(postgres_url)
    forwarder = TcpForwarder(parts.hostname or "127.0.0.1", parts.port or 5432)
    await forwarder.start()
    yield forwarder
    await forwarder.cut()


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (log text and cache state have no event)
            await asyncio.sleep(0.02)


async def test_keys_keep_working_from_the_cache_while_postgres_is_down(
    postgres_url: str, forwarder: TcpForwarder, caplog: pytest.LogCaptureFixture
) -> None:
    admin = open_key_store(postgres_url)  # the operator's own way in, not through the cut
    gateway_store = open_key_store(through(postgres_url, forwarder))
    try:
        _, kept_plain = await admin.create({"name": "kept"}, actor="t")
        doomed, doomed_plain = await admin.create({"name": "doomed"}, actor="t")
        cache = KeyCache(gateway_store, 0.05, FakeClock(wall_start=time.time()).wall)
        await cache.load()
        poller = asyncio.create_task(cache.run())
        with caplog.at_level(logging.INFO, logger="llmdispatcher.gateway"):
            await forwarder.cut()
            late, late_plain = await admin.create({"name": "late"}, actor="t")
            await admin.revoke(doomed.id, actor="t")
            await _until(lambda: "key store unreachable" in caplog.text)
            await asyncio.sleep(0.3)  # several failed polls
            # Down: what was known still authenticates; what changed is not known yet.
            assert cache.identify(digest_of(kept_plain)) is not None
            assert cache.identify(digest_of(doomed_plain)) is not None
            assert cache.identify(digest_of(late_plain)) is None
            await forwarder.restore()
            await _until(lambda: cache.identify(digest_of(late_plain)) is not None)
        poller.cancel()
        assert cache.identify(digest_of(doomed_plain)) is None  # the revocation arrived
        assert cache.identify(digest_of(kept_plain)) is not None
        assert caplog.text.count("key store unreachable") == 1  # once per outage
        assert "key store reachable again" in caplog.text
        assert late.name == "late"
        assert kept_plain not in caplog.text
        assert late_plain not in caplog.text
    finally:
        await gateway_store.aclose()
        await admin.aclose()
