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
from ..limits import Limits
from ..observability.events import Event, RequestFinished
from ..types import Message, Request
from .ledger_rows import LedgerRow, read_pages, span
from .observed import Observations
from .simulated import ROW_TAG, Ledgered, SimulatedVendor
from .tally import Outcome, Tally, outcome_of
from .virtual_time import START, LoopClock, VirtualTimeLoop

_END = object()
_PROMPTS_KEPT = 4096  # stand-in prompts kept, one per recorded length


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
        async for page in read_pages(window.ledger_url, window.start, window.end,
                                     sample=window.sample, seed=window.seed):  # fmt: skip
            for row in page:
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
        None if row.status == "ok" else (row.error_type or "error"), row.latency_s, row.ttft_s,
        row.cost_nano, row.group or row.requested, row.vendor, row.fallbacks, row.hedged,
        row.rule,
    )  # fmt: skip


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
    vendors = [
        SimulatedVendor(s.name, _pricing_name(s), shared, _limits(s)) for s in config.vendors
    ]
    dispatcher = Dispatcher(quiet, vendors=vendors, clock=LoopClock(window.start),
                            rng=random.Random(f"dispatcher:{window.seed}"))  # fmt: skip

    def finished(event: Event) -> None:
        if isinstance(event, RequestFinished):
            row = shared.rows.pop((event.request.metadata or {})[ROW_TAG])
            tally.add(row.started, (row.key_name, row.team), outcome_of(event))

    dispatcher.subscribe(finished)
    async with dispatcher:
        starts = _Starts(dispatcher, shared, _feed(window), window.start)
        await starts.done
        await asyncio.gather(*starts.running.values())
    if shared.unobserved:
        listed = ", ".join(f"{k} ({n} tries)" for k, n in shared.unobserved.most_common())
        raise ReplayRefused(
            f"the config sends traffic to deployments the ledger never saw, so there is "
            f"nothing to simulate them from: {listed}; record some traffic to them first, or "
            "leave them out"
        )
    return Simulated(tally, shared.elsewhere, shared.thin)


class _Starts:
    """Starts each recorded request at the simulated moment it started, as a task of its own.

    One timer at a time, for the next row: when it fires, every row due by then starts and
    the timer is set for the one after. (A feeding coroutine sleeping until each row cost a
    future and a wake-up per row.) ``done`` is set once the last row has started, or with
    the error that stopped the feed."""

    def __init__(
        self, dispatcher: Dispatcher, shared: Ledgered, rows: Iterator[LedgerRow], start: float
    ) -> None:
        self._dispatcher, self._shared, self._rows = dispatcher, shared, rows
        self._offset = START - start  # a wall time plus this is its simulated time
        self._loop = asyncio.get_running_loop()
        self._count = 0
        self._prompts: dict[int, Message] = {}  # by token count
        self.running: dict[str, asyncio.Task[None]] = {}  # by ROW_TAG
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._loop.call_soon(self._start_due, next(rows, None))

    def _start_due(self, row: LedgerRow | None) -> None:
        try:
            while row is not None:
                when = row.started + self._offset
                if when > self._loop.time():
                    self._loop.call_at(when, self._start_due, row)
                    return
                self._start(row)
                row = next(self._rows, None)
        except Exception as exc:  # the ledger's, handed to whoever awaits the feed
            self.done.set_exception(exc)
            return
        self.done.set_result(None)

    def _start(self, row: LedgerRow) -> None:
        tag = str(self._count)
        self._count += 1
        self._shared.rows[tag] = row
        self.running[tag] = self._loop.create_task(self._one(row, tag))

    def _stand_in(self, prompt_tokens: int) -> Message:
        """A user message as long as a recorded prompt, so that limits estimate its tokens
        about as they did (``tokens.py``: about 4 bytes a token). One per length, shared (a
        message is frozen): lengths repeat, and building the text was a cost per row."""
        found = self._prompts.get(prompt_tokens)
        if found is None:
            if len(self._prompts) >= _PROMPTS_KEPT:
                self._prompts.clear()
            found = Message(role="user", content="x" * max(0, 4 * (prompt_tokens - 8)))
            self._prompts[prompt_tokens] = found
        return found

    async def _one(self, row: LedgerRow, tag: str) -> None:
        """Send one recorded request; its outcome arrives as a ``RequestFinished``."""
        request = Request(
            model=row.requested,
            messages=(self._stand_in(row.prompt_tokens),),
            max_tokens=row.completion_tokens or None,
            user=row.user,
            metadata={ROW_TAG: tag, "api_key": row.key_name, "team": row.team},
        )
        try:
            if row.stream:
                async for _ in self._dispatcher.stream(request):
                    pass
            else:
                await self._dispatcher.send(request)
        except DispatcherError:
            pass  # recorded by the dispatcher's own RequestFinished
        finally:
            del self.running[tag]


def _feed(window: Window) -> Iterator[LedgerRow]:
    """The window's rows, read by a thread of their own on its own event loop, handed over a
    page at a time (a row at a time, the queue's locking cost more than reading the row)."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=2)

    def pump() -> None:
        async def read() -> None:
            async for page in read_pages(window.ledger_url, window.start, window.end,
                                         sample=window.sample, seed=window.seed):  # fmt: skip
                pages.put(page)

        try:
            asyncio.run(read())
        except BaseException as exc:  # handed to the reader, raised there
            pages.put(exc)
        pages.put(_END)

    thread = threading.Thread(target=pump, name="replay-ledger-reader", daemon=True)
    thread.start()
    while (item := pages.get()) is not _END:
        if isinstance(item, BaseException):
            raise item
        yield from item
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


def _limits(spec: VendorSpec) -> Limits | None:
    """The vendor's own limits as the config gave them (``limits:``, or ``rpm:`` flat on the
    vendor, which the loader folds into one ``Limits``)."""
    found = spec.options.get("limits")
    return found if isinstance(found, Limits) else None
