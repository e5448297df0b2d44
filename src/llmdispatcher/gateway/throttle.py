"""Token buckets by name, for the gateway's own throttles (wrong API keys per client address,
live vendor checks per key).

Each name's bucket holds up to ``capacity`` tokens and refills at ``capacity`` per
``period_s``: a burst of ``capacity``, then one every ``period_s / capacity`` seconds. The map
is bounded: past ``max_names`` buckets the least recently used is dropped (it starts full when
it comes back), so a client inventing names (addresses) cannot grow it.
"""

from __future__ import annotations

from collections import OrderedDict

from ..clock import Clock

MAX_NAMES = 10_000


class Throttle:
    def __init__(
        self, capacity: int, period_s: float, clock: Clock, max_names: int = MAX_NAMES
    ) -> None:
        self.capacity = capacity
        self._rate = capacity / period_s  # tokens per second
        self._clock = clock
        self._max = max_names
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, name: str) -> float:
        found = self._buckets.get(name)
        if found is None:
            return float(self.capacity)
        tokens, at = found
        return min(float(self.capacity), tokens + (self._clock.now() - at) * self._rate)

    def wait_s(self, name: str) -> float:
        """0 when ``name`` has a token now, else the seconds until it will (nothing taken)."""
        tokens = self._tokens(name)
        return 0.0 if tokens >= 1 else (1 - tokens) / self._rate

    def take(self, name: str) -> float:
        """Take a token: 0 when there was one, else the seconds until there will be."""
        wait = self.wait_s(name)
        if wait == 0.0:
            self._buckets[name] = (self._tokens(name) - 1, self._clock.now())
            self._buckets.move_to_end(name)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait
