"""Injectable time: everything that waits, expires or measures asks a ``Clock``.

``SystemClock`` is the real one. ``FakeClock`` makes ``sleep`` return at once while moving time
forward, so tests of backoff, deadlines and windows run instantly and deterministically.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds, for durations and deadlines."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for HTTP dates and calendar windows."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock for tests: ``sleep`` advances time instead of waiting and records each delay."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)  # still yield, as a real sleep would
