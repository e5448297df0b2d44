"""Statistics shared by the gateway's workers, through files in the supervisor's run directory.

Each worker writes its ``StatsCollector.export()`` to ``<directory>/<pid>.json`` about once per
``PUBLISH_INTERVAL_S`` while it changes, and once more when it stops (a temporary file, then
``os.replace``: a reader never sees half a file). ``/api/v1/stats`` on any worker merges its own
live export with every other worker's file, so the other workers' figures lag by up to about a
second. A worker that died keeps its file (what it served was served); a restarted worker has a
new pid, so a file of its own. A file that cannot be read is skipped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
from aiohttp import web

from ..observability.stats import Stats, StatsCollector, StatsExport, check_export, merge_exports

logger = logging.getLogger("llmdispatcher.gateway")
PUBLISH_INTERVAL_S = 1.0


class WorkerStats:
    """This worker's statistics published to ``directory``, and everyone's merged."""

    def __init__(self, directory: str | Path, collector: StatsCollector) -> None:
        self.directory = Path(directory)
        self.collector = collector
        self.path = self.directory / f"{os.getpid()}.json"
        self._published = -1  # the collector's ``changes`` when last written
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        """Write this worker's export, if anything changed since the last write."""
        changes = self.collector.changes
        if changes == self._published:
            return
        temporary = self.path.with_suffix(".json.tmp")  # not *.json: readers skip it
        try:
            temporary.write_bytes(orjson.dumps(self.collector.export()))
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("could not publish this worker's statistics: %s", exc)
            return
        self._published = changes

    def start(self, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        """Publish every ``interval_s`` in the background, until ``stop()``."""
        self._task = asyncio.create_task(self._publish_every(interval_s))

    async def stop(self) -> None:
        """Stop publishing in the background, and publish what is left (call it once the
        in-flight requests are done, so that nothing served goes unreported)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.publish()

    async def _publish_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.publish()

    async def merged(self) -> tuple[Stats, int]:
        """Every worker's statistics (this one's live) and how many workers they cover. Reading
        and merging (tens of ms with full sample windows) run in a thread, off the event loop."""
        own = self.collector.export()  # here: the collector changes only on this loop
        return await asyncio.to_thread(self._merge, own)

    def _merge(self, own: StatsExport) -> tuple[Stats, int]:
        exports = [own, *self._others()]
        return merge_exports(exports), len(exports)

    def _others(self) -> Iterator[StatsExport]:
        for path in sorted(self.directory.glob("*.json")):
            if path == self.path:
                continue
            try:
                yield check_export(orjson.loads(path.read_bytes()))
            except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
                logger.warning("skipping worker statistics %s: %s", path.name, exc)


WORKER_STATS = web.AppKey("worker_stats", WorkerStats)
