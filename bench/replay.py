"""How fast a replay runs, and in how much memory: a synthetic ledger of N requests over a week
(two deployments, 2 % errors on one, a third streamed), replayed under the `cost` strategy
against what was recorded. Reports rows per second of CPU (all threads: the ledger reader's
too), the CPU per row of each pass, and the peak RSS, and projects the time for 1,000,000
rows. ``--ledger FILE`` keeps the synthetic ledger for the next run (writing a million rows
takes about half a minute).

    .venv/bin/python bench/replay.py                  # 100,000 rows
    .venv/bin/python bench/replay.py --rows 1000000   # the issue's figure (bench/RESULTS-replay.md)
    .venv/bin/python bench/replay.py --rows 2000      # the CI smoke (fails only on errors)
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

from llmdispatcher import Config, VendorSpec
from llmdispatcher.observability.ledger import open_ledger
from llmdispatcher.observability.ledger_sql import COLUMNS, INSERT_SQL
from llmdispatcher.replay import Window
from llmdispatcher.replay.run import learn, narrowed, simulate
from llmdispatcher.settings.routing import Deployment, ModelGroup

WEEK = 7 * 86400.0
ZEROS = ("cached_tokens", "reasoning_tokens", "tool_calls", "saved_tokens")  # NOT NULL, at 0
START = 1_765_000_000.0


def config(strategy: str) -> Config:
    vendors = tuple(VendorSpec(n, "openai", {"name": n, "api_key": "sk-bench"}) for n in "ab")
    group = ModelGroup(
        "chat",
        (Deployment("a", "gpt-4o", input_price=2.5, output_price=10.0),
         Deployment("b", "gpt-4o-mini", input_price=0.15, output_price=0.6)),
        strategy=strategy,  # type: ignore[arg-type]
    )  # fmt: skip
    return Config(vendors=vendors, model_groups=(group,))


def write_ledger(path: Path, rows: int, seed: int) -> None:
    """``rows`` requests spread over a week, in the ledger's own schema."""
    import asyncio

    async def create() -> None:
        async with open_ledger(f"sqlite:///{path}", spill_dir=None, max_spill_bytes=0):
            pass  # migrations only

    asyncio.run(create())
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    batch = []
    for n in range(rows):
        started = START + WEEK * n / rows
        vendor, model = ("a", "gpt-4o") if rng.random() < 0.7 else ("b", "gpt-4o-mini")
        failed = vendor == "a" and rng.random() < 0.02
        seconds = rng.lognormvariate(-0.5, 0.6)
        tries = [{"vendor": vendor, "model": model, "status": "VendorServerError" if failed
                  else "ok", "error": None, "duration_s": seconds}]  # fmt: skip
        if failed:
            tries.append({"vendor": "b", "model": "gpt-4o-mini", "status": "ok", "error": None,
                          "duration_s": seconds / 2})  # fmt: skip
        latency = seconds * 1.5 if failed else seconds  # the tries' durations, added
        stream = n % 3 == 0
        values = {
            "ts": started + latency, "request_id": f"r{n}", "model_group": "chat",
            "vendor": tries[-1]["vendor"], "deployment": f"{tries[-1]['vendor']}/"
            f"{tries[-1]['model']}", "model": tries[-1]["model"], "status": "ok",
            "stream": int(stream), "attempts": len(tries), "fallbacks": len(tries) - 1,
            "prompt_tokens": 400, "completion_tokens": 150, "cost_nano_usd": 2_500_000,
            "latency_s": latency, "ttft_s": latency / 4 if stream else None,
            "detail": orjson.dumps({"attempts": tries}).decode(),
        }  # fmt: skip
        batch.append(tuple(values.get(c, 0 if c in ZEROS else None) for c in COLUMNS))
        if len(batch) == 10_000:
            db.executemany(INSERT_SQL, batch)
            batch.clear()
    db.executemany(INSERT_SQL, batch)
    db.commit()
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ledger", type=Path, help="keep the ledger here (reused if present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = args.ledger or Path(tmp) / "ledger.db"
        if not ledger.exists():
            write_ledger(ledger, args.rows, args.seed)
        return measure(ledger, args.rows, args.seed)


def measure(ledger: Path, rows: int, seed: int) -> int:
    """The two passes of ``replay`` (``llmdispatcher.replay.replay`` runs these), timed apart."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    window = narrowed(Window(f"sqlite:///{ledger}", START, START + WEEK + 1, seed=seed))
    observations, recorded = learn(window)
    cpu1 = time.process_time()
    proposed = simulate(config("cost"), window, observations).tally
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if proposed.requests != rows or recorded.requests != rows:
        print(f"error: replayed {proposed.requests} of {rows} rows", file=sys.stderr)
        return 1
    print(f"{rows:,} rows: {cpu:.1f} s CPU ({wall:.1f} s wall), {rows / cpu:,.0f} rows per CPU "
          f"second; peak RSS {peak_mib:.0f} MiB; 1,000,000 rows would take about "
          f"{1e6 / (rows / cpu):,.0f} s of CPU")  # fmt: skip
    print(f"per row: {(cpu1 - cpu0) / rows * 1e6:.0f} us reading and learning, "
          f"{(cpu0 + cpu - cpu1) / rows * 1e6:.0f} us simulating")  # fmt: skip
    print(f"proposal: {dict(proposed.vendors)}, cost ${proposed.cost_nano / 1e9:.2f} against "
          f"${recorded.cost_nano / 1e9:.2f} recorded")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
