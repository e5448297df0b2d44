"""One contract for every cache store: memory, SQLite and a real Redis.

Expiry follows the ``now`` each call passes, so these tests move time by passing a later
``now``; nothing sleeps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from llmdispatcher.cache.store import Bounds, CacheStore, open_cache_store
from tests.redis_fixtures import delete_prefix

NOW = 1_800_000_000.0
Opener = Callable[..., CacheStore]
ROOMY = Bounds(100, 10_000)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """A factory: ``open_store(Bounds(...))`` gives a fresh, empty store of each kind."""
    opened: list[CacheStore] = []
    prefix = f"llmd-test-cache-{uuid.uuid4().hex[:12]}:"
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'cache.db'}"}.get(
        request.param
    ) or request.getfixturevalue("redis_url")

    def factory(bounds: Bounds = ROOMY) -> CacheStore:
        store = open_cache_store(url, bounds, prefix=prefix)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    if request.param == "redis":
        delete_prefix(url, prefix)


async def test_a_value_is_read_back_until_it_expires(open_store: Opener) -> None:
    store = open_store()
    assert await store.get("k", NOW) is None
    done = await store.put("k", b"answer", NOW + 10, NOW)
    assert (done.stored, done.evicted, done.entries, done.bytes) == (True, 0, 1, 6)
    assert await store.get("k", NOW + 9.9) == b"answer"
    assert await store.get("k", NOW + 10) is None


async def test_a_put_replaces_the_value_and_its_size(open_store: Opener) -> None:
    store = open_store()
    await store.put("k", b"first answer", NOW + 10, NOW)
    done = await store.put("k", b"second", NOW + 10, NOW)
    assert (done.entries, done.bytes) == (1, 6)
    assert await store.get("k", NOW) == b"second"


async def test_past_max_entries_entries_are_evicted(open_store: Opener) -> None:
    store = open_store(Bounds(max_entries=2, max_bytes=10_000))
    await store.put("a", b"1", NOW + 10, NOW)
    await store.put("b", b"2", NOW + 20, NOW)
    done = await store.put("c", b"3", NOW + 30, NOW)
    assert (done.stored, done.evicted, done.entries) == (True, 1, 2)
    assert await store.get("a", NOW) is None  # oldest / soonest to expire
    assert await store.get("c", NOW) == b"3"


async def test_past_max_bytes_entries_are_evicted_and_the_total_stays_within(
    open_store: Opener,
) -> None:
    store = open_store(Bounds(max_entries=100, max_bytes=25))
    for i in range(10):
        done = await store.put(f"k{i}", b"x" * 10, NOW + 10 + i, NOW)
        assert done.bytes <= 25
    assert (done.entries, done.bytes) == (2, 20)
    assert await store.get("k9", NOW) == b"x" * 10


async def test_a_value_larger_than_max_bytes_is_not_stored(open_store: Opener) -> None:
    store = open_store(Bounds(max_entries=100, max_bytes=8))
    done = await store.put("big", b"x" * 9, NOW + 10, NOW)
    assert (done.stored, done.entries, done.bytes) == (False, 0, 0)
    assert await store.get("big", NOW) is None


async def test_expired_entries_do_not_count_against_the_bounds(open_store: Opener) -> None:
    store = open_store(Bounds(max_entries=1, max_bytes=10_000))
    await store.put("old", b"1", NOW + 1, NOW)
    done = await store.put("new", b"2", NOW + 100, NOW + 5)
    assert (done.stored, done.entries) == (True, 1)
    assert await store.get("new", NOW + 5) == b"2"
