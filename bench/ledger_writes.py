"""Ledger write throughput: records through ``Ledger`` into a fresh SQLite file.

    .venv/bin/python bench/ledger_writes.py
    PYTHONPATH=../other-checkout/src .venv/bin/python bench/ledger_writes.py   # to compare

Records 10 ms apart (5 vendors, 20 models, 50 keys, 5 teams), written in batches of 500 and of
10 (the writer's batch size; a quiet gateway's batches are small). Prints records/s: compare two
versions in one run, on one machine, not to a figure from elsewhere.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from decimal import Decimal

from llmdispatcher.observability.ledger import Ledger, LedgerRecord, Writing, open_store


def records(count: int) -> list[LedgerRecord]:
    rng = random.Random(1)
    now = time.time()
    return [
        LedgerRecord(
            ts=now + i * 0.01,
            request_id=f"r{i}",
            status="ok",
            latency_s=rng.lognormvariate(-0.7, 0.5),
            vendor=f"v{rng.randrange(5)}",
            model=f"m{rng.randrange(20)}",
            api_key_name=f"key-{rng.randrange(50)}",
            team=f"team-{rng.randrange(5)}",
            attempts=1,
            prompt_tokens=100,
            completion_tokens=50,
            cost_usd=Decimal("0.0001"),
            ttft_s=rng.lognormvariate(-2, 0.5),
        )
        for i in range(count)
    ]


async def seconds_to_write(count: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writing = Writing(batch_size=batch, flush_interval_s=60)
        ledger = Ledger(open_store(f"sqlite:///{tmp}/ledger.db"), writing=writing)
        await ledger.open()
        found = records(count)
        started = time.perf_counter()
        for record in found:
            ledger.record(record)
        await ledger.flush()
        took = time.perf_counter() - started
        await ledger.aclose()
    return took


def main() -> None:
    for batch, count in ((500, 20_000), (10, 2_000)):
        took = asyncio.run(seconds_to_write(count, batch))
        print(f"batches of {batch}: {count} records in {took:.2f}s = {count / took:,.0f}/s")


if __name__ == "__main__":
    main()
