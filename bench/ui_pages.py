"""Dashboard page times with a large ledger: does every page answer in under 100 ms?

    .venv/bin/python bench/ui_pages.py                 # 1,000,000 rows over 30 days
    .venv/bin/python bench/ui_pages.py --rows 200000   # quicker
    .venv/bin/python bench/ui_pages.py --db /tmp/l.db  # keep (and reuse) the database

Builds an SQLite ledger of ``--rows`` requests spread evenly over ``--days`` (5 vendors, 20
models, 50 keys, 2 % errors, a routing ``detail`` on each): the rows go in under the schema
before rollups, then the ledger's own migration rolls them up (timed: what upgrading such a
ledger costs). It then serves an in-process gateway on it (admin key set, signed in) and times
each page over real HTTP on 127.0.0.1: the first request, then the median and the worst of
``--repeat`` more (an Overview repeated within its freshness is served from
``ui/overview_cache.py``; the first one is the cost of computing it). The Overview reads the
rollups of its window (``ledger_rollup``), so its time hardly grows with the window; a Requests
page walks the ``ts`` index and stops after one page. Last, ``Ledger.stats`` (what
``llmdispatcher stats --json`` runs) per window, and the exact statements it ran before rollups
over the ``--exact`` windows, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.inprocess import OneModelVendor

from llmdispatcher import Config, Dispatcher
from llmdispatcher.config import GatewayConfig
from llmdispatcher.gateway.app import create_app
from llmdispatcher.keys import open_key_store
from llmdispatcher.observability.ledger import open_ledger, open_store
from llmdispatcher.observability.ledger_sql import (
    COLUMNS,
    INSERT_SQL,
    MIGRATIONS,
    Migration,
    stats_statements,
)

ROLLUPS_MIGRATION = next(m for m in MIGRATIONS if m.name == "008_rollups")

ADMIN = "bench-admin-key-0123456789abcdef"
DETAIL = (
    '{"attempts":[{"vendor":"v1","model":"m1","status":"ok","error":null,"duration_s":0.4}],'
    '"routing":{"rule":null,"strategy":"priority","group":null,"reason":"vendor serves m1",'
    '"candidates":[{"deployment":"v1/m1","vendor":"v1","model":"m1","score":0.0,'
    '"detail":"priority 1 of 1","probe":false}],"excluded":{}}}'
)


def build(path: Path, rows: int, days: float) -> None:
    """Rows inserted under the schema before rollups; ``main`` then migrates, which rolls
    them up (its time is printed: what upgrading a ledger of this size costs)."""
    asyncio.run(_migrate(path, MIGRATIONS[: MIGRATIONS.index(ROLLUPS_MIGRATION)]))
    rng = random.Random(7)
    now = time.time()
    step = days * 86400 / rows
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        batch: list[tuple[Any, ...]] = []
        for i in range(rows):
            ok = rng.random() > 0.02
            values = {
                "ts": now - days * 86400 + i * step, "request_id": f"bench{i:010x}",
                "api_key_name": f"key-{rng.randrange(50)}", "team": f"team-{rng.randrange(5)}",
                "vendor": f"v{rng.randrange(5)}", "model": f"m{rng.randrange(20)}",
                "status": "ok" if ok else "error", "error_type": None if ok else "ServerError",
                "stream": rng.randrange(2), "attempts": 1, "fallbacks": 0,
                "prompt_tokens": rng.randrange(10, 2000), "completion_tokens": rng.randrange(500),
                "cached_tokens": 0, "reasoning_tokens": 0, "cost_nano_usd": rng.randrange(10**6),
                "latency_s": rng.lognormvariate(-0.7, 0.5), "ttft_s": rng.lognormvariate(-2, 0.5),
                "tool_calls": 0, "detail": DETAIL, "saved_tokens": 0,
            }  # fmt: skip
            batch.append(tuple(values.get(c) for c in COLUMNS))
            if len(batch) == 50_000:
                db.executemany(INSERT_SQL, batch)
                batch.clear()
        db.executemany(INSERT_SQL, batch)
        db.execute("ANALYZE")


async def _migrate(path: Path, migrations: Sequence[Migration]) -> None:
    store = open_store(f"sqlite:///{path}")
    await store.open(migrations)
    await store.aclose()


PAGES = (
    "/ui/?window=15m", "/ui/?window=1h", "/ui/?window=24h", "/ui/?window=7d",
    "/ui/requests", "/ui/requests?model=m3", "/ui/requests?vendor=v2&status=error",
    "/ui/requests?key=key-7&window=24h", "/ui/requests?team=team-1",
    "/ui/requests/bench0000000100", "/ui/vendors", "/ui/keys", "/ui/config", "/ui/playground",
)  # fmt: skip


async def measure(path: Path, repeat: int) -> list[tuple[str, float, float, float]]:
    config = Config(ledger_url=f"sqlite:///{path}")
    dispatcher = Dispatcher(config, vendors=[OneModelVendor()])
    store = open_key_store(f"sqlite:///{path.with_suffix('.keys.db')}")
    app = create_app(dispatcher, GatewayConfig(admin_key=ADMIN), key_store=store)
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    found = []
    try:
        await client.post("/ui/login", data={"admin_key": ADMIN})
        for page in PAGES:
            times = []
            for _ in range(repeat + 1):
                started = time.perf_counter()
                reply = await client.get(page)
                body = await reply.text()
                times.append(time.perf_counter() - started)
                assert reply.status == 200, (page, reply.status, re.sub(r"\s+", " ", body)[:300])
            found.append((page, times[0], statistics.median(times[1:]), max(times[1:])))
    finally:
        await client.close()
        await dispatcher.aclose()
    return found


STATS_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000, "all": None}


async def stats_times(
    path: Path, repeat: int, exact: Sequence[str]
) -> list[tuple[str, float, float, float]]:
    """``Ledger.stats`` (what ``llmdispatcher stats --json`` runs) per window; with ``exact``,
    also the exact statements over every row of those windows (what it ran before rollups)."""
    found = []
    async with open_ledger(f"sqlite:///{path}") as ledger:
        for name, seconds in STATS_WINDOWS.items():
            times = []
            for _ in range(repeat + 1):
                started = time.perf_counter()
                await ledger.stats(None if seconds is None else time.time() - seconds)
                times.append(time.perf_counter() - started)
            found.append((f"stats {name}", times[0], statistics.median(times[1:]), max(times[1:])))
        for name in exact:
            seconds = STATS_WINDOWS[name]
            since = None if seconds is None else time.time() - seconds
            started = time.perf_counter()
            await ledger.select(stats_statements(since))
            took = time.perf_counter() - started
            found.append((f"stats {name}, exact (before rollups)", took, took, took))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="the ledger file (built when missing)")
    parser.add_argument(
        "--exact",
        nargs="*",
        default=["1h", "24h"],
        choices=list(STATS_WINDOWS),
        help="windows to also time the exact statistics of (7d takes a minute at 1M rows)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "ledger.db"
        if not path.exists():
            started = time.perf_counter()
            build(path, args.rows, args.days)
            print(f"built {args.rows:,} rows in {time.perf_counter() - started:.0f}s: {path}")
        started = time.perf_counter()
        asyncio.run(_migrate(path, MIGRATIONS))  # a no-op once the database is up to date
        print(f"migrated (rollups backfilled) in {time.perf_counter() - started:.1f}s")
        print(f"{'page':40} {'first':>10} {'median':>10} {'worst':>10}")
        found = asyncio.run(measure(path, args.repeat))
        found += asyncio.run(stats_times(path, args.repeat, args.exact))
        for page, first, median, worst in found:
            flag = "" if max(first, median) < 0.1 else "  over 100 ms"
            cells = " ".join(f"{t * 1000:8.1f}ms" for t in (first, median, worst))
            print(f"{page:40} {cells}{flag}")


if __name__ == "__main__":
    main()
