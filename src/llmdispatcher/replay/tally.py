"""What one side of a replay adds up to: cost, latency, errors, refusals, fallbacks, hedges,
rule coverage and the traffic split, overall and over time. Filled either from the recorded
rows (what happened) or from a simulated run's ``RequestFinished`` events (what would have)."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..observability.events import RequestFinished
from ..observability.ledger import nano_usd
from ..observability.ledger_detail import rule_name

LIMIT_ERRORS = frozenset({"LocalRateLimited", "StateUnavailable", "StateBusy"})
BUDGET_ERRORS = frozenset({"BudgetExceeded"})
SERIES_POINTS = 48  # buckets of the charts over the replayed span


@dataclass
class Point:
    cost_nano: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class Tally:
    start: float  # wall time of the span's start, and its length: the charts' buckets
    span_s: float
    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # "limit key:name", "budget team:x"
    cost_nano: int = 0
    cost_by_group: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    ttfts: array[float] = field(default_factory=lambda: array("d"))
    fallbacks: int = 0
    hedged: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    vendors: Counter[str] = field(default_factory=Counter)
    series: dict[int, Point] = field(default_factory=dict)
    _width: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._width = max(self.span_s, 1.0) / SERIES_POINTS  # of a chart's bucket

    def add(self, at: float, who: tuple[str | None, str | None], outcome: Outcome) -> None:
        """One request that started at wall time ``at`` from key and team ``who``."""
        self.requests += 1
        bucket = min(SERIES_POINTS - 1, max(0, int((at - self.start) // self._width)))
        point = self.series.get(bucket)
        if point is None:
            point = self.series[bucket] = Point()
        error = outcome.error
        if error is None:
            self.ok += 1
            self.latencies.append(outcome.latency_s)
            point.latencies.append(outcome.latency_s)
            if outcome.ttft_s is not None:
                self.ttfts.append(outcome.ttft_s)
        else:
            self._failed(error, who)
        cost = outcome.cost_nano or 0
        self.cost_nano += cost
        point.cost_nano += cost
        self.cost_by_group[outcome.group] += cost
        if outcome.fallbacks > 0:
            self.fallbacks += 1
        if outcome.hedged:
            self.hedged += 1
        self.rules[outcome.rule or "(no rule)"] += 1
        if outcome.vendor is not None:
            self.vendors[outcome.vendor] += 1

    def _failed(self, error: str, who: tuple[str | None, str | None]) -> None:
        self.errors[error] += 1
        kind = "limit" if error in LIMIT_ERRORS else None
        kind = "budget" if error in BUDGET_ERRORS else kind
        if kind is not None:
            key, team = who
            self.refused[f"{kind} key:{key or '-'}"] += 1
            if team:
                self.refused[f"{kind} team:{team}"] += 1


class Outcome(NamedTuple):
    """How one request ended (a tuple: one is built per request per side)."""

    error: str | None
    latency_s: float
    ttft_s: float | None
    cost_nano: int | None
    group: str
    vendor: str | None
    fallbacks: int
    hedged: bool
    rule: str | None


def outcome_of(event: RequestFinished) -> Outcome:
    decision = event.routing
    return Outcome(
        event.error, event.latency_s, event.ttft_s, nano_usd(event.cost_usd),
        event.group or event.request.model, event.vendor, event.fallbacks,
        any(a.status == "cancelled" for a in event.attempts),
        rule_name(decision.rule) if decision is not None else None,
    )  # fmt: skip


def percentile(values: array[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank); None for no values."""
    return percentiles(values, (q,))[0]


def percentiles(values: array[float], qs: tuple[float, ...]) -> list[float | None]:
    """``percentile`` of each of ``qs``, sorting once (a million values take a while)."""
    if not values:
        return [None] * len(qs)
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[min(last, max(0, round(q * len(ordered)) - 1))] for q in qs]


def _quantiles(values: array[float]) -> dict[str, float | None]:
    qs = (50, 95, 99)
    return dict(zip((f"p{q}" for q in qs), percentiles(values, tuple(q / 100 for q in qs)),
                    strict=True))  # fmt: skip


def summary(tally: Tally, configured_rules: list[str] | None = None) -> dict[str, Any]:
    """The tally as plain data (the JSON report, and what the table and HTML show)."""
    unmatched = [r for r in configured_rules or [] if r not in tally.rules]
    return {
        "requests": tally.requests,
        "ok": tally.ok,
        "error_rate": (tally.requests - tally.ok) / tally.requests if tally.requests else 0.0,
        "errors": dict(tally.errors.most_common()),
        "refused": dict(sorted(tally.refused.items())),
        "cost_usd": tally.cost_nano / 1e9,
        "cost_nano_usd": tally.cost_nano,
        "cost_by_group_usd": {g: c / 1e9 for g, c in tally.cost_by_group.most_common()},
        "latency_s": _quantiles(tally.latencies),
        "ttft_s": _quantiles(tally.ttfts),
        "fallback_rate": tally.fallbacks / tally.requests if tally.requests else 0.0,
        "hedge_rate": tally.hedged / tally.requests if tally.requests else 0.0,
        "rules": dict(tally.rules.most_common()),
        "rules_never_matched": unmatched,
        "vendors": dict(tally.vendors.most_common()),
        "series": [
            {
                "bucket": b,
                "cost_usd": p.cost_nano / 1e9,
                "latency_p95_s": percentile(p.latencies, 0.95),
            }
            for b, p in sorted(tally.series.items())
        ],
    }
