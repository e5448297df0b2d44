"""Rollups against the rows they summarise, on SQLite and PostgreSQL: over random rows written
in many batches (out of time order), every window's sums equal the exact statistics and every
percentile is within the sketch's bound of the exact nearest-rank one; migration 008 rolls up
a ledger written before it; two writers at once lose nothing; the chart agrees with the rows."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import Counter
from dataclasses import fields
from decimal import Decimal
from typing import Any

from llmdispatcher import FakeClock
from llmdispatcher.gateway.ui.ledger_views import series
from llmdispatcher.observability.ledger import (
    MIGRATIONS,
    Ledger,
    LedgerRecord,
    Writing,
    open_store,
)
from llmdispatcher.observability.ledger_rollup import fold_window, window_statements
from llmdispatcher.observability.ledger_sql import (
    GROUPINGS,
    INSERT_SQL,
    GroupStats,
    LedgerStats,
    fold_stats,
    stats_statements,
)
from tests.ledger.test_ledger import postgres_server, url
from tests.unit.test_ledger_sketch import within_bound

__all__ = ["postgres_server", "url"]

START = 1_750_000_123.4  # not on a minute: windows cross every kind of edge
SPREAD_S = 10 * 86400.0  # crosses a week (the widest span)
PERCENTILES = ("latency_p50_s", "latency_p95_s", "latency_p99_s", "ttft_p50_s")


def random_record(rng: random.Random, i: int, ts: float) -> LedgerRecord:
    status = rng.choice(["ok"] * 8 + ["error", "cancelled"])
    attempts = rng.randint(1, 3)
    latency = rng.choice([0.0, 3e-7, rng.lognormvariate(-1, 1.2), rng.uniform(0, 40)])
    hit = rng.random() < 0.1
    return LedgerRecord(
        ts=ts,
        request_id=f"r{i}",
        status=status,
        latency_s=latency,
        user=rng.choice(["alice", "bob", None]),
        vendor=rng.choice(["a", "b", "c", None]),
        model=rng.choice(["m1", "m2", "m3", None]),
        api_key_name=rng.choice(["k1", "k2", None]),
        team=rng.choice(["t1", "t2", None]),
        attempts=attempts,
        fallbacks=rng.randint(0, attempts - 1),
        prompt_tokens=rng.randrange(5000),
        completion_tokens=rng.randrange(800),
        cached_tokens=rng.randrange(100),
        reasoning_tokens=rng.randrange(100),
        cost_usd=rng.choice([None, Decimal(rng.randrange(10**7)).scaleb(-9)]),
        ttft_s=rng.choice([None, rng.lognormvariate(-2, 0.8)]),
        cache="hit" if hit else rng.choice([None, "miss"]),
        saved_tokens=rng.randrange(900) if hit else 0,
        saved_cost_usd=Decimal(rng.randrange(10**6)).scaleb(-9) if hit else None,
    )


def random_records(rng: random.Random, count: int) -> list[LedgerRecord]:
    """Spread over ten days, some on exact minute edges, in no particular order."""
    found = []
    for i in range(count):
        ts = START + rng.random() * SPREAD_S
        if i % 10 == 0:
            ts = float(int(ts) // 60 * 60)
        found.append(random_record(rng, i, ts))
    return found


def assert_agree(rolled: LedgerStats, exact: LedgerStats) -> None:
    """Sums equal; percentiles within the sketch's bound."""
    for name, _ in GROUPINGS:
        if name == "totals":
            pairs = {"": (rolled.totals, exact.totals)}
        else:
            ours, theirs = getattr(rolled, name), getattr(exact, name)
            assert set(ours) == set(theirs), name
            pairs = {k: (ours[k], theirs[k]) for k in ours}
        for key, (got, want) in pairs.items():
            for f in fields(GroupStats):
                a, b = getattr(got, f.name), getattr(want, f.name)
                if f.name in PERCENTILES:
                    assert within_bound(a, b), (name, key, f.name, a, b)
                else:
                    assert a == b, (name, key, f.name, a, b)


async def exact_and_rolled(store: Any, since: float | None) -> tuple[LedgerStats, LedgerStats]:
    exact = fold_stats(since, await store.query(stats_statements(since)))
    rolled = fold_window(since, await store.query(window_statements(since)))
    return rolled, exact


async def test_every_window_of_random_rows_agrees_with_the_exact_statistics(url: str) -> None:
    rng = random.Random(11)
    ledger = Ledger(open_store(url), writing=Writing(batch_size=37, flush_interval_s=60))
    async with ledger:
        for record in random_records(rng, 1500):
            ledger.record(record)
        await ledger.flush()
        windows = [None, START - 10, START + SPREAD_S + 10, START + 3600.0, START + 86400 * 2]
        windows += [START + rng.random() * SPREAD_S for _ in range(8)]
        for since in windows:
            rolled, exact = await exact_and_rolled(ledger.store, since)
            assert_agree(rolled, exact)
        assert exact.totals.requests > 0  # the last window held rows


async def test_stats_read_the_rollups_above_exact_rows_and_the_rows_below(url: str) -> None:
    rng = random.Random(5)
    records = random_records(rng, 300)
    async with Ledger(open_store(url), exact_rows=0) as rolled_ledger:
        for record in records:
            rolled_ledger.record(record)
        rolled = await rolled_ledger.stats(START)
        via_rollups, exact = await exact_and_rolled(rolled_ledger.store, START)
    async with Ledger(open_store(url)) as exact_ledger:  # 300 rows: under the default
        assert await exact_ledger.stats(START) == exact
    assert rolled == via_rollups
    assert_agree(rolled, exact)


async def test_the_migration_rolls_up_a_ledger_written_before_it(url: str) -> None:
    rng = random.Random(8)
    old = open_store(url)
    await old.open(MIGRATIONS[:-1])  # 007: no rollups yet
    await old.aclose()
    rows = [record.as_row() for record in random_records(rng, 1200)]
    await asyncio.to_thread(_insert, url, rows)

    async with Ledger(open_store(url), writing=Writing(batch_size=50)) as upgraded:
        for since in (None, START + 4000.5, START + rng.random() * SPREAD_S):
            assert_agree(*await exact_and_rolled(upgraded.store, since))
        for record in random_records(rng, 200):  # written after: merged into the same rollups
            upgraded.record(record)
        await upgraded.flush()
        assert_agree(*await exact_and_rolled(upgraded.store, None))


async def test_rollups_rebuilt_as_the_docs_say_after_rows_are_deleted(url: str) -> None:
    rng = random.Random(9)
    async with Ledger(open_store(url), writing=Writing(batch_size=100)) as ledger:
        for record in random_records(rng, 600):
            ledger.record(record)
    cut = START + SPREAD_S / 2
    await asyncio.to_thread(
        _execute,
        url,
        [
            f"DELETE FROM ledger_requests WHERE ts < {cut}",  # pruned by hand
            "DROP TABLE ledger_rollups",
            "DELETE FROM ledger_migrations WHERE name = '008_rollups'",
        ],
    )
    async with Ledger(open_store(url)) as reopened:
        rolled, exact = await exact_and_rolled(reopened.store, None)
    assert 0 < exact.totals.requests < 600
    assert_agree(rolled, exact)


def _execute(url: str, statements: list[str]) -> None:
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            for sql in statements:
                conn.execute(sql)
            conn.commit()
        return
    import psycopg

    with psycopg.connect(url) as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[arg-type]


def _insert(url: str, rows: list[tuple[Any, ...]]) -> None:
    """As a version without rollups wrote them: the rows only."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.executemany(INSERT_SQL, rows)
            conn.commit()
        return
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(INSERT_SQL.replace("?", "%s"), rows)  # type: ignore[arg-type]


async def test_two_writers_at_once_lose_no_count(url: str) -> None:
    rng = random.Random(2)
    now = START + 600
    writers = [Ledger(open_store(url), writing=Writing(batch_size=7)) for _ in range(2)]
    for ledger in writers:
        await ledger.open()

    async def write(ledger: Ledger, tag: str) -> None:
        for i in range(300):  # the same few minutes, so both merge into the same rollups
            ledger.record(random_record(rng, i, now + rng.random() * 180))
            if i % 20 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(write(ledger, str(n)) for n, ledger in enumerate(writers)))
    await asyncio.gather(*(ledger.flush() for ledger in writers))
    rolled, exact = await exact_and_rolled(writers[0].store, now - 1)
    assert exact.totals.requests == 600
    assert_agree(rolled, exact)
    for ledger in writers:
        await ledger.aclose()


async def test_the_chart_of_a_day_counts_every_row_of_its_buckets(url: str) -> None:
    rng = random.Random(4)
    clock = FakeClock(wall_start=START + SPREAD_S)
    records = random_records(rng, 600)
    async with Ledger(open_store(url), clock=clock) as ledger:
        for record in records:
            ledger.record(record)
        chart = await series(ledger, "24h", clock.wall())
        (rows,) = await ledger.select([("SELECT ts FROM ledger_requests", [])])
    counted = Counter(float(ts // 1800 * 1800) for (ts,) in rows)
    shown = {t: round(rps * 1800) for t, rps in zip(chart.times, chart.rps, strict=True)}
    assert shown == {t: counted.get(t, 0) for t in chart.times}
    assert sum(shown.values()) > 0
