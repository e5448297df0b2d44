"""``memory://``: state in this process only (the default).

Each primitive runs without an ``await`` inside, under a ``threading.Lock``, so it is atomic for
every task on the event loop and for other threads of this process. Nothing is shared with other
processes: with several replicas use ``redis://`` (or ``sqlite:///`` on one machine).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .base import AddResult, BackendBase, CounterAdd, LeaseResult, check_adds, is_live

_SWEEP_EVERY = 1024  # writes between sweeps of expired counters


class MemoryState(BackendBase):
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._writes = 0

    async def add_within(self, adds: Sequence[CounterAdd], now: float) -> AddResult:
        check_adds(adds)
        with self._lock:
            current = [self._value(add.key, now) for add in adds]
            fits = all(
                add.limit is None or value + add.amount <= add.limit
                for add, value in zip(adds, current, strict=True)
            )
            if not fits:
                return AddResult(ok=False, values=tuple(current))
            for add, value in zip(adds, current, strict=True):
                existing = self._counters.get(add.key)
                expires_at = existing[1] if existing else add.expires_at
                self._counters[add.key] = (value + add.amount, expires_at)
            self._count_write(now)
            return AddResult(ok=True, values=tuple(self._counters[a.key][0] for a in adds))

    async def adjust(self, key: str, delta: int, now: float) -> int | None:
        with self._lock:
            if key not in self._counters or not self._live(key, now):
                return None
            value, expires_at = self._counters[key]
            self._counters[key] = (value + delta, expires_at)
            return value + delta

    async def get(self, keys: Sequence[str], now: float) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._value(key, now) for key in keys)

    async def acquire_lease(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> LeaseResult:
        with self._lock:
            leases = self._live_leases(key, now)
            acquired = holder in leases or len(leases) < limit
            if acquired:
                leases[holder] = expires_at
            return LeaseResult(acquired, len(leases), min(leases.values(), default=None))

    async def renew_lease(self, key: str, holder: str, now: float, expires_at: float) -> bool:
        with self._lock:
            leases = self._live_leases(key, now)
            if holder not in leases:
                return False
            leases[holder] = expires_at
            return True

    async def release_lease(self, key: str, holder: str) -> bool:
        with self._lock:
            leases = self._leases.get(key, {})
            found = leases.pop(holder, None) is not None
            if not leases:
                self._leases.pop(key, None)
            return found

    def holds(self, key: str, now: float) -> bool:
        """Whether ``key`` is a live counter here (a settlement knows where it belongs)."""
        with self._lock:
            return key in self._counters and self._live(key, now)

    def _live(self, key: str, now: float) -> bool:
        return is_live(self._counters[key][1], now)

    def _value(self, key: str, now: float) -> int:
        """The live value; an expired counter is dropped here, so re-adding starts afresh."""
        if key not in self._counters:
            return 0
        if not self._live(key, now):
            del self._counters[key]
            return 0
        return self._counters[key][0]

    def _live_leases(self, key: str, now: float) -> dict[str, float]:
        leases = self._leases.setdefault(key, {})
        for holder in [h for h, expiry in leases.items() if expiry <= now]:
            del leases[holder]
        return leases

    def _count_write(self, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            expired = [k for k, (_, exp) in self._counters.items() if not is_live(exp, now)]
            for key in expired:
                del self._counters[key]
