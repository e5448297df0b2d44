"""What the dashboard reads from the ledger: time series, a filtered page of requests, one
request. Read-only SQL on either backend (``?`` placeholders), through ``Ledger.select``.

Every query uses an index: a series reads the window's rollups (``ledger_rollup``); a page of
requests walks ``ts`` newest first, skipping rows its filters refuse, and stops after one
page (a filter that matches few rows walks back as far as its time window allows: give one);
a request is found by ``request_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ...observability.ledger import Ledger
from ...observability.ledger_rollup import (
    SPANS,
    Entry,
    rollup_statement,
    totals_by_period,
)
from ...observability.ledger_sql import REQUESTS, ROLLUP_SUMS

# window name -> (seconds, bucket seconds): 15 to 96 points per chart; buckets are whole
# minutes (or hours) so that charts come from the rollups, whatever the traffic
WINDOWS: dict[str, tuple[int, int]] = {
    "15m": (900, 60),
    "1h": (3600, 60),
    "24h": (86400, 1800),
    "7d": (604800, 7200),
}
PAGE = 50
FILTERS = {"key": "api_key_name", "team": "team", "model": "model", "vendor": "vendor",
           "status": "status"}  # fmt: skip
LIST_COLUMNS = (
    "id", "ts", "request_id", "status", "model", "vendor", "deployment", "api_key_name", "team",
    "prompt_tokens", "completion_tokens", "cost_nano_usd", "latency_s", "ttft_s", "attempts",
    "error_type", "stream",
)  # fmt: skip
DETAIL_COLUMNS = (
    *LIST_COLUMNS, "user_id", "model_group", "fallbacks", "cached_tokens", "reasoning_tokens",
    "price_version", "finish_reason", "tool_calls", "messages", "output", "detail",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Series:
    """Per bucket (start times in epoch seconds): requests/s, error rate, latency and TTFT
    percentiles (seconds), tokens and cost (USD)."""

    times: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    error_rate: list[float | None] = field(default_factory=list)
    latency_p50: list[float | None] = field(default_factory=list)
    latency_p95: list[float | None] = field(default_factory=list)
    ttft_p50: list[float | None] = field(default_factory=list)
    ttft_p95: list[float | None] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)

    def as_json(self) -> str:
        return orjson.dumps(self).decode()


async def series(ledger: Ledger, window: str, now: float) -> Series:
    """The window's chart, from the rollups (``ledger_rollup``: sums exact, percentiles within
    1 %), the widest that fit its buckets: 24 h's 30-minute buckets add three 10-minute ones."""
    seconds, bucket = WINDOWS[window]
    first = int((now - seconds) // bucket)
    last = int(now // bucket)
    span = max(span for span in SPANS if bucket % span == 0)  # the fewest rollups
    (found,) = await ledger.select(
        [rollup_statement(span, first * bucket, (last + 1) * bucket, ("totals",))]
    )
    slots = totals_by_period(found, bucket)
    return _chart(first, last, bucket, {b: _point(e) for b, e in slots.items()})


Point = tuple[int, int, int, int, tuple[float | None, ...], tuple[float | None, ...]]


def _point(entry: Entry) -> Point:
    """Requests, errors, tokens, nano-USD, latency p50/p95, TTFT p50/p95 of one bucket."""
    s = dict(zip(ROLLUP_SUMS, entry.sums, strict=True))
    return (
        s["requests"],
        s["requests"] - s["successes"],
        s["prompt_tokens"] + s["completion_tokens"],
        s["cost_nano_usd"],
        entry.latency.percentiles(50, 95),
        entry.ttft.percentiles(50, 95),
    )


def _chart(first: int, last: int, bucket: int, points: dict[int, Point]) -> Series:
    out = Series()
    empty: Point = (0, 0, 0, 0, (None, None), (None, None))
    for b in range(first, last + 1):
        count, errors, tokens, nano, (lat50, lat95), (ttft50, ttft95) = points.get(b, empty)
        out.times.append(float(b * bucket))
        out.rps.append(count / bucket)
        out.error_rate.append(errors / count if count else None)
        out.latency_p50.append(lat50)
        out.latency_p95.append(lat95)
        out.ttft_p50.append(ttft50)
        out.ttft_p95.append(ttft95)
        out.tokens.append(tokens)
        out.cost_usd.append(float(Decimal(nano).scaleb(-9)))
    return out


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_before: str | None  # the ``before`` of the next (older) page, None at the end


def cursor(value: str | None) -> tuple[float, int] | None:
    """``before=TS:ID`` (the last row shown): rows older than it come next; rows of one
    timestamp are told apart by their id. ``ValueError`` when malformed."""
    if not value:
        return None
    ts, _, row_id = value.partition(":")
    return float(ts), int(row_id)


async def requests_page(
    ledger: Ledger,
    filters: Mapping[str, str],
    since: float | None,
    before: tuple[float, int] | None,
) -> Page:
    """Up to ``PAGE`` requests, newest first, matching every given filter."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, column in FILTERS.items():
        value = filters.get(name)
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if before is not None:
        clauses.append("(ts < ? OR (ts = ? AND id < ?))")
        params += [before[0], before[0], before[1]]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = ", ".join(LIST_COLUMNS)
    sql = f"SELECT {columns} FROM {REQUESTS}{where} ORDER BY ts DESC, id DESC LIMIT {PAGE + 1}"
    (found,) = await ledger.select([(sql, params)])
    rows = [_listed(row) for row in found[:PAGE]]
    last = rows[-1] if rows and len(found) > PAGE else None
    return Page(rows, None if last is None else f"{last['ts']!r}:{last['id']}")


async def request_detail(ledger: Ledger, request_id: str) -> dict[str, Any] | None:
    """The newest row of ``request_id`` with its ``detail`` decoded, or None."""
    sql = (
        f"SELECT {', '.join(DETAIL_COLUMNS)} FROM {REQUESTS} WHERE request_id = ? "
        "ORDER BY ts DESC LIMIT 1"
    )
    (found,) = await ledger.select([(sql, [request_id])])
    if not found:
        return None
    row = _listed(found[0], DETAIL_COLUMNS)
    row["detail"] = orjson.loads(row["detail"]) if row["detail"] else {}
    row["messages"] = orjson.loads(row["messages"]) if row["messages"] else None
    return row


def _listed(row: Sequence[Any], columns: Sequence[str] = LIST_COLUMNS) -> dict[str, Any]:
    found = dict(zip(columns, row, strict=True))
    nano = found.pop("cost_nano_usd")
    found["cost_usd"] = None if nano is None else Decimal(nano).scaleb(-9)
    return found
