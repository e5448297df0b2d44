"""The files through which the gateway's workers share their statistics: written whole and only
when changed, this worker's own skipped (its live export counts instead), broken ones skipped
with a warning rather than failing ``/api/v1/stats``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from llmdispatcher.gateway.worker_stats import WorkerStats
from llmdispatcher.observability.events import RequestFinished
from llmdispatcher.observability.stats import StatsCollector
from llmdispatcher.types import Request

REQUEST = Request(model="m", messages=[{"role": "user", "content": "hi"}])


def served(collector: StatsCollector, n: int) -> StatsCollector:
    for i in range(n):
        collector.on_event(
            RequestFinished(f"r{i}", REQUEST, "v", "m", False, 0.1, None, None, None, ())
        )
    return collector


def test_publish_writes_this_workers_file_only_when_it_changed(tmp_path: Path) -> None:
    shared = WorkerStats(tmp_path, served(StatsCollector(), 2))
    shared.publish()
    assert [p.name for p in tmp_path.iterdir()] == [f"{os.getpid()}.json"]
    assert json.loads(shared.path.read_text())["total_requests"] == 2
    shared.path.unlink()
    shared.publish()  # nothing new
    assert not shared.path.exists()
    served(shared.collector, 1)
    shared.publish()
    assert json.loads(shared.path.read_text())["total_requests"] == 3


async def test_merged_counts_this_worker_live_and_skips_broken_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = WorkerStats(tmp_path, served(StatsCollector(), 2))
    shared.publish()
    served(shared.collector, 1)  # not yet published: the live export counts, not the file
    (tmp_path / "1.json").write_bytes(json.dumps(served(StatsCollector(), 5).export()).encode())
    (tmp_path / "2.json").write_text('{"total_requests": 4, "succ')
    (tmp_path / "3.json.tmp").write_text("{")  # a worker's write in progress
    with caplog.at_level(logging.WARNING, "llmdispatcher.gateway"):
        stats, workers = await shared.merged()
    assert (stats.total_requests, workers) == (8, 2)
    assert "skipping worker statistics 2.json" in caplog.text


async def test_stop_publishes_what_is_left(tmp_path: Path) -> None:
    shared = WorkerStats(tmp_path, StatsCollector())
    shared.start(interval_s=3600)
    await asyncio.sleep(0)
    served(shared.collector, 4)
    await shared.stop()
    assert json.loads(shared.path.read_text())["total_requests"] == 4
