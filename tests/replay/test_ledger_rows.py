"""The ledger reader: every request of the window once, in the order they started, however
the pages and the slices of time they are read in fall."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import orjson
import pytest

from llmdispatcher.observability.ledger import open_ledger
from llmdispatcher.observability.ledger_sql import COLUMNS, INSERT_SQL
from llmdispatcher.replay.ledger_rows import LedgerRow, read_pages, sampled

T0 = 1_765_000_000.0
ZEROS = ("stream", "attempts", "fallbacks", "prompt_tokens", "completion_tokens",
         "cached_tokens", "reasoning_tokens", "tool_calls", "saved_tokens")  # fmt: skip


def write(path: Path, rows: list[tuple[float, float, str]]) -> str:
    """A ledger of requests (started, latency, status), ids in the order given."""
    url = f"sqlite:///{path}"

    async def create() -> None:
        async with open_ledger(url, spill_dir=None, max_spill_bytes=0):
            pass  # migrations only

    asyncio.run(create())
    db = sqlite3.connect(path)
    for n, (started, latency, status) in enumerate(rows):
        tries = [{"vendor": "a", "model": "m", "status": "ok", "duration_s": latency}]
        values = {"ts": started + latency, "request_id": f"r{n}", "status": status,
                  "latency_s": latency, "vendor": "a", "model": "m", "attempts": 1,
                  "detail": orjson.dumps({"attempts": tries}).decode()}  # fmt: skip
        db.execute(INSERT_SQL, tuple(values.get(c, 0 if c in ZEROS else None) for c in COLUMNS))
    db.commit()
    db.close()
    return url


def read(url: str, start: float, end: float, **options: float) -> list[list[LedgerRow]]:
    async def pages() -> list[list[LedgerRow]]:
        return [page async for page in read_pages(url, start, end, **options)]  # type: ignore[arg-type]

    return asyncio.run(pages())


@pytest.fixture
def traffic(tmp_path: Path) -> tuple[str, list[tuple[float, float, str]]]:
    """Bursts, quiet hours, ties on the start time, requests that ran long past later ones,
    a cancelled one, and some outside the window."""
    rng = random.Random(5)
    rows = [(T0 + rng.uniform(0, 3600), rng.lognormvariate(-1, 1), "ok") for _ in range(150)]
    rows += [(T0 + 1800.0, 0.5, "ok")] * 12  # a burst at one instant
    rows += [(T0 + 10.0, 900.0, "ok"), (T0 + 11.0, 0.1, "cancelled")]
    rows += [(T0 - 5.0, 1.0, "ok"), (T0 + 7200.0, 1.0, "ok")]
    return write(tmp_path / "ledger.db", rows), rows


def expected(rows: list[tuple[float, float, str]], start: float, end: float) -> list[str]:
    """By brute force: the ids of the requests that started in [start, end), not cancelled,
    in start order (ties by id), start computed as the ledger stores it (ts - latency)."""
    kept = [((s + lat) - lat, n) for n, (s, lat, status) in enumerate(rows)
            if status != "cancelled" and start <= (s + lat) - lat < end]  # fmt: skip
    return [f"r{n}" for _, n in sorted(kept)]


@pytest.mark.parametrize("page", [1, 7, 50, 5000])
def test_every_request_once_in_start_order_whatever_the_page(
    traffic: tuple[str, list[tuple[float, float, str]]], page: int
) -> None:
    url, rows = traffic
    pages = read(url, T0, T0 + 3601, page=page)
    assert all(len(p) <= page for p in pages)
    got = [row.request_id for p in pages for row in p]
    assert got == expected(rows, T0, T0 + 3601)
    assert "r162" in got  # started early, ended 15 minutes later: still in its place


def test_a_window_in_the_middle(traffic: tuple[str, list[tuple[float, float, str]]]) -> None:
    url, rows = traffic
    got = [row.request_id for p in read(url, T0 + 600, T0 + 1800.0, page=9) for row in p]
    assert got == expected(rows, T0 + 600, T0 + 1800.0)  # the burst at the end is left out


def test_an_empty_window_gives_no_page(
    traffic: tuple[str, list[tuple[float, float, str]]],
) -> None:
    url, _ = traffic
    assert read(url, T0 + 4000, T0 + 5000) == []


def test_a_sample_keeps_the_same_requests_for_the_same_seed(
    traffic: tuple[str, list[tuple[float, float, str]]],
) -> None:
    url, rows = traffic
    got = [r.request_id for p in read(url, T0, T0 + 3601, page=7, sample=0.3, seed=4) for r in p]
    assert got == [i for i in expected(rows, T0, T0 + 3601) if sampled(i, 0.3, 4)]
    assert 0 < len(got) < len(rows)


def test_a_row_knows_the_deployments_it_tried(
    traffic: tuple[str, list[tuple[float, float, str]]],
) -> None:
    url, _ = traffic
    row = read(url, T0, T0 + 3601)[0][0]
    assert row.reached == frozenset({"a/m"})
    assert row.tries[0].vendor == "a"
