"""What a dashboard replay costs the gateway's event loop: the same replay (bench/replay.py's
synthetic ledger, the `cost` strategy against `priority`) run in a worker thread and in a child
process (``ReplayRunner``, as the Replay page runs it), while a ticker on the loop sleeps 1 ms
at a time and records how late it wakes: the wait every live request would add.

    .venv/bin/python bench/ui_replay.py               # 20,000 rows
    .venv/bin/python bench/ui_replay.py --rows 2000   # a smoke

Reports the loop's lateness (p50, p99, max) with no replay, with the replay in a thread and
in a child, and the ratios thread/child, from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import config, write_ledger

from llmdispatcher.gateway.ui.replay_runner import Asked, ReplayRunner
from llmdispatcher.replay import Window, replay

TICK_S = 0.001


async def lateness(work: Callable[[], Awaitable[None]]) -> tuple[list[float], float]:
    """How late each 1 ms sleep woke while ``work`` ran, and how long ``work`` took."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            late.append(loop.time() - asked - TICK_S)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await ticker
    return late, took


async def idle() -> None:
    await asyncio.sleep(2.0)


def in_thread(window: Window) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await asyncio.to_thread(replay, config("cost"), window, baseline=config("priority"))

    return run


def in_child(window: Window) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        runner = ReplayRunner()
        runner.start(Asked(window, "bench", "bench", "bench", time.time()),
                     config("cost"), config("priority"))  # fmt: skip
        while runner.running is not None:  # noqa: ASYNC110 - polled, as the page does
            await asyncio.sleep(0.05)
        assert runner.last is not None
        assert runner.last.report is not None, runner.last.error

    return run


def _quantiles(late: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(late, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, max(late) * 1000


async def measure(window: Window, rows: int) -> None:
    print(f"{rows:,} rows; loop lateness of a 1 ms sleep, ms (p50 / p99 / max)")
    found = {}
    for name, work in (("no replay", idle), ("thread", in_thread(window)),
                       ("child process", in_child(window))):  # fmt: skip
        late, took = await lateness(work)
        found[name] = _quantiles(late)
        p50, p99, worst = found[name]
        print(f"  {name:<14} {p50:7.2f} / {p99:7.2f} / {worst:8.2f}   ({took:.1f} s)")
    thread, child = found["thread"], found["child process"]
    print(f"  thread / child: p50 x{thread[0] / child[0]:.1f}, p99 x{thread[1] / child[1]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        write_ledger(path, rows, seed=1)
        asyncio.run(measure(Window(f"sqlite:///{path}", 0, 2e9, seed=1), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
