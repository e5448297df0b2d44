"""``memory://``: entries in this process, least recently used evicted first."""

from __future__ import annotations

from collections import OrderedDict

from .store import Bounds, PutResult


class MemoryCacheStore:
    url = "memory://"

    def __init__(self, bounds: Bounds) -> None:
        self._bounds = bounds
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str, now: float) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[0]

    async def put(self, key: str, value: bytes, expires_at: float, now: float) -> PutResult:
        if key in self._entries:
            self._drop(key)
        stored = len(value) <= self._bounds.max_bytes
        if stored:
            self._entries[key] = (value, expires_at)
            self._bytes += len(value)
        evicted = 0
        while len(self._entries) > self._bounds.max_entries or self._bytes > self._bounds.max_bytes:
            self._drop(next(iter(self._entries)))
            evicted += 1
        return PutResult(stored, evicted, len(self._entries), self._bytes)

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
