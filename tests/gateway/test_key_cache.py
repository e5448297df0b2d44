"""The gateway's in-memory view of the key store: lookups by digest, expiry at once, budgets
found by the tagged key id (never by what a request claims)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmdispatcher.clock import FakeClock
from llmdispatcher.gateway.key_cache import KeyCache
from llmdispatcher.keys import KeyStore, open_key_store
from llmdispatcher.keys.model import digest_of


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[KeyStore]:
    store = open_key_store(f"sqlite:///{tmp_path / 'keys.db'}")
    yield store
    await store.aclose()


async def test_lookup_expiry_and_revocation(store: KeyStore) -> None:
    clock = FakeClock(wall_start=time.time())  # the store stamps keys with the real time
    cache = KeyCache(store, 0.5, clock.wall)
    await cache.load()
    assert not cache.enabled  # an empty store: no authentication
    key, plaintext = await store.create({"name": "a", "expires_in": "1h"}, actor="t")
    await cache.load()
    assert cache.enabled
    found = cache.identify(digest_of(plaintext))
    assert found is not None
    assert (found.id, found.name) == (key.id, "a")
    assert cache.identify(digest_of(plaintext + "x")) is None
    assert cache.identify(digest_of(plaintext[:-1])) is None
    clock.advance(3601)  # expiry needs no refresh
    assert cache.identify(digest_of(plaintext)) is None
    await store.revoke(key.id, actor="t")
    await cache.load()
    assert cache.enabled  # revoking every key does not open the gateway


async def test_budgets_come_from_the_store_not_the_request(store: KeyStore) -> None:
    cache = KeyCache(store, 0.5, FakeClock().wall)
    await store.set_team_budget({"name": "web", "budget_usd": 100}, actor="t")
    key, _ = await store.create({"name": "k", "team": "web", "budget_usd": 5}, actor="t")
    other, _ = await store.create({"name": "o", "team": "ops"}, actor="t")
    await cache.load()
    scopes = [b.scope for b in cache.budgets({"api_key_id": key.id})]
    assert scopes == ["key:k", "team:web"]
    claimed = {"api_key_id": other.id, "api_key": "k", "team": "web"}
    assert cache.budgets(claimed) == []  # o has no budget, whatever else the request says
    assert cache.budgets({"api_key": "k", "team": "web"}) == ()
    await store.revoke(key.id, actor="t")
    await cache.load()
    assert cache.budgets({"api_key_id": key.id}) == ()
