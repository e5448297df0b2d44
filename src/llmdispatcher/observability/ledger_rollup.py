"""Rollups: the ledger's statistics pre-aggregated per period, so that a long window reads a
couple of thousand rollup rows instead of sorting every request row in it.

Table ``ledger_rollups`` (migration ``008_rollups``), one row per (span, dimension, period,
group): ``span_s`` is one of ``SPANS`` (1 min, 10 min, 1 h, 6 h, 1 day, 1 week; each
divides the next); ``dimension`` a ``GROUPINGS`` name (``totals``, ``by_vendor``, ``by_model``,
``by_user``, ``by_key``, ``by_team``) and ``group_key`` that group's value (``=`` before it;
the empty string for a missing one). Each holds the exact sums the statistics report
(``ROLLUP_SUMS``) and two ``Sketch`` es: latency of the successful requests, TTFT of every
request that measured one. One row per dimension, not per combination of them: the
statistics group by one column at a time, and key x model x vendor x team x user per minute
has about as many rows as the ledger itself.

Written by the store in the transaction that inserts the rows (``RollupWrite``), so rows and
rollups never disagree: the batch's rows are summed per period of every span, the rollup rows
they touch are read, merged and written back, with writers serialised (SQLite's write lock,
a PostgreSQL advisory lock). Migration 008 fills the table from the rows already there.

A window ``ts >= since`` (``window_statements``) is: the request rows of its first partial
minute (ts-indexed, rolled up on the spot by the same code), then for each span the periods
from the first boundary of that span up to the first boundary of the next (at most 9 minutes,
5 ten-minutes, 5 hours, 3 quarter-days and 6 days), then every week from there on (the
current periods included: they are as current as the rows). Sums are then exact; percentiles
come from the merged sketches (within 1 %, see ``ledger_sketch``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from operator import add, itemgetter
from typing import Any

from .ledger_sketch import Sketch, position, unpack
from .ledger_sql import (
    COLUMNS,
    GROUPINGS,
    REQUESTS,
    ROLLUP_SUMS,
    ROLLUPS,
    GroupStats,
    LedgerStats,
    Row,
    Statement,
    group_stats,
    stats_of,
)

MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 604800
# Each span divides the next, so a window reads at most (next / span - 1) periods of each span
# below its widest: 9 minutes, 5 ten-minutes, 5 hours, 3 quarter-days, 6 days, then weeks
# (of the epoch: Thursday to Thursday, UTC).
SPANS = (MINUTE, 600, HOUR, 21600, DAY, WEEK)
# What a request row contributes, read from ledger_requests (the edge of a window, migration 008).
SOURCE: tuple[str, ...] = (
    "ts", "status", "attempts", "fallbacks", "prompt_tokens", "completion_tokens",
    "cached_tokens", "reasoning_tokens", "cost_nano_usd", "cache", "saved_tokens",
    "saved_cost_nano_usd", "latency_s", "ttft_s", *(c for _, c in GROUPINGS if c),
)  # fmt: skip
FROM_ROW = itemgetter(*(COLUMNS.index(c) for c in SOURCE))  # a COLUMNS row -> a SOURCE row
DIMENSIONS = tuple(name for name, _ in GROUPINGS)
KEY_COLUMNS = ("span_s", "dimension", "period_start", "group_key")
VALUE_COLUMNS = (*ROLLUP_SUMS, "latency", "ttft")
LOOKUP_CHUNK = 500  # keys per lookup statement (4 parameters each, far below any limit)

Key = tuple[int, str, int, str]  # span_s, dimension, period_start, group_key


@dataclass(slots=True)
class Entry:
    """One group's sums (``ROLLUP_SUMS`` order) and sketches over some rows."""

    sums: list[int] = field(default_factory=lambda: [0] * len(ROLLUP_SUMS))
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch = field(default_factory=Sketch)

    def merge(self, other: Entry) -> None:
        self.sums = list(map(add, self.sums, other.sums))
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)

    def values(self, span: int) -> Row:
        """As stored (``VALUE_COLUMNS``). Sketches of an hour and wider dense (a window reads
        up to 23 hours and every day of it; dense is the fastest to read back and their
        histograms are full anyway), narrower ones compressed (minutes are most of the table
        and hold a few values each)."""
        compress = span < HOUR
        return (*self.sums, self.latency.encode(compress), self.ttft.encode(compress))

    @classmethod
    def stored(cls, values: Sequence[Any]) -> Entry:
        """From ``VALUE_COLUMNS`` as read back."""
        *sums, latency, ttft = values
        return cls(
            [int(v) for v in sums], Sketch.decode(_text(latency)), Sketch.decode(_text(ttft))
        )

    def group(self) -> GroupStats:
        p50, p95, p99 = self.latency.percentiles(50, 95, 99)
        return group_stats(tuple(self.sums), (p50, p95, p99), self.ttft.percentiles(50)[0])


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def group_key(value: object) -> str:
    return "" if value is None else f"={value}"


def group_value(key: str) -> str | None:
    return key[1:] if key else None


def by_group(rows: Iterable[Row]) -> dict[tuple[str, str], Entry]:
    """``SOURCE`` rows summed per (dimension, group_key). Each row's sums and buckets are
    worked out once and listed under its six groups; the lists are then summed (``sum``,
    ``Counter``: loops in C), which keeps a backfill of a million rows to about a minute."""
    listed: dict[tuple[str, str], tuple[list[Row], list[int], list[int]]] = {}
    for row in rows:
        ok = row[1] == "ok"
        attempts, fallbacks = row[2] or 0, row[3] or 0
        sums = (
            1, int(ok), attempts, max(attempts - fallbacks - 1, 0), fallbacks, row[4] or 0,
            row[5] or 0, row[6] or 0, row[7] or 0, row[8] or 0, int(row[9] == "hit"),
            row[10] or 0, row[11] or 0,
        )  # fmt: skip
        timed = ok and row[12] is not None
        latency = position(row[12]) if timed else 0
        ttft = position(row[13]) if row[13] is not None else 0
        for dimension, value in zip(DIMENSIONS, ("", *row[14:]), strict=True):
            at = (dimension, "" if value is None else f"={value}")
            found = listed.get(at)
            if found is None:
                found = listed[at] = ([], [], [])
            found[0].append(sums)
            if timed:
                found[1].append(latency)
            if row[13] is not None:
                found[2].append(ttft)
    return {
        at: Entry(list(map(sum, zip(*sums, strict=True))), Sketch.of(lat), Sketch.of(first))
        for at, (sums, lat, first) in listed.items()
    }


def by_period(rows: Iterable[Row]) -> dict[Key, Entry]:
    """``SOURCE`` rows summed per minute, hour and day of each group (each wider period from
    the narrower ones: a merge per entry, not per row)."""
    minutes: dict[int, list[Row]] = {}
    for row in rows:
        minutes.setdefault(int(row[0] // MINUTE) * MINUTE, []).append(row)
    entries: dict[Key, Entry] = {}
    for minute, found in minutes.items():
        for (dimension, key), entry in by_group(found).items():
            entries[(MINUTE, dimension, minute, key)] = entry
    for narrow, wide in pairwise(SPANS):
        for (span, dimension, start, key), entry in list(entries.items()):
            if span == narrow:
                wider = (wide, dimension, start // wide * wide, key)
                into = entries.get(wider)
                if into is None:
                    into = entries[wider] = Entry()
                into.merge(entry)
    return entries


# --- writing ---------------------------------------------------------------------------------
UPSERT_SQL = (
    f"INSERT INTO {ROLLUPS} ({', '.join((*KEY_COLUMNS, *VALUE_COLUMNS))}) "
    f"VALUES ({', '.join('?' * (len(KEY_COLUMNS) + len(VALUE_COLUMNS)))}) "
    f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in VALUE_COLUMNS)
)
BACKFILL_CHUNK = 50_000
BACKFILL_SQL = (
    f"SELECT id, {', '.join(SOURCE)} FROM {REQUESTS} WHERE id > ? "
    f"ORDER BY id LIMIT {BACKFILL_CHUNK}"
)


class RollupWrite:
    """What a batch of rows changes in the rollups. Run ``lookups()`` in the write
    transaction (writers serialised), then ``upsert(found)`` with what they returned."""

    def __init__(self, source_rows: Iterable[Row]) -> None:
        self._entries = by_period(source_rows)

    @classmethod
    def of_rows(cls, rows: Iterable[Row]) -> RollupWrite:
        """For rows in ``COLUMNS`` order (what the ledger inserts)."""
        return cls(FROM_ROW(row) for row in rows)

    def lookups(self) -> list[Statement]:
        keys = sorted(self._entries)
        statements: list[Statement] = []
        for i in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[i : i + LOOKUP_CHUNK]
            values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
            # A join, not ``(...) IN (VALUES ...)``, which SQLite answers with a full scan.
            on = " AND ".join(f"r.{c} = k.column{i}" for i, c in enumerate(KEY_COLUMNS, 1))
            sql = (
                f"SELECT {', '.join(f'r.{c}' for c in (*KEY_COLUMNS, *VALUE_COLUMNS))} "
                f"FROM (VALUES {values}) AS k JOIN {ROLLUPS} AS r ON {on}"
            )
            statements.append((sql, [part for key in chunk for part in key]))
        return statements

    def upsert(self, found: Iterable[Row]) -> tuple[str, list[Row]]:
        """``UPSERT_SQL`` and its rows: each touched rollup with this batch merged in."""
        merged = {(int(r[0]), r[1], int(r[2]), r[3]): Entry.stored(r[4:]) for r in found}
        for key, entry in self._entries.items():
            before = merged.get(key)
            if before is None:
                merged[key] = entry
            else:
                before.merge(entry)
        return UPSERT_SQL, [(*k, *entry.values(k[0])) for k, entry in sorted(merged.items())]


# --- reading ---------------------------------------------------------------------------------
def _ceil(since: float, span: int) -> int:
    return math.ceil(since / span) * span


def _rollups_sql(span: int, dimensions: Sequence[str], until: bool) -> str:
    marks = ", ".join("?" * len(dimensions))
    end = " AND period_start < ?" if until else ""
    return (
        f"SELECT dimension, group_key, period_start, {', '.join(VALUE_COLUMNS)} FROM {ROLLUPS} "
        f"WHERE span_s = ? AND dimension IN ({marks}) AND period_start >= ?{end}"
    )


def rollup_statement(
    span: int, start: int, end: int | None, dimensions: Sequence[str] = DIMENSIONS
) -> Statement:
    """The ``span`` rollups of ``dimensions`` with ``start <= period_start < end``."""
    params: list[object] = [span, *dimensions, start]
    if end is not None:
        params.append(end)
    return _rollups_sql(span, dimensions, end is not None), params


def window_statements(since: float | None) -> list[Statement]:
    """The edge rows and the rollups that make up ``ts >= since`` (see the module doc)."""
    if since is None:
        return [rollup_statement(WEEK, 0, None)]  # ts >= 0: every row a ledger writes
    edges = [_ceil(since, span) for span in SPANS]
    edge = f"SELECT {', '.join(SOURCE)} FROM {REQUESTS} WHERE ts >= ? AND ts < ?"
    statements: list[Statement] = [(edge, [since, edges[0]])]
    for span, start, end in zip(SPANS, edges, [*edges[1:], None], strict=True):
        statements.append(rollup_statement(span, start, end))
    return statements


def fold_window(since: float | None, results: Sequence[Sequence[Row]]) -> LedgerStats:
    """``LedgerStats`` from what ``window_statements(since)`` returned. Thousands of rollup
    rows: each is added as its sums and two packed integers, no objects made per row."""
    groups: dict[tuple[str, str], list[Any]] = {}  # [sums, latency packed, ttft packed]
    if since is not None:
        for at, entry in by_group(results[0]).items():
            groups[at] = [entry.sums, entry.latency.packed, entry.ttft.packed]
        results = results[1:]
    for rows in results:
        _add_rows(groups, rows, lambda row: (row[0], row[1]))
    folded: dict[str, dict[str | None, GroupStats]] = {name: {} for name in DIMENSIONS}
    for (dimension, key), (sums, latency, ttft) in groups.items():
        entry = Entry(sums, Sketch(latency), Sketch(ttft))
        folded[dimension][group_value(key)] = entry.group()
    return stats_of(since, folded)


def _add_rows(into: dict[Any, list[Any]], rows: Iterable[Row], key: Callable[[Row], Any]) -> None:
    """Add rollup rows (``rollup_statement``'s) into ``into[key(row)]``."""
    last = 3 + len(ROLLUP_SUMS)
    for row in rows:
        at = key(row)
        found = into.get(at)
        if found is None:
            into[at] = [list(row[3:last]), unpack(row[last]), unpack(row[last + 1])]
        else:
            found[0] = list(map(add, found[0], row[3:last]))
            found[1] += unpack(row[last])
            found[2] += unpack(row[last + 1])


def totals_by_period(rows: Iterable[Row], width: int) -> dict[int, Entry]:
    """Rollup rows (``rollup_statement``'s) merged per period of ``width`` seconds, keyed by
    period number (``period_start // width``)."""
    slots: dict[int, list[Any]] = {}
    _add_rows(slots, rows, lambda row: int(row[2]) // width)
    return {k: Entry(sums, Sketch(lat), Sketch(ttft)) for k, (sums, lat, ttft) in slots.items()}
