"""A count of events over a sliding time window, in constant memory.

Breakers (error rate) and retry budgets (requests and retries) ask "how many in the last
``window_s`` seconds?" for every request. Keeping one timestamp per event made their memory grow
with traffic (at 4,000 requests/s, 240,000 entries for a 60 s window); this keeps ``buckets``
counts instead. The answer covers the last ``window_s`` seconds to within one bucket
(``window_s / buckets``): an event leaves the count between ``window_s - width`` and
``window_s`` after it happened.
"""

from __future__ import annotations

from collections import deque

from ..clock import Clock

BUCKETS = 60


class WindowCounter:
    """How many events (or how much of an amount) in the last ``window_s`` seconds."""

    __slots__ = ("_buckets", "_clock", "_slots", "_total", "_width")

    def __init__(self, window_s: float, clock: Clock, buckets: int = BUCKETS) -> None:
        self._width = window_s / buckets
        self._buckets = buckets
        self._clock = clock
        self._slots: deque[list[int]] = deque()  # [bucket index, count], oldest first
        self._total = 0

    def _now(self) -> int:
        index = int(self._clock.now() // self._width)
        slots = self._slots
        while slots and slots[0][0] <= index - self._buckets:
            self._total -= slots.popleft()[1]
        return index

    def add(self, amount: int = 1) -> None:
        index = self._now()
        slots = self._slots
        if slots and slots[-1][0] == index:
            slots[-1][1] += amount
        else:
            slots.append([index, amount])
        self._total += amount

    def count(self) -> int:
        self._now()
        return self._total
