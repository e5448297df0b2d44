"""A retry budget per vendor, so an outage does not become a retry storm.

Over a sliding window of ``window_s`` seconds a vendor may be retried at most
``ratio * requests + min_per_second * window_s`` times: retries stay a bounded share of real
traffic (default 20 %), and the floor lets a quiet dispatcher still retry as its retry policy
says. A retry refused by the budget moves the request on to its next candidate instead.
"""

from __future__ import annotations

from ..clock import Clock
from ..settings.resilience import RetryBudget
from .window import WindowCounter


class RetryBudgets:
    def __init__(self, settings: RetryBudget, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._requests: dict[str, WindowCounter] = {}
        self._retries: dict[str, WindowCounter] = {}

    def _window(self, table: dict[str, WindowCounter], vendor: str) -> WindowCounter:
        counter = table.get(vendor)
        if counter is None:  # not setdefault: that would build a counter on every call
            counter = table[vendor] = WindowCounter(self.settings.window_s, self._clock)
        return counter

    def record_request(self, vendor: str) -> None:
        self._window(self._requests, vendor).add()

    def try_spend(self, vendor: str) -> bool:
        """Spend one retry if the budget allows it."""
        requests = self._window(self._requests, vendor).count()
        retries = self._window(self._retries, vendor)
        allowed = (
            self.settings.ratio * requests + self.settings.min_per_second * self.settings.window_s
        )
        if retries.count() + 1 > allowed:
            return False
        retries.add()
        return True
