"""Replay recorded traffic through a config: the real dispatcher on a virtual clock, vendors
simulated from the ledger.

Two passes over the ledger, each streamed a page at a time: the first learns how every
deployment behaved (``Observations``) and adds up what was recorded; the second (once per
simulated config) feeds the requests to the dispatcher at the simulated times they started. The
rows come from a reader thread through a bounded queue, so the simulated loop never waits on
the database: while it blocks on the queue, simulated time stands still.
"""

from __future__ import annotations

import asyncio
import math
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..config import Config, VendorSpec
from ..dispatcher import Dispatcher
from ..errors import ConfigError, DispatcherError
from ..observability.events import Event, RequestFinished
from ..types import Request
from .ledger_rows import LedgerRow, read_rows, span
from .observed import Observations
from .simulated import ROW_TAG, Ledgered, SimulatedVendor
from .tally import Outcome, Tally, outcome_of
from .virtual_time import START, LoopClock, VirtualTimeLoop

_END = object()


class ReplayRefused(ConfigError):
    """The replay cannot answer honestly (no traffic, or deployments with no record)."""


@dataclass(frozen=True, slots=True)
class Window:
    """Which recorded requests: those that started in [start, end), a ``sample`` of them."""

    ledger_url: str
    start: float
    end: float
    sample: float = 1.0
    seed: int = 0


@dataclass
class Simulated:
    tally: Tally
    elsewhere: int  # tries on deployments the recorded request never reached
    thin: int  # tries drawn from a deployment's whole record (its time had too few)


def narrowed(window: Window) -> Window:
    """The window shrunk to the requests in it (the simulated clock starts at the first)."""
    found = asyncio.run(span(window.ledger_url, window.start, window.end))
    if found is None:
        raise ReplayRefused(
            "no recorded request in that window of the ledger: widen --since / --from/--to, "
            "or point --ledger at the ledger the traffic was recorded in"
        )
    first, last = found
    return replace(window, start=first, end=math.nextafter(last, math.inf))


def learn(window: Window) -> tuple[Observations, Tally]:
    """Pass one: every deployment's behaviour, and the recorded tally."""

    async def scan() -> tuple[Observations, Tally]:
        observations = Observations(window.seed)
        recorded = Tally(window.start, window.end - window.start)
        async for row in read_rows(window.ledger_url, window.start, window.end,
                                   sample=window.sample, seed=window.seed):  # fmt: skip
            observations.add(row)
            recorded.add(row.started, (row.key_name, row.team), _recorded(row))
        return observations, recorded

    observations, recorded = asyncio.run(scan())
    if recorded.requests == 0:
        raise ReplayRefused(
            f"the sample of {window.sample:g} left no request of the window: raise --sample"
        )
    return observations, recorded


def _recorded(row: LedgerRow) -> Outcome:
    return Outcome(
        error=None if row.status == "ok" else (row.error_type or "error"),
        latency_s=row.latency_s,
        ttft_s=row.ttft_s,
        cost_nano=row.cost_nano,
        group=row.group or row.requested,
        vendor=row.vendor,
        fallbacks=row.fallbacks,
        hedged=row.hedged,
        rule=row.rule,
    )


def simulate(config: Config, window: Window, observations: Observations) -> Simulated:
    """Pass two: the window's requests through ``config``, vendors simulated."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_simulate(config, window, observations))
    finally:
        loop.close()


async def _simulate(config: Config, window: Window, observations: Observations) -> Simulated:
    shared = Ledgered(observations, random.Random(f"replay:{window.seed}"))
    shared.wall_offset = window.start - START
    tally = Tally(window.start, window.end - window.start)
    quiet = replace(
        config, vendors=(), ledger_url=None, enable_logging=False, state_url="memory://"
    )
    vendors = [SimulatedVendor(s.name, _pricing_name(s), shared) for s in config.vendors]
    dispatcher = Dispatcher(quiet, vendors=vendors, clock=LoopClock(window.start),
                            rng=random.Random(f"dispatcher:{window.seed}"))  # fmt: skip
    who: dict[int, tuple[str | None, str | None]] = {}

    def finished(event: Event) -> None:
        if isinstance(event, RequestFinished):
            n = int((event.request.metadata or {})[ROW_TAG])
            row = shared.rows.pop(n)
            tally.add(row.started, who.pop(n), outcome_of(event))

    dispatcher.subscribe(finished)
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()
    async with dispatcher:
        for n, row in enumerate(_feed(window)):
            wait = (row.started - window.start) - (loop.time() - START)
            if wait > 0:
                await asyncio.sleep(wait)
            shared.rows[n] = row
            who[n] = (row.key_name, row.team)
            task = asyncio.create_task(_one(dispatcher, row, n))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    if shared.unobserved:
        listed = ", ".join(f"{k} ({n} tries)" for k, n in shared.unobserved.most_common())
        raise ReplayRefused(
            f"the config sends traffic to deployments the ledger never saw, so there is "
            f"nothing to simulate them from: {listed}; record some traffic to them first, or "
            "leave them out"
        )
    return Simulated(tally, shared.elsewhere, shared.thin)


async def _one(dispatcher: Dispatcher, row: LedgerRow, n: int) -> None:
    """Send one recorded request; its outcome arrives as a ``RequestFinished``."""
    request = Request(
        model=row.requested,
        # A stand-in text as long as the recorded prompt, so that limits estimate its tokens
        # about as they did (``tokens.py``: about 4 bytes a token).
        messages=[{"role": "user", "content": "x" * max(0, 4 * (row.prompt_tokens - 8))}],
        max_tokens=row.completion_tokens or None,
        user=row.user,
        metadata={ROW_TAG: str(n), "api_key": row.key_name, "team": row.team},
    )
    try:
        if row.stream:
            async for _ in dispatcher.stream(request):
                pass
        else:
            await dispatcher.send(request)
    except DispatcherError:
        pass  # recorded by the dispatcher's own RequestFinished


def _feed(window: Window) -> Iterator[LedgerRow]:
    """The window's rows, read by a thread of their own on its own event loop."""
    rows: queue.Queue[Any] = queue.Queue(maxsize=10_000)

    def pump() -> None:
        async def read() -> None:
            async for row in read_rows(window.ledger_url, window.start, window.end,
                                       sample=window.sample, seed=window.seed):  # fmt: skip
                rows.put(row)

        try:
            asyncio.run(read())
        except BaseException as exc:  # handed to the reader, raised there
            rows.put(exc)
        rows.put(_END)

    thread = threading.Thread(target=pump, name="replay-ledger-reader", daemon=True)
    thread.start()
    while (item := rows.get()) is not _END:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def _pricing_name(spec: VendorSpec) -> str:
    """The price table's section for a configured vendor: its class's, else its type (the
    OpenAI-compatible presets are priced under their own names)."""
    from ..vendors import vendor_class

    try:
        found = getattr(vendor_class(spec.type), "pricing_name", "")
    except (KeyError, ImportError):
        found = ""
    return found if isinstance(found, str) and found else spec.type
