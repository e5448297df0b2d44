"""Statistics of several processes combine as if one process had seen every event: counters
summed, percentiles over the union of the raw samples (not an average of percentiles)."""

from __future__ import annotations

import json
import random
import re

import pytest

from llmdispatcher.observability.events import (
    AttemptFinished,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)
from llmdispatcher.observability.stats import StatsCollector, check_export, merge_exports
from llmdispatcher.types import Attempt, Request, Usage

REQUEST = Request(model="m", messages=[{"role": "user", "content": "hi"}])


def events(seed: int, slow: float) -> list[Event]:
    """A reproducible stream: attempts on two vendors (some failing, some with a ttft), retries,
    fallbacks and finished requests; latencies scaled by ``slow``."""
    rng = random.Random(seed)
    found: list[Event] = []
    for i in range(200):
        vendor = rng.choice(["openai", "anthropic"])
        ok = rng.random() < 0.8
        attempt = Attempt(
            vendor, "m", "ok" if ok else "VendorServerError", None, rng.random() * slow
        )
        ttft = rng.random() * slow / 2 if ok and rng.random() < 0.5 else None
        usage = Usage(rng.randrange(100), rng.randrange(50)) if ok else None
        found.append(AttemptFinished(f"r{i}", attempt, ttft, usage))
        if not ok:
            found.append(RetryScheduled(f"r{i}", vendor, 0.1, "server"))
        if rng.random() < 0.1:
            found.append(FallbackTaken(f"r{i}", vendor, "backup", "server"))
        error = None if ok else "VendorServerError"
        found.append(
            RequestFinished(f"r{i}", REQUEST, vendor, "m", False, 1.0, ttft, usage, error, ())
        )
    return found


def fed(*streams: list[Event]) -> StatsCollector:
    collector = StatsCollector()
    for stream in streams:
        for event in stream:
            collector.on_event(event)
    return collector


def test_merged_exports_equal_one_collector_fed_every_stream() -> None:
    fast, slow = events(1, slow=1.0), events(2, slow=10.0)
    # through JSON, as between worker processes
    exports = [check_export(json.loads(json.dumps(fed(s).export()))) for s in (fast, slow)]
    merged = merge_exports(exports)
    assert merged == fed(fast, slow).snapshot()
    assert merged.total_requests == 400
    # percentiles of the union: neither process's own
    p50s = [fed(s).snapshot().vendor_stats["openai"].latency_p50_s for s in (fast, slow)]
    assert merged.vendor_stats["openai"].latency_p50_s not in (*p50s, None)


def test_one_export_merges_to_its_own_snapshot_and_none_to_empty() -> None:
    collector = fed(events(3, slow=1.0))
    assert merge_exports([collector.export()]) == collector.snapshot()
    assert merge_exports([]) == StatsCollector().snapshot()


def test_changes_count_the_events() -> None:
    stream = events(4, slow=1.0)
    assert fed(stream).changes == len(stream)


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        ([], "export: not an object"),
        ({"total_requests": 1}, "successful_requests is not an integer"),
        ({**StatsCollector().export(), "retries": True}, "retries is not an integer"),
        ({**StatsCollector().export(), "vendors": []}, "vendors is not an object"),
        (
            {**fed(events(5, slow=1.0)).export(), "vendors": {"v": {"requests": 1}}},
            "vendor 'v': successes is not an integer",
        ),
    ],
)
def test_a_malformed_export_is_refused(broken: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        check_export(broken)


def test_samples_that_are_not_numbers_are_refused() -> None:
    export = fed(events(6, slow=1.0)).export()
    export["vendors"]["openai"]["ttfts"] = ["fast"]  # type: ignore[list-item]
    with pytest.raises(ValueError, match="ttfts"):
        check_export(export)
