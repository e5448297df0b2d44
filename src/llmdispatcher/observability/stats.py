"""In-memory statistics, fed by dispatcher events.

Several processes (the gateway's workers) combine theirs through ``StatsCollector.export()``
and ``merge_exports``: an export carries the counters and the raw latency samples, because a
percentile of percentiles is not a percentile; the merge sums the counters and takes the
percentiles over the union of the samples.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

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
    # Requests answered by the response cache, and the tokens and USD they did not spend.
    cache_hits: int = 0
    tokens_saved: int = 0
    cost_saved_usd: float = 0.0


@dataclass(slots=True)
class _VendorCounters:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))


class VendorExport(TypedDict):
    """One vendor in a ``StatsExport``: its counters and its raw samples, in seconds."""

    requests: int
    successes: int
    failures: int
    prompt_tokens: int
    completion_tokens: int
    latencies: list[float]
    ttfts: list[float]


class StatsExport(TypedDict):
    """A collector's state as plain JSON: ``StatsCollector.export()``, ``merge_exports``."""

    total_requests: int
    successful_requests: int
    failed_requests: int
    retries: int
    fallbacks: int
    vendors: dict[str, VendorExport]
    cache_hits: NotRequired[int]  # absent in an older worker's export
    tokens_saved: NotRequired[int]
    cost_saved_usd: NotRequired[float]


_TOTALS = ("total_requests", "successful_requests", "failed_requests", "retries", "fallbacks")
_VENDOR_TOTALS = ("requests", "successes", "failures", "prompt_tokens", "completion_tokens")


class StatsCollector:
    """Subscribe ``collector.on_event`` to a dispatcher; read with ``snapshot()``.

    ``changes`` counts the events that changed the statistics, so that a publisher can tell
    whether there is anything new to write without comparing exports."""

    def __init__(self) -> None:
        self._total = self._ok = self._failed = self._retries = self._fallbacks = 0
        self._vendors: dict[str, _VendorCounters] = {}
        self._hits = self._tokens_saved = 0
        self._cost_saved = 0.0
        self.changes = 0

    def on_event(self, event: Event) -> None:
        self.changes += 1
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
            elif event.attempt.status != "cancelled":  # a hedge loser or a caller that left
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
            if event.cache == "hit":
                self._hits += 1
                saved = event.saved_usage
                self._tokens_saved += saved.total_tokens if saved else 0
                self._cost_saved += event.saved_cost_usd or 0.0

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
            cache_hits=self._hits,
            tokens_saved=self._tokens_saved,
            cost_saved_usd=self._cost_saved,
        )

    def export(self) -> StatsExport:
        """The counters and, per vendor, the raw samples behind the percentiles (JSON-able)."""
        return {
            "total_requests": self._total,
            "successful_requests": self._ok,
            "failed_requests": self._failed,
            "retries": self._retries,
            "fallbacks": self._fallbacks,
            "vendors": {
                name: {
                    "requests": c.requests,
                    "successes": c.successes,
                    "failures": c.failures,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "latencies": list(c.latencies),
                    "ttfts": list(c.ttfts),
                }
                for name, c in self._vendors.items()
            },
            "cache_hits": self._hits,
            "tokens_saved": self._tokens_saved,
            "cost_saved_usd": self._cost_saved,
        }


def merge_exports(exports: Iterable[StatsExport]) -> Stats:
    """One ``Stats`` for several processes: counters summed, percentiles over all the samples
    (each process's window, so up to ``SAMPLE_WINDOW`` samples per vendor per process)."""
    merged = StatsCollector()
    for export in exports:
        merged._total += export["total_requests"]
        merged._ok += export["successful_requests"]
        merged._failed += export["failed_requests"]
        merged._retries += export["retries"]
        merged._fallbacks += export["fallbacks"]
        merged._hits += export.get("cache_hits", 0)
        merged._tokens_saved += export.get("tokens_saved", 0)
        merged._cost_saved += export.get("cost_saved_usd", 0.0)
        for name, found in export["vendors"].items():
            counters = merged._vendors.setdefault(
                name, _VendorCounters(latencies=deque(), ttfts=deque())
            )
            counters.requests += found["requests"]
            counters.successes += found["successes"]
            counters.failures += found["failures"]
            counters.prompt_tokens += found["prompt_tokens"]
            counters.completion_tokens += found["completion_tokens"]
            counters.latencies.extend(found["latencies"])
            counters.ttfts.extend(found["ttfts"])
    return merged.snapshot()


def check_export(data: Any) -> StatsExport:
    """``data`` (read from elsewhere) if it has the shape of an export; else ValueError."""
    _check_fields(data, _TOTALS, "export")
    if not isinstance(data["vendors"], dict):
        raise ValueError("export: vendors is not an object")
    for vendor, found in data["vendors"].items():
        _check_fields(found, _VENDOR_TOTALS, f"vendor {vendor!r}")
        for samples in ("latencies", "ttfts"):
            values = found.get(samples)
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise ValueError(f"vendor {vendor!r}: {samples} is not a list of numbers")
    result: StatsExport = data
    return result


def _check_fields(data: Any, names: Iterable[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: not an object")
    for name in names:
        if not isinstance(data.get(name), int) or isinstance(data[name], bool):
            raise ValueError(f"{where}: {name} is not an integer")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
