"""One replica of the multi-process proof (tests/state/test_replicas.py); run as a script.

It prints ``ready``, waits for a ``go`` line on stdin (the parent sends it once every replica
is ready, so they start together), then runs request loops against the shared state, each until
the limit it races for has refused it ``--stop-after`` times in a row (the window or budget is
full) or ``--max-duration`` seconds have passed:

* ``--token-loops`` loops reserve worst-case tokens (200-2000) on scope ``deploy-a`` under
  ``tpm`` and ``max_concurrency``, "call the vendor" (a 1-10 ms sleep) and finish with a random
  actual usage <= the reservation (0 for one attempt in ten: it failed);
* ``--budget-loops`` loops do the same with dollars against budget ``user:alice`` (per day).

While it holds a concurrency slot a loop counts itself in a shared ``probe:in-flight`` counter,
so the highest value seen is the number of requests in flight across all replicas.

Then it prints one JSON object: actual tokens and micro-dollars admitted per window/period key,
counts of admitted and refused attempts, and the highest in-flight count it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from decimal import Decimal
from typing import Any

from llmdispatcher.budgets import Budget, BudgetTracker
from llmdispatcher.clock import SystemClock
from llmdispatcher.errors import BudgetExceeded
from llmdispatcher.resilience.rate_limit import Limits, RateLimiter, Refusal
from llmdispatcher.state import CounterAdd, StateBackend, open_state

PRICE_PER_TOKEN = Decimal("0.00001")  # $10 per million tokens
MICROS_PER_TOKEN = 10
PROBE = "probe:in-flight"


def usage(rng: random.Random, worst: int) -> int:
    return 0 if rng.random() < 0.1 else rng.randint(worst // 2, worst)


class Replica:
    def __init__(self, args: argparse.Namespace, state: StateBackend) -> None:
        self.state = state
        self.clock = SystemClock()
        self.limiter = RateLimiter(state, self.clock, lease_ttl=30)
        self.budgets = BudgetTracker(state, self.clock, [Budget("user:alice", args.budget, "day")])
        self.limits = Limits(tpm=args.tpm, max_concurrency=args.max_concurrency)
        self.deadline = time.time() + args.max_duration
        self.stop_after = args.stop_after
        self.report: dict[str, Any] = {
            "tokens": {},
            "spend": {},
            "admitted": 0,
            "refused": 0,
            "budget_admitted": 0,
            "budget_refused": 0,
            "max_in_flight": 0,
        }

    def add(self, table: str, key: str, amount: int) -> None:
        self.report[table][key] = self.report[table].get(key, 0) + amount

    async def token_loop(self, rng: random.Random) -> None:
        full = 0  # tpm refusals in a row
        while time.time() < self.deadline and full < self.stop_after:
            worst = rng.randint(200, 2000)
            outcome = await self.limiter.reserve("deploy-a", self.limits, worst)
            if isinstance(outcome, Refusal):
                self.report["refused"] += 1
                full = full + 1 if outcome.which == "tpm" else full
                await asyncio.sleep(min(outcome.frees_in, 0.01))
                continue
            full = 0
            seen = await self.state.add_within([CounterAdd(PROBE, 1)], self.clock.wall())
            self.report["max_in_flight"] = max(self.report["max_in_flight"], seen.values[0])
            await asyncio.sleep(rng.uniform(0.001, 0.01))
            actual = usage(rng, worst)
            await self.state.adjust(PROBE, -1, self.clock.wall())
            await self.limiter.finish(outcome, actual)
            (key,) = outcome.token_keys
            self.add("tokens", key, actual)
            self.report["admitted"] += 1

    async def budget_loop(self, rng: random.Random) -> None:
        full = 0  # budget refusals in a row
        while time.time() < self.deadline and full < self.stop_after:
            worst = rng.randint(200, 2000)
            try:
                reservation = await self.budgets.reserve(["user:alice"], worst * PRICE_PER_TOKEN)
            except BudgetExceeded:
                self.report["budget_refused"] += 1
                full += 1
                await asyncio.sleep(0.01)
                continue
            full = 0
            await asyncio.sleep(rng.uniform(0.001, 0.01))
            actual = usage(rng, worst)
            await self.budgets.reconcile(reservation, actual * PRICE_PER_TOKEN)
            (key,) = reservation.keys
            self.add("spend", key, actual * MICROS_PER_TOKEN)
            self.report["budget_admitted"] += 1


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with open_state(args.url, prefix=args.prefix) as state:
        await state.get([PROBE], time.time())  # connected (and the SQLite file set up)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        replica = Replica(args, state)
        rngs = [
            random.Random(f"{args.seed}-{i}") for i in range(args.token_loops + args.budget_loops)
        ]
        await asyncio.gather(
            *(replica.token_loop(rng) for rng in rngs[: args.token_loops]),
            *(replica.budget_loop(rng) for rng in rngs[args.token_loops :]),
        )
        return replica.report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", default="llmd:")
    parser.add_argument("--max-duration", type=float, default=20.0)
    parser.add_argument("--stop-after", type=int, default=25)
    parser.add_argument("--seed", default="0")
    parser.add_argument("--tpm", type=int, required=True)
    parser.add_argument("--max-concurrency", type=int, required=True)
    parser.add_argument("--budget", type=Decimal, required=True)
    parser.add_argument("--token-loops", type=int, default=8)
    parser.add_argument("--budget-loops", type=int, default=4)
    return parser.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args()))))
