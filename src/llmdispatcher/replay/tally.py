"""What one side of a replay adds up to: cost, latency, errors, refusals, fallbacks, hedges,
rule coverage and the traffic split, overall and over time. Filled either from the recorded
rows (what happened) or from a simulated run's ``RequestFinished`` events (what would have)."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..observability.events import RequestFinished
from ..observability.ledger import nano_usd

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

    def add(self, at: float, who: tuple[str | None, str | None], outcome: Outcome) -> None:
        """One request that started at wall time ``at`` from key and team ``who``."""
        self.requests += 1
        point = self.series.setdefault(self._bucket(at), Point())
        if outcome.error is None:
            self.ok += 1
            self.latencies.append(outcome.latency_s)
            point.latencies.append(outcome.latency_s)
            if outcome.ttft_s is not None:
                self.ttfts.append(outcome.ttft_s)
        else:
            self.errors[outcome.error] += 1
            kind = "limit" if outcome.error in LIMIT_ERRORS else None
            kind = "budget" if outcome.error in BUDGET_ERRORS else kind
            if kind is not None:
                key, team = who
                self.refused[f"{kind} key:{key or '-'}"] += 1
                if team:
                    self.refused[f"{kind} team:{team}"] += 1
        cost = outcome.cost_nano or 0
        self.cost_nano += cost
        point.cost_nano += cost
        self.cost_by_group[outcome.group] += cost
        self.fallbacks += outcome.fallbacks > 0
        self.hedged += outcome.hedged
        self.rules[outcome.rule or "(no rule)"] += 1
        if outcome.vendor is not None:
            self.vendors[outcome.vendor] += 1

    def _bucket(self, at: float) -> int:
        width = max(self.span_s, 1.0) / SERIES_POINTS
        return min(SERIES_POINTS - 1, max(0, int((at - self.start) // width)))


@dataclass(frozen=True, slots=True)
class Outcome:
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
    from ..observability.ledger_detail import rule_name

    decision = event.routing
    return Outcome(
        error=event.error,
        latency_s=event.latency_s,
        ttft_s=event.ttft_s,
        cost_nano=nano_usd(event.cost_usd),
        group=event.group or event.request.model,
        vendor=event.vendor,
        fallbacks=event.fallbacks,
        hedged=any(a.status == "cancelled" for a in event.attempts),
        rule=rule_name(decision.rule) if decision is not None else None,
    )


def percentile(values: array[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


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
        "latency_s": {f"p{q}": percentile(tally.latencies, q / 100) for q in (50, 95, 99)},
        "ttft_s": {f"p{q}": percentile(tally.ttfts, q / 100) for q in (50, 95, 99)},
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
