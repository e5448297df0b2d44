"""Ledger write throughput: records through ``Ledger`` into a fresh SQLite file.

    .venv/bin/python bench/ledger_writes.py
    PYTHONPATH=../other-checkout/src .venv/bin/python bench/ledger_writes.py   # to compare

Records 10 ms apart in two shapes: "app" traffic (1 vendor, 2 models, 3 keys, 1 team: one
application's gateway) and "diverse" (5 vendors, 20 models, 50 keys, 5 teams), written in
batches of 500 and of 10 (the writer's batch size; a quiet gateway's batches are small). Each
batch also rewrites the rollup rows of every group it touches, so the number of groups matters.
Prints records/s: compare two versions in one run, on one machine, not to a figure from
elsewhere.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from decimal import Decimal

from llmdispatcher.observability.ledger import Ledger, LedgerRecord, Writing, open_store

SHAPES = {"app": (1, 2, 3, 1), "diverse": (5, 20, 50, 5)}  # vendors, models, keys, teams


def records(count: int, shape: tuple[int, int, int, int]) -> list[LedgerRecord]:
    vendors, models, keys, teams = shape
    rng = random.Random(1)
    now = time.time()
    return [
        LedgerRecord(
            ts=now + i * 0.01,
            request_id=f"r{i}",
            status="ok",
            latency_s=rng.lognormvariate(-0.7, 0.5),
            vendor=f"v{rng.randrange(vendors)}",
            model=f"m{rng.randrange(models)}",
            api_key_name=f"key-{rng.randrange(keys)}",
            team=f"team-{rng.randrange(teams)}",
            attempts=1,
            prompt_tokens=100,
            completion_tokens=50,
            cost_usd=Decimal("0.0001"),
            ttft_s=rng.lognormvariate(-2, 0.5),
        )
        for i in range(count)
    ]


async def seconds_to_write(count: int, batch: int, shape: tuple[int, int, int, int]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writing = Writing(batch_size=batch, flush_interval_s=60)
        ledger = Ledger(open_store(f"sqlite:///{tmp}/ledger.db"), writing=writing)
        await ledger.open()
        found = records(count, shape)
        started = time.perf_counter()
        for record in found:
            ledger.record(record)
        await ledger.flush()
        took = time.perf_counter() - started
        await ledger.aclose()
    return took


def main() -> None:
    for name, shape in SHAPES.items():
        for batch, count in ((500, 20_000), (10, 2_000)):
            took = asyncio.run(seconds_to_write(count, batch, shape))
            print(f"{name}, batches of {batch}: {count} in {took:.2f}s = {count / took:,.0f}/s")


if __name__ == "__main__":
    main()
