"""The Overview's ledger numbers, reused while they are fresh enough.

The statistics and chart of a long window come from the ledger's rollups (``ledger_rollup``),
a few ms even on a 1M-row ledger (``bench/ui_pages.py``), but every open dashboard asks again.
So each window's numbers are kept for ten times as long as they took to compute, at most one
chart bucket, and one computation is shared by every request that waits for it. They are
recomputed at once when this gateway has finished a request since (``version``): what a user
just sent always shows; other replicas' requests show within that time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ...observability.ledger import Ledger
from ...observability.ledger_sql import LedgerStats
from .ledger_views import WINDOWS, Series, series


@dataclass(frozen=True, slots=True)
class Overview:
    totals: LedgerStats
    series: Series
    computed_at: float  # epoch seconds


class OverviewCache:
    def __init__(self) -> None:
        self._kept: dict[str, tuple[int, float, Overview]] = {}  # window -> version, until, ...
        self._running: dict[tuple[str, int], asyncio.Task[Overview]] = {}

    async def get(self, ledger: Ledger, window: str, version: int) -> Overview:
        kept = self._kept.get(window)
        if kept is not None and kept[0] == version and time.monotonic() < kept[1]:
            return kept[2]
        key = (window, version)
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._compute(ledger, window, version))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(task)  # a reader that leaves does not cancel the others'

    async def _compute(self, ledger: Ledger, window: str, version: int) -> Overview:
        started, now = time.monotonic(), time.time()
        totals = await ledger.stats(now - WINDOWS[window][0])
        found = Overview(totals, await series(ledger, window, now), now)
        took = time.monotonic() - started
        self._kept[window] = (version, time.monotonic() + min(10 * took, WINDOWS[window][1]), found)
        return found
