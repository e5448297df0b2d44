"""Infrastructure faults under load: the figures of docs/reliability.md.

    .venv/bin/python bench/outages.py                 # every scenario, about 1.5 minutes
    .venv/bin/python bench/outages.py redis-closed    # one of them

In-process dispatcher (the gateway's request path without HTTP in front) against two fake
OpenAI vendors (tests/fakes): ``a`` has an rpm limit (so every request to it touches the state
backend), ``b`` has none; ``concurrency`` loops send requests, a third each routed a-then-b,
a only, and b only. Scenarios:

* ``redis-open`` / ``redis-closed``: a redis-server of our own is SIGKILLed after ``up_s``,
  restarted ``down_s`` later (empty), and traffic runs ``up_s`` more;
* ``redis-silent``: the same with SIGSTOP / SIGCONT (connections stay open, nothing answers:
  a black-holed Redis), policy ``open``;
* ``postgres``: the ledger writes to PostgreSQL through a TCP forwarder that is cut for
  ``down_s``; every record is then counted in the database;
* ``disk-full``: the SQLite ledger sits on a 2 MiB tmpfs (needs root) that is filled for
  ``down_s``, with the spill file on another disk.

Reported: requests and outcomes per phase, latency (p50 / p99 / max), the log lines the
outage produced, and for the ledgers what was spilled, replayed, dropped and finally counted.
Needs Redis and PostgreSQL binaries / server as the tests do (scripts/postgres.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.fakes.fixtures import FAKE_OPENAI_KEY  # noqa: E402
from tests.fakes.openai_fake import FakeOpenAI  # noqa: E402
from tests.ledger.tcp_forwarder import TcpForwarder  # noqa: E402
from tests.state.own_redis import OwnRedis  # noqa: E402

from llmdispatcher import Config, Dispatcher, Limits, Request, RetryPolicy  # noqa: E402
from llmdispatcher.errors import DispatcherError  # noqa: E402
from llmdispatcher.gateway.errors import api_error  # noqa: E402
from llmdispatcher.observability.ledger import Ledger, Writing, open_store  # noqa: E402
from llmdispatcher.observability.ledger_spill import SpillFile  # noqa: E402
from llmdispatcher.vendors import OpenAIVendor  # noqa: E402

HI = [{"role": "user", "content": "hi"}]
POSTGRES_URL = os.environ.get(
    "LLMDISPATCHER_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/test"
)


@dataclass
class Phase:
    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def line(self) -> str:
        lat = sorted(self.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
        med = statistics.median(lat) if lat else 0.0
        shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.outcomes.items()))
        return (
            f"  {self.name:<7} {len(lat):>6,} requests  p50 {med * 1000:6.1f} ms  "
            f"p99 {p99 * 1000:6.1f} ms  max {lat[-1] * 1000 if lat else 0:7.1f} ms  [{shown}]"
        )


class Lines(logging.Handler):
    """Warnings of our loggers, with the time they were logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and record.name.startswith("llmdispatcher"):
            self.seen.append((time.monotonic(), record.getMessage()))


class Load:
    def __init__(self, dispatcher: Dispatcher, concurrency: int) -> None:
        self.dispatcher = dispatcher
        self.concurrency = concurrency
        self.phase = Phase("before")
        self.phases = [self.phase]
        self.running = True

    def next_phase(self, name: str) -> None:
        self.phase = Phase(name)
        self.phases.append(self.phase)

    async def loop(self, vendor: str | None) -> None:
        while self.running:
            phase, started = self.phase, time.monotonic()
            try:
                reply = await self.dispatcher.send(
                    Request(model="gpt-4o-mini", messages=HI, vendor=vendor)
                )
                outcome = reply.vendor
            except DispatcherError as exc:
                found = api_error(exc)
                outcome = f"{found.status if found else 500} {type(exc).__name__}"
            phase.outcomes[f"{vendor or 'a>b'}->{outcome}"] += 1
            phase.latencies.append(time.monotonic() - started)
            await asyncio.sleep(0)  # a refusal may not suspend at all: let the others run

    async def run(self, timeline: Callable[[Load], Awaitable[None]]) -> None:
        kinds = [None, "a", "b"]
        loops = [asyncio.create_task(self.loop(kinds[i % 3])) for i in range(self.concurrency)]
        try:
            await timeline(self)
        finally:
            self.running = False
            await asyncio.gather(*loops)


def dispatcher(a: FakeOpenAI, b: FakeOpenAI, **config: object) -> Dispatcher:
    vendors = [
        OpenAIVendor(
            name="a", api_key=FAKE_OPENAI_KEY, base_url=a.url + "/v1", limits=Limits(rpm=10**9)
        ),
        OpenAIVendor(name="b", api_key=FAKE_OPENAI_KEY, base_url=b.url + "/v1"),
    ]
    base = Config(
        default_vendor="a",
        fallback_vendors=("b",),
        retry_policy=RetryPolicy(max_retries=0),
        **config,  # type: ignore[arg-type]
    )
    return Dispatcher(base, vendors=vendors)


async def redis_scenario(args: argparse.Namespace, failure: str, silent: bool) -> None:
    lines = Lines()
    logging.getLogger("llmdispatcher").addHandler(lines)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAI(api_key=FAKE_OPENAI_KEY) as a,
        FakeOpenAI(api_key=FAKE_OPENAI_KEY) as b,
    ):
        redis = OwnRedis(Path(tmp))
        redis.start()
        marks: dict[str, float] = {}

        async def timeline(load: Load) -> None:
            await asyncio.sleep(args.up_s)
            load.next_phase("outage")
            marks["down"] = time.monotonic()
            assert redis.process is not None
            if silent:
                redis.process.send_signal(signal.SIGSTOP)
            else:
                redis.kill()
            await asyncio.sleep(args.down_s)
            load.next_phase("after")
            marks["up"] = time.monotonic()
            if silent:
                redis.process.send_signal(signal.SIGCONT)
            else:
                redis.start()
            await asyncio.sleep(args.up_s)

        d = dispatcher(a, b, state_url=redis.url, state_failure=failure)
        async with d:
            load = Load(d, args.concurrency)
            await load.run(timeline)
        redis.kill()
    logging.getLogger("llmdispatcher").removeHandler(lines)
    how = "SIGSTOP (silent)" if silent else "SIGKILL"
    print(f"redis {how}, state_failure={failure}, outage {args.down_s:g}s:")
    for phase in load.phases:
        print(phase.line())
    for at, text in lines.seen:
        rel = at - marks["up"] if at >= marks["up"] else at - marks["down"]
        where = "after restart" if at >= marks["up"] else "after the fault"
        print(f"  log +{rel:5.2f}s {where}: {text[:150]}")


async def ledger_scenario(
    args: argparse.Namespace,
    url: str,
    spill_dir: Path,
    cut: Callable[[], Awaitable[None]],
    restore: Callable[[], Awaitable[None]],
    count: Callable[[], Awaitable[int]],
    title: str,
) -> None:
    lines = Lines()
    logging.getLogger("llmdispatcher").addHandler(lines)
    book = Ledger(
        open_store(url),
        writing=Writing(max_buffer=args.ledger_buffer, retry_after_s=0.1, max_retry_after_s=1.0),
        spill=SpillFile(spill_dir, 2**30),
    )
    drained_s = 0.0
    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as a, FakeOpenAI(api_key=FAKE_OPENAI_KEY) as b:

        async def timeline(load: Load) -> None:
            nonlocal drained_s
            await asyncio.sleep(args.up_s)
            load.next_phase("outage")
            await cut()
            await asyncio.sleep(args.down_s)
            load.next_phase("after")
            await restore()
            back = time.monotonic()
            while book.replayed < book.spilled or not any("again" in t for _, t in lines.seen):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            drained_s = time.monotonic() - back
            await asyncio.sleep(max(0.0, args.up_s - drained_s))

        d = dispatcher(a, b)
        async with d:
            d.subscribe(book.on_event)
            await book.open()
            load = Load(d, args.concurrency)
            await load.run(timeline)
            await book.aclose()
    logging.getLogger("llmdispatcher").removeHandler(lines)
    served = sum(sum(p.outcomes.values()) for p in load.phases)
    rows = await count()
    print(f"{title}, outage {args.down_s:g}s, memory buffer {args.ledger_buffer:,} records:")
    for phase in load.phases:
        print(phase.line())
    print(
        f"  records: {served:,} requests, {rows:,} rows in the database; spilled "
        f"{book.spilled:,}, replayed {book.replayed:,}, dropped {book.dropped:,}; writing again "
        f"and the spill file replayed {drained_s:.1f}s after the database returned"
    )
    for _, text in lines.seen:
        print(f"  log: {' '.join(text.split())[:200]}")


async def postgres_scenario(args: argparse.Namespace) -> None:
    import psycopg

    schema = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    forwarder = TcpForwarder("127.0.0.1", 5432)
    await forwarder.start()
    direct = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    url = direct.replace(":5432/", f":{forwarder.port}/")

    async def count() -> int:
        async with await psycopg.AsyncConnection.connect(direct) as conn:
            cursor = await conn.execute("SELECT COUNT(DISTINCT request_id) FROM ledger_requests")
            found = await cursor.fetchone()
        return int(found[0]) if found else 0

    try:
        with tempfile.TemporaryDirectory() as tmp:
            await ledger_scenario(
                args, url, Path(tmp), forwarder.cut, forwarder.restore, count, "postgresql cut"
            )
    finally:
        await forwarder.cut()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


async def disk_full_scenario(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "disk"
        disk.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]
        subprocess.run(mount, check=True)  # noqa: ASYNC221 - before the load starts
        db, filler = disk / "ledger.db", disk / "filler"

        async def fill() -> None:
            with filler.open("wb", buffering=0) as out:
                try:
                    while True:
                        out.write(b"\0" * 65536)
                except OSError:
                    pass

        async def free() -> None:
            filler.unlink()

        async def count() -> int:
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                found = conn.execute("SELECT COUNT(DISTINCT request_id) FROM ledger_requests")
                return int(found.fetchone()[0])

        try:
            await ledger_scenario(
                args, f"sqlite:///{db}", Path(tmp) / "spill", fill, free, count, "sqlite disk full"
            )
            print("  PRAGMA integrity_check: ok")
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # noqa: ASYNC221


SCENARIOS: dict[str, Callable[[argparse.Namespace], Awaitable[None]]] = {
    "redis-open": lambda args: redis_scenario(args, "open", silent=False),
    "redis-closed": lambda args: redis_scenario(args, "closed", silent=False),
    "redis-silent": lambda args: redis_scenario(args, "open", silent=True),
    "postgres": postgres_scenario,
    "disk-full": disk_full_scenario,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--up-s", type=float, default=3.0)
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--ledger-buffer", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("llmdispatcher").setLevel(logging.INFO)
    for name in args.scenarios or SCENARIOS:
        asyncio.run(SCENARIOS[name](args))
        print()


if __name__ == "__main__":
    main()
