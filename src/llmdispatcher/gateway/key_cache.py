"""Stored keys in memory: what the request path looks keys up in, kept fresh by polling.

The request path never queries the database. ``KeyCache.load`` reads every key once; then
``run`` polls the store's sequence number (one row) every ``refresh_s`` and, when it moved,
reads only the keys and teams changed since. A revoked key is therefore refused on every
replica within ``refresh_s`` plus one query; an expired one at once (``identify`` checks the
clock). If the store cannot be read the cache keeps what it knows and tries again (logged);
until the first load succeeds it reports itself ``enabled``, so a gateway fails closed, and
once the store holds a key, revoking every key does not turn authentication off.

Lookup: keys are indexed by the first 8 bytes of their SHA-256; the bucket's keys (almost
always one) are compared in full with ``hmac.compare_digest``, and a miss compares against a
dummy digest, so the work done does not depend on whether or how much of a key matched.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..budgets import Budget, Period
from ..keys import KeyStore, StoredKey, Team
from ..limits import Limits
from .auth import ApiKey

logger = logging.getLogger("llmdispatcher.gateway")
_DUMMY = bytes(32)


def api_key_of(stored: StoredKey) -> ApiKey:
    limits = Limits(rpm=stored.rpm, tpm=stored.tpm, max_concurrency=stored.max_concurrency)
    return ApiKey(
        name=stored.name,
        digest=stored.digest,
        allowed_models=stored.models,
        id=stored.id,
        team=stored.team,
        limits=None if limits.unlimited else limits,
        expires_at=stored.expires_at,
        role=stored.role,
    )


class KeyCache:
    def __init__(self, store: KeyStore, refresh_s: float, wall: Callable[[], float]) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._wall = wall
        self.seq = -1  # nothing loaded yet
        self.error: str | None = None  # why the last refresh failed (None: it succeeded)
        self._keys: dict[str, StoredKey] = {}  # by id, active and revoked
        self._index: dict[bytes, tuple[ApiKey, ...]] = {}
        self._key_budgets: dict[str, Budget] = {}  # by key name
        self._team_budgets: dict[str, Budget] = {}  # by team

    @property
    def enabled(self) -> bool:
        """Whether the gateway must authenticate: once the store holds any key, even a revoked
        or expired one, so revoking the last key never opens the gateway; and until the first
        load (fail closed)."""
        return self.seq < 0 or bool(self._keys)

    def identify(self, digest: bytes) -> ApiKey | None:
        found = None
        for key in self._index.get(digest[:8], ()):
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            hmac.compare_digest(digest, _DUMMY)  # a miss costs what a hit does
            return None
        if found.expires_at is not None and self._wall() >= found.expires_at:
            return None
        return found

    def active_key(self, key_id: str) -> StoredKey | None:
        """The stored key with this id while it is neither revoked nor expired."""
        found = self._keys.get(key_id)
        return found if found is not None and found.active(self._wall()) else None

    def budgets(self, metadata: Mapping[str, Any] | None) -> Sequence[Budget]:
        """The stored budgets a request is counted against: its stored key's and that key's
        team's. The key is found by the id the gateway tagged the request with
        (``api_key_id``); the name and team come from the store, not from the request."""
        stored = self._keys.get((metadata or {}).get("api_key_id") or "")
        if stored is None or stored.revoked_at is not None:
            return ()
        found = (self._key_budgets.get(stored.name), self._team_budgets.get(stored.team or ""))
        return [budget for budget in found if budget is not None]

    def key_budget(self, name: str) -> Budget | None:
        return self._key_budgets.get(name)

    def period(self, name: str) -> Period:
        """The period a key's usage is counted in: its budget's, else the month."""
        budget = self._key_budgets.get(name)
        return "month" if budget is None else budget.period

    # --- refreshing ---------------------------------------------------------------------------
    async def load(self) -> None:
        """Read everything (the first time) or what changed since the last read."""
        since = max(self.seq, 0)
        if self.seq >= 0 and await self.store.seq() == self.seq:
            return
        changes = await self.store.changes(since)
        for key in changes.keys:
            self._keys[key.id] = key
        for team in changes.teams:
            self._team_budgets[team.name] = _team_budget(team)
        for name in changes.cleared_teams:
            self._team_budgets.pop(name, None)
        if changes.keys or self.seq < 0:
            self._rebuild()
        self.seq = changes.seq

    async def run(self) -> None:
        """Poll until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.load()
            except Exception as exc:  # the database is down: keep serving what we know
                if not failing:
                    logger.warning("key store unreachable, keeping the keys known: %s", exc)
                failing = True
                self.error = f"{type(exc).__name__}: {exc}"
            else:
                if failing:
                    logger.info("key store reachable again")
                failing = False
                self.error = None

    def _rebuild(self) -> None:
        index: dict[bytes, list[ApiKey]] = {}
        budgets: dict[str, Budget] = {}
        for stored in self._keys.values():
            if stored.revoked_at is not None:
                continue
            index.setdefault(stored.digest[:8], []).append(api_key_of(stored))
            if stored.budget_usd is not None:
                budgets[stored.name] = Budget(
                    f"key:{stored.name}", stored.budget_usd, stored.budget_period
                )
        self._index = {prefix: tuple(keys) for prefix, keys in index.items()}
        self._key_budgets = budgets


def _team_budget(team: Team) -> Budget:
    return Budget(f"team:{team.name}", team.budget_usd, team.budget_period)
