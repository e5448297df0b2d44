"""The cache store protocol: bytes under a key until an expiry, within an entry and byte bound.

Every store (``memory://``, ``sqlite:///``, ``redis://``) implements ``CacheStore`` and passes
the same contract tests (tests/cache/test_store_contract.py). Expiry is decided by the ``now``
the caller passes (epoch seconds, ``Clock.wall()``), never by the store's own clock, so every
store behaves the same under a ``FakeClock``. Past ``max_entries`` or ``max_bytes`` a ``put``
evicts entries (memory: least recently used; SQLite and Redis: the soonest to expire) and says
how many; a value larger than ``max_bytes`` is not stored at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Bounds:
    max_entries: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a ``put`` did: stored or not (too large), entries evicted to make room, and the
    entries and bytes the store holds now."""

    stored: bool
    evicted: int
    entries: int
    bytes: int


class CacheStore(Protocol):
    url: str

    async def get(self, key: str, now: float) -> bytes | None:
        """The live value under ``key``, or None (absent or expired)."""
        ...

    async def put(self, key: str, value: bytes, expires_at: float, now: float) -> PutResult:
        """Store ``value`` until ``expires_at`` (replacing any), then evict down to the bounds."""
        ...

    async def close(self) -> None: ...


def open_cache_store(url: str, bounds: Bounds, *, prefix: str = "llmd:cache:") -> CacheStore:
    """The store for ``url``; drivers load here, on first use. ``prefix`` namespaces Redis
    keys (tests use a unique one each)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        from .memory import MemoryCacheStore

        return MemoryCacheStore(bounds)
    if scheme == "sqlite":
        from .sqlite import SQLiteCacheStore

        return SQLiteCacheStore(url, bounds)
    from .redis import RedisCacheStore

    return RedisCacheStore(url, bounds, prefix)
