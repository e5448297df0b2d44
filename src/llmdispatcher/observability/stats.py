"""In-memory statistics, fed by dispatcher events."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .events import AttemptFinished, Event, FallbackTaken, RequestFinished, RetryScheduled

# Percentiles come from the most recent samples per vendor: bounded memory, recent behaviour.
SAMPLE_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class VendorStats:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    ttft_p50_s: float | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot. Per vendor, ``requests`` counts attempts (a retried request counts twice)."""

    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    fallbacks: int = 0
    vendor_stats: dict[str, VendorStats] = field(default_factory=dict)


@dataclass(slots=True)
class _VendorCounters:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))


class StatsCollector:
    """Subscribe ``collector.on_event`` to a dispatcher; read with ``snapshot()``."""

    def __init__(self) -> None:
        self._total = self._ok = self._failed = self._retries = self._fallbacks = 0
        self._vendors: dict[str, _VendorCounters] = {}

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            counters = self._vendor(event.attempt.vendor)
            counters.requests += 1
            if event.usage is not None:  # also a hedge loser's, which was billed too
                counters.prompt_tokens += event.usage.prompt_tokens
                counters.completion_tokens += event.usage.completion_tokens
            if event.attempt.status == "ok":
                counters.successes += 1
                counters.latencies.append(event.attempt.duration_s)
                if event.ttft_s is not None:
                    counters.ttfts.append(event.ttft_s)
            else:
                counters.failures += 1
        elif isinstance(event, RetryScheduled):
            self._retries += 1
        elif isinstance(event, FallbackTaken):
            self._fallbacks += 1
        elif isinstance(event, RequestFinished):
            self._total += 1
            if event.error is None:
                self._ok += 1
            else:
                self._failed += 1

    def _vendor(self, name: str) -> _VendorCounters:
        counters = self._vendors.get(name)
        if counters is None:
            counters = self._vendors[name] = _VendorCounters()
        return counters

    def snapshot(self) -> Stats:
        return Stats(
            total_requests=self._total,
            successful_requests=self._ok,
            failed_requests=self._failed,
            retries=self._retries,
            fallbacks=self._fallbacks,
            vendor_stats={name: _freeze(c) for name, c in self._vendors.items()},
        )


def _freeze(c: _VendorCounters) -> VendorStats:
    latencies = sorted(c.latencies)
    ttfts = sorted(c.ttfts)
    return VendorStats(
        requests=c.requests,
        successes=c.successes,
        failures=c.failures,
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_p99_s=percentile(latencies, 99),
        ttft_p50_s=percentile(ttfts, 50),
    )


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]
