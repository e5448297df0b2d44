"""The ledger: one row per finished request, in SQLite (the default) or PostgreSQL.

::

    ledger = open_ledger("sqlite:///ledger.db")     # or "postgresql://user@host/db"
    dispatcher.subscribe(ledger.on_event)
    ...
    stats = await ledger.stats(since=time.time() - 3600)
    await ledger.aclose()                           # writes what is still buffered

The request path only appends to an in-memory buffer: ``on_event`` is O(1) and does no I/O. A
writer task, started on the running loop by the first record, commits batches of up to
``batch_size`` rows, one transaction each, as soon as ``batch_size`` records wait or
``flush_interval_s`` after the first one, whichever comes first. ``flush()`` returns once
everything recorded before it is committed. A Ledger lives on one event loop: ``flush``,
``stats`` and ``aclose`` called from another loop are carried over to it.

**When the database is down** (PostgreSQL stopped, the SQLite disk full or the file locked) the
request path is unaffected; the writer keeps the records and retries with backoff (1 s doubling
to 30 s), logging one warning when writes start failing and one when they succeed again. Once
``max_buffer // 2`` records wait in memory (9/10 while writes only lag), they move to a spill file
(``spill_dir``, by default beside an SQLite ledger or under
``$XDG_STATE_HOME/llmdispatcher/ledger-spill/<database>/``) of at most ``max_spill_bytes``; when
the database answers again the spilled rows are written after the buffered ones, and a file left
by a process that died is adopted by the next ledger writing to the same database. What neither
holds is dropped and counted (``ledger.dropped``, logged once per outage): memory and disk stay
bounded. ``ledger.spilled`` and ``ledger.replayed`` count rows that went through the file.

Privacy: rows hold no message contents unless ``log_content=True`` (then the messages' text and
the answer, scrubbed of the registered secrets); the key column holds a key's id or hash, never
the key.

Schema, migrations and the statistics SQL (shared by both backends) live in ``ledger_sql``;
the drivers in ``ledger_sqlite`` (stdlib ``sqlite3`` in a thread, WAL) and ``ledger_postgres``
(psycopg 3, async; ``pip install 'llmdispatcher[postgres]'``), imported only when a URL asks.
Cost is ``Decimal`` USD; see ``ledger_sql`` for how it is stored, and ``ledger_rollup`` for the
per-minute/hour/day rollups that statistics over long windows read (percentiles within 1 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ..redaction import redact
from ..types import Attempt
from .events import Event, RequestFinished
from .ledger_detail import detail_json
from .ledger_rollup import fold_window, window_statements
from .ledger_spill import SpillFile
from .ledger_sql import (
    MIGRATIONS,
    NANO,
    GroupStats,
    LedgerStats,
    Migration,
    Row,
    Statement,
    fold_stats,
    stats_statements,
)

__all__ = [
    "MIGRATIONS",
    "GroupStats",
    "Ledger",
    "LedgerRecord",
    "LedgerStats",
    "LedgerStore",
    "Migration",
    "RecordExtra",
    "extra_from_event",
    "open_ledger",
    "open_store",
]

if TYPE_CHECKING:
    from ..routing.model import RoutingDecision

T = TypeVar("T")
MAX_RETRY_AFTER_S = 30.0  # the longest pause between tries while the database is down
MAX_SPILL_BYTES = 256 * 2**20
REPLAY_BATCHES = 2  # spill-file batches the writer replays between looks at new records
SQLITE_FULL = 13  # sqlite3.OperationalError.sqlite_errorcode of "database or disk is full"
# A window of at most this many requests gets exact percentiles from its rows (the exact
# statements cost ~50 us a row on SQLite: 1,200 rows took 64 ms); a larger one, sketch
# percentiles from the rollups (see ``stats``).
EXACT_ROWS = 500
logger = logging.getLogger("llmdispatcher.ledger")


# --- the record ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordExtra:
    """The ledger fields beyond the event's basics: ``extra_from_event`` reads them off a
    ``RequestFinished``; a caller that knows more (the gateway: the key's id) passes its own."""

    group: str | None = None
    deployment: str | None = None
    api_key_id: str | None = None
    cost_usd: Decimal | None = None
    price_version: str | None = None
    fallbacks: int = 0
    output: str | None = None  # the answer's text, kept only with log_content


def extra_from_event(event: RequestFinished) -> RecordExtra:
    """The extra fields as the event carries them."""
    return RecordExtra(
        group=event.group,
        deployment=event.deployment,
        api_key_id=_text(event.api_key_id),
        cost_usd=_decimal(event.cost_usd),
        price_version=event.price_version,
        fallbacks=event.fallbacks,
        output=_text(event.output_text),
    )


@dataclass(slots=True)
class LedgerRecord:
    """One finished request. ``ts`` is wall-clock epoch seconds at the finish; ``status`` is
    ``ok``, ``error`` or ``cancelled``; ``api_key_id`` is a key's id or hash, never a secret;
    ``messages`` (JSON) and ``output`` are None unless contents logging is on. Treat it as a
    value (the ledger never changes one; building a frozen dataclass of 23 fields takes ~4 us
    on CPython 3.11, this one ~1 us)."""

    ts: float
    request_id: str
    status: str
    latency_s: float
    user: str | None = None
    api_key_id: str | None = None
    model_group: str | None = None
    vendor: str | None = None
    deployment: str | None = None
    model: str | None = None
    error_type: str | None = None
    stream: bool = False
    attempts: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None
    ttft_s: float | None = None
    price_version: str | None = None
    messages: str | None = None
    output: str | None = None
    api_key_name: str | None = None
    team: str | None = None
    finish_reason: str | None = None  # why the answer ended (a stream's, as its last chunk said)
    tool_calls: int = 0  # how many tool calls the answer made
    # The tries and the routing decision, turned into the ``detail`` JSON by the writer.
    attempt_list: tuple[Attempt, ...] = ()
    routing: RoutingDecision | None = None
    cache: str | None = None  # with a response cache: hit | miss | bypass
    saved_tokens: int = 0  # a cache hit: the tokens the first answer used
    saved_cost_usd: Decimal | None = None  # a cache hit: what the first answer cost

    @classmethod
    def from_event(
        cls,
        event: RequestFinished,
        extra: RecordExtra | None = None,
        *,
        at: float,
        log_content: bool = False,
        scrub: Callable[[str], str] = str,
    ) -> LedgerRecord:
        """The row for ``event``, finished at wall time ``at``; ``extra`` defaults to
        ``extra_from_event(event)``."""
        extra = extra or extra_from_event(event)
        usage = event.usage
        tags = event.request.metadata or {}  # the gateway's: the key's id, name and team
        return cls(
            ts=at,
            request_id=event.request_id,
            status=_status(event.error),
            latency_s=event.latency_s,
            user=event.request.user,
            api_key_id=_text(tags.get("api_key_id")) or extra.api_key_id,
            model_group=extra.group,
            vendor=event.vendor,
            deployment=extra.deployment,
            model=event.model or event.request.model,
            error_type=event.error,
            stream=event.stream,
            attempts=len(event.attempts),
            fallbacks=extra.fallbacks,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            cost_usd=extra.cost_usd,
            ttft_s=event.ttft_s,
            price_version=extra.price_version,
            messages=scrub(_messages_json(event)) if log_content else None,
            output=scrub(extra.output) if log_content and extra.output is not None else None,
            api_key_name=_text(tags.get("api_key")),
            team=_text(tags.get("team")),
            finish_reason=event.finish_reason,
            tool_calls=len(event.tool_calls),
            attempt_list=event.attempts,
            routing=event.routing,
            cache=event.cache,
            saved_tokens=event.saved_usage.total_tokens if event.saved_usage else 0,
            saved_cost_usd=_decimal(event.saved_cost_usd),
        )

    def as_row(self) -> Row:
        """The values in ``COLUMNS`` order."""
        nano, saved_nano = nano_usd(self.cost_usd), nano_usd(self.saved_cost_usd)
        return (
            self.ts, self.request_id, self.user, self.api_key_id, self.model_group, self.vendor,
            self.deployment, self.model, self.status, self.error_type, int(self.stream),
            self.attempts, self.fallbacks, self.prompt_tokens, self.completion_tokens,
            self.cached_tokens, self.reasoning_tokens, nano, self.latency_s, self.ttft_s,
            self.price_version, self.messages, self.output, self.api_key_name, self.team,
            self.finish_reason, self.tool_calls, detail_json(self.attempt_list, self.routing),
            self.cache, self.saved_tokens, saved_nano,
        )  # fmt: skip


def _status(error: str | None) -> str:
    if error is None:
        return "ok"
    return "cancelled" if error == "cancelled" else "error"


def _messages_json(event: RequestFinished) -> str:
    messages = [{"role": m.role, "content": m.text} for m in event.request.message_list]
    return orjson.dumps(messages).decode()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def nano_usd(cost: float | Decimal | None) -> int | None:
    """A cost as the ledger stores it: whole billionths of a dollar (half to even)."""
    value = _decimal(cost)
    return None if value is None else int((value * NANO).to_integral_value(ROUND_HALF_EVEN))


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))  # the float's shortest repr, not its binary expansion
    return None


class LedgerStore(Protocol):
    """Where rows go: ``SQLiteStore`` or ``PostgresStore``, chosen by ``open_store(url)``.
    SQL reaches a store with ``?`` placeholders; each store adapts them to its driver."""

    dialect: str  # "sqlite" or "postgresql"
    transactions: int  # write transactions committed so far (batching is measured with it)

    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Connect and apply the missing ``migrations`` (every other call opens lazily)."""
        ...

    async def write(self, rows: Sequence[Row]) -> None:
        """Insert ``rows`` (``COLUMNS`` order) in one transaction."""
        ...

    async def query(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Run read-only ``statements`` in one snapshot; the rows of each."""
        ...

    async def aclose(self) -> None: ...


def open_store(url: str) -> LedgerStore:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` or
    ``postgresql://user@host:5432/db`` (any libpq URL; ``postgres://`` too)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        from .ledger_sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if scheme in ("postgresql", "postgres"):
        from .ledger_postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(  # the scheme only: the rest of a URL may hold a password
        f"ledger url scheme {scheme + '://'!r}: expected sqlite:///path.db or "
        "postgresql://user@host/db"
    )


@dataclass(frozen=True, slots=True)
class Writing:
    """How the ledger writes: ``batch_size`` records per transaction, none waiting longer than
    ``flush_interval_s``; at most ``max_buffer`` waiting in memory (then the spill file); after
    a failed write, retries from ``retry_after_s`` doubling to ``max_retry_after_s``."""

    batch_size: int = 500
    # 1 s, not less: each transaction also rewrites the rollup rows of every group its rows
    # touch (ledger_rollup.py), a cost per batch, so small batches cost many times more per
    # record. Readers lose nothing: stats() and select() flush first.
    flush_interval_s: float = 1.0
    max_buffer: int = 100_000
    retry_after_s: float = 1.0
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_buffer < 1 or self.flush_interval_s < 0:
            raise ConfigError("ledger: batch_size and max_buffer must be >= 1, interval >= 0")


DEFAULT_WRITING = Writing()


def open_ledger(
    url: str,
    *,
    log_content: bool = False,
    secrets: Callable[[], Iterable[str]] | None = None,
    writing: Writing = DEFAULT_WRITING,
    spill_dir: str | Path | None = None,
    max_spill_bytes: int = MAX_SPILL_BYTES,
    clock: Clock | None = None,
) -> Ledger:
    """A ledger writing to ``url`` (see ``open_store``). Nothing connects until first use;
    ``async with open_ledger(url) as ledger`` connects and migrates at once. ``spill_dir``
    defaults to ``default_spill_dir(url)``; ``max_spill_bytes=0`` turns spilling off."""
    spill = spill_dir or default_spill_dir(url)
    return Ledger(
        open_store(url),
        log_content=log_content,
        secrets=secrets,
        writing=writing,
        spill=SpillFile(Path(spill), max_spill_bytes) if spill and max_spill_bytes > 0 else None,
        clock=clock,
    )


def default_spill_dir(url: str) -> Path | None:
    """``<file>.spill/`` beside an SQLite ledger; for PostgreSQL a directory per database
    (named by a hash of its URL, so a spill never reaches another database) under
    ``$XDG_STATE_HOME/llmdispatcher`` (``~/.local/state/llmdispatcher``)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return None if path == ":memory:" else Path(path + ".spill").expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    parts = urlsplit(url)  # named without the password: the name must not help guess it
    public = parts._replace(netloc=parts.netloc.rpartition("@")[2], query="")
    where = f"{parts.username}@{urlunsplit(public)}?{parts.query}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return Path(state_home) / "llmdispatcher" / "ledger-spill" / digest


def _explain(exc: Exception) -> str:
    """The cause in a few words; a full disk said as such (its fix is not the database's)."""
    full = getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    )
    text = f"{type(exc).__name__}: {exc}"
    return f"the disk is full ({text}); free space on it" if full else text


# --- the ledger ------------------------------------------------------------------------------
class Ledger:
    """Subscribe ``ledger.on_event`` to a dispatcher; read with ``await ledger.stats()``."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        log_content: bool = False,
        secrets: Callable[[], Iterable[str]] | None = None,
        writing: Writing = DEFAULT_WRITING,
        spill: SpillFile | None = None,
        clock: Clock | None = None,
        exact_rows: int = EXACT_ROWS,
    ) -> None:
        self.store = store
        self.exact_rows = exact_rows
        self.log_content = log_content
        self.dropped = 0  # records lost: memory buffer and spill file both full
        self.spilled = 0  # records moved to the spill file
        self.replayed = 0  # records written from the spill file to the database
        self._spill = spill
        self._spill_waiting = spill is not None  # rows may wait in a spill file (an orphan's)
        self._failing_since: float | None = None  # Clock.now() of the first failed write
        self._last_error = ""
        self._dropping = False  # the drop warning of this outage has been logged
        self._secrets = secrets
        self._batch_size = writing.batch_size
        self._interval_s = writing.flush_interval_s
        self._max_buffer = writing.max_buffer
        self._retry_after_s = writing.retry_after_s
        self._max_retry_after_s = writing.max_retry_after_s
        self._clock: Clock = clock or SystemClock()
        self._buffer: deque[LedgerRecord] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._spiller: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pending(self) -> int:
        """Records buffered, not yet committed."""
        return len(self._buffer)

    # --- the request path: O(1), no I/O, never raises -----------------------------------------
    def on_event(self, event: Event) -> None:
        """A dispatcher subscriber: queues a record for every ``RequestFinished``."""
        if not isinstance(event, RequestFinished):
            return
        try:
            self.record_event(event)
        except Exception:  # a subscriber must never fail the request it observes
            self.dropped += 1
            logger.exception("ledger: could not record request %s", event.request_id)

    def record_event(self, event: RequestFinished, extra: RecordExtra | None = None) -> None:
        """Queue the record of ``event``, stamped now, with this ledger's contents setting;
        ``extra`` supplies fields the event lacks (default: ``extra_from_event``)."""
        self.record(
            LedgerRecord.from_event(
                event, extra, at=self._clock.wall(), log_content=self.log_content, scrub=self._scrub
            )
        )

    def record(self, record: LedgerRecord) -> None:
        """Queue one record for the writer."""
        if self._closed or len(self._buffer) >= self._max_buffer:
            self._drop(1)
            return
        self._buffer.append(record)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None  # no loop here: the writer's loop, or else flush(), writes it
        loop = self._live_loop()
        if loop is None:
            if running is None:
                return
            loop = self._start_writer(running)
        if running is loop:
            self._signal()
        else:
            loop.call_soon_threadsafe(self._signal)

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets()) if self._secrets else text

    def _signal(self) -> None:
        self._wake.set()
        if len(self._buffer) >= self._batch_size:
            self._full.set()
        spilling = self._spiller is not None and not self._spiller.done()
        if self._spill is not None and not spilling and self._should_spill():
            # Its own task: a writer stuck on a silent database must not hold records back.
            self._spiller = asyncio.get_running_loop().create_task(self._spill_buffer())

    def _should_spill(self) -> bool:
        """Half the buffer while writes fail; nearly all of it while they merely lag (a
        database that is up but slower than the traffic, or a write hanging on one gone
        silent): records move to the file only when memory alone would not hold them."""
        waiting = len(self._buffer)
        if self._failing_since is not None:
            return waiting >= self._max_buffer // 2
        return waiting >= self._max_buffer * 9 // 10

    def _drop(self, count: int) -> None:
        if not self._dropping:
            self._dropping = True
            logger.warning(
                "ledger: memory buffer (%d records) and spill file full or unwritable: dropping "
                "records until the database answers (ledger.dropped counts them)",
                self._max_buffer,
            )
        self.dropped += count

    # --- the writer ---------------------------------------------------------------------------
    def _live_loop(self) -> asyncio.AbstractEventLoop | None:
        """The writer's loop while it runs (a closed or stopped one is replaced)."""
        loop = self._loop
        return loop if loop is not None and loop.is_running() else None

    def _start_writer(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        self._loop = loop
        self._wake, self._full, self._lock = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        self._writer = loop.create_task(self._write_loop(), name="llmdispatcher-ledger")
        return loop

    async def _write_loop(self) -> None:
        backoff_s = self._retry_after_s
        while True:
            if not self._buffer and not self._spill_waiting:
                self._wake.clear()
                await self._wake.wait()
            if len(self._buffer) < self._batch_size and not self._spill_waiting:
                self._full.clear()
                with contextlib.suppress(TimeoutError):  # (wait_for may swallow a cancel)
                    async with asyncio.timeout(self._interval_s):
                        await self._full.wait()
            try:
                await self._drain(REPLAY_BATCHES)
            except Exception as exc:  # the database is down, full or locked: keep the rows
                self._write_failed(exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._max_retry_after_s)
            else:
                backoff_s = self._retry_after_s

    async def _drain(self, replay_batches: int | None = None) -> None:
        """Write the buffer, then the spill file (at most ``replay_batches`` of it, so the
        writer gets back to new records soon; ``None``: all of it)."""
        async with self._lock:
            left = len(self._buffer)  # what was there: under load, more always arrives
            while left > 0 and self._buffer:
                count = min(len(self._buffer), self._batch_size, left)
                left -= count
                batch = [self._buffer.popleft() for _ in range(count)]
                try:
                    await self.store.write([r.as_row() for r in batch])
                except Exception:
                    self._buffer.extendleft(reversed(batch))
                    raise
            self._written()
            if self._spill_waiting:
                await self._replay(replay_batches)

    async def _replay(self, batches: int | None) -> None:
        """Write what waits in the spill file, a batch (one transaction) at a time."""
        assert self._spill is not None
        while batches is None or batches > 0:
            rows = await asyncio.to_thread(self._spill.read, self._batch_size)
            if not rows:
                self._spill_waiting = False
                return
            await self.store.write(rows)
            await asyncio.to_thread(self._spill.commit)
            self.replayed += len(rows)
            batches = None if batches is None else batches - 1

    async def _spill_buffer(self) -> None:
        """Move every buffered record to the spill file (what it cannot take is dropped), and
        again while records that arrived meanwhile call for it: the last ones of a burst must
        not wait for a next record that may never come."""
        first = True
        while self._spill is not None and self._buffer and (first or self._should_spill()):
            first = False
            rows = [record.as_row() for record in self._buffer]
            self._buffer.clear()
            try:
                kept = await asyncio.to_thread(self._spill.append, rows)
            except OSError as exc:
                logger.warning("ledger: cannot write the spill file %s: %s", self._spill.path, exc)
                kept = 0
            self.spilled += kept
            self._spill_waiting = self._spill_waiting or kept > 0
            if kept < len(rows):
                self._drop(len(rows) - kept)

    def write_error(self) -> str | None:
        """Why writes fail now, and since when (``None`` while they succeed)."""
        if self._failing_since is None:
            return None
        failing_s = self._clock.now() - self._failing_since
        return f"writes failing for {failing_s:.1f}s: {self._last_error}"

    def _write_failed(self, exc: Exception, retry_s: float) -> None:
        self._last_error = _explain(exc)
        if self._failing_since is not None:
            logger.debug("ledger: write failed again (%s); next try in %gs", exc, retry_s)
            return
        self._failing_since = self._clock.now()
        where = getattr(self.store, "path", None) or f"the {self.store.dialect} database"
        spill = self._spill.path.parent if self._spill is not None else None
        logger.warning(
            "ledger: cannot write to %s: %s; requests are served and their records kept "
            "(%d in memory, up to %d, then in %s); retrying every %g-%gs",
            where,
            _explain(exc),
            self.pending,
            self._max_buffer,
            spill or "no spill file: dropped",
            retry_s,
            self._max_retry_after_s,
        )

    def _written(self) -> None:
        if self._failing_since is None:
            return
        logger.warning(
            "ledger: the database accepts writes again after %.1fs; the records kept meanwhile "
            "follow (%d in the spill file; %d dropped in all)",
            self._clock.now() - self._failing_since,
            self.spilled - self.replayed,
            self.dropped,
        )
        self._failing_since = None
        self._dropping = False

    async def _on_writer_loop(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        running = asyncio.get_running_loop()
        loop = self._live_loop() or self._start_writer(running)
        if loop is running:
            return await work()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), loop))

    # --- the public async API -----------------------------------------------------------------
    async def open(self) -> None:
        """Connect and migrate now (otherwise the first write or query does)."""
        await self._on_writer_loop(self.store.open)

    async def flush(self) -> None:
        """Commit everything recorded so far; raises the store's error if it cannot."""
        await self._on_writer_loop(self._drain)

    async def stats(self, since: float | None = None) -> LedgerStats:
        """Totals and per vendor / model / user groups of the rows with ``ts >= since``
        (epoch seconds), over every writer of this database. Flushes first.

        Read from the rollups (``ledger_rollup``): sums exact, percentiles within 1 % of the
        exact nearest-rank ones. A window of at most ``exact_rows`` requests is read again
        from its rows, for exact percentiles, which costs little at that size. Every reader
        (``llmdispatcher stats``, the dashboard) comes through here, so they agree."""
        await self.flush()
        statements = window_statements(since)
        rolled = fold_window(
            since, await self._on_writer_loop(lambda: self.store.query(statements))
        )
        if rolled.totals.requests > self.exact_rows:
            return rolled
        results = await self._on_writer_loop(lambda: self.store.query(stats_statements(since)))
        return fold_stats(since, results)

    async def select(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """The rows each read-only statement (``?`` placeholders) selects, after a flush: what
        the dashboard reads the ledger with."""
        await self.flush()
        return await self._on_writer_loop(lambda: self.store.query(statements))

    async def aclose(self) -> None:
        """Write what is buffered, stop the writer, close the connection. Idempotent; records
        arriving afterwards are dropped. Raises the store's error if the last write fails."""
        if self._closed:
            return
        self._closed = True
        await self._on_writer_loop(self._stop)

    async def _stop(self) -> None:
        writer, self._writer = self._writer, None
        if self._spiller is not None:
            await self._spiller
        if writer is not None:
            async with self._lock:  # never cancel a write half-way
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        try:
            await self._drain()
        except Exception:
            if self._spill is None:
                raise
            await self._spill_buffer()  # the next ledger on this database writes them
        finally:
            if self._spill is not None:
                await asyncio.to_thread(self._spill.close)
            await self.store.aclose()

    async def __aenter__(self) -> Ledger:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
