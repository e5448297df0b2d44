"""An asyncio event loop whose clock is virtual: when nothing is ready to run, time jumps to the
next timer instead of waiting for it.

Everything built on the loop's clock then runs in simulated time unchanged: ``asyncio.sleep``,
``asyncio.timeout`` (the dispatcher's deadlines), and a ``LoopClock`` handed to the dispatcher
(backoff, breaker cooldowns, rate-limit windows, hedge delays). A week of traffic replays in the
CPU time its requests cost, and the same inputs give the same run.

The loop does no I/O: a replay only talks to simulated vendors. If every task waits on
something other than a timer, nothing could ever wake them, and the loop says so
(``ReplayStalled``) instead of blocking.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

from ..errors import DispatcherError

# The simulated epoch starts here: far from 0, as a real monotonic clock is.
START = 1_000.0


class ReplayStalled(DispatcherError):
    """Every task waits, and no timer is due: a simulated vendor or the replay itself hung."""


class _Instant(selectors.BaseSelector):
    """A selector that never waits: asked to wait ``timeout`` seconds, it moves the loop's
    clock on by that much and reports what is ready now.

    The loop registers its own wake-up pipe, which says only "a callback was queued from
    another thread"; the callback is in the ready queue already, and a loop that never blocks
    needs no waking. So while the pipe is all that is registered, the selector asks the
    kernel nothing: a poll per loop step was the largest single cost of the loop (a replay
    takes several steps per request). Anything registered besides it is polled as usual."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.now = START

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer and nothing ready: a real loop would wait on I/O
            raise ReplayStalled(
                "the replay stalled: every task waits and no timer is due (a simulated vendor "
                "or request waits on something that never comes)"
            )
        if timeout > 0:
            self.now += timeout
        if len(self._real.get_map()) <= 1:  # the loop's own pipe, registered for its life
            return []
        return self._real.select(0)

    def get_map(self) -> Any:
        return self._real.get_map()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._instant = _Instant()
        super().__init__(self._instant)

    def time(self) -> float:
        return self._instant.now


class LoopClock:
    """The ``Clock`` of a dispatcher running on a ``VirtualTimeLoop``: its time is the loop's,
    and ``wall`` maps it onto the recorded traffic's calendar (``wall_at_start``)."""

    def __init__(self, wall_at_start: float) -> None:
        self._wall_offset = wall_at_start - START

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return self.now() + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
