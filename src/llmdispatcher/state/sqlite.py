"""``sqlite:///path.db``: state in a SQLite file — survives restarts, shared by processes on one
machine.

URLs follow SQLAlchemy: ``sqlite:///state.db`` is relative to the working directory,
``sqlite:////var/lib/llmd/state.db`` is absolute.

All work runs on one dedicated thread that owns the connection (sqlite3 blocks; the event loop
must not). Each primitive is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before
the first read, so a check-and-add cannot interleave with another process's. The database is in
WAL mode (readers never block the writer) with ``synchronous=NORMAL`` (a power cut may lose the
last transactions, never corrupt the file) and a busy timeout for lock waits between processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import StateError
from .base import AddResult, BackendBase, CounterAdd, LeaseResult, check_adds, is_live

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key TEXT NOT NULL, holder TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;
"""
_SWEEP_EVERY = 1024  # writes between deletions of expired rows
_BUSY_TIMEOUT_MS = 10_000


def sqlite_path(url: str) -> str:
    """``sqlite:///a.db`` → ``a.db``; ``sqlite:////tmp/a.db`` → ``/tmp/a.db``."""
    prefix = "sqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else ""
    if not path:
        raise ValueError(
            f"state_url {url!r}: expected sqlite:///relative/path.db or sqlite:////absolute.db"
        )
    return path


class SQLiteState(BackendBase):
    def __init__(self, url: str) -> None:
        self.url = url
        self._path = sqlite_path(url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmd-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._writes = 0

    async def add_within(self, adds: Sequence[CounterAdd], now: float) -> AddResult:
        check_adds(adds)
        return await self._run(lambda db: self._add_within(db, adds, now))

    async def adjust(self, key: str, delta: int, now: float) -> int | None:
        return await self._run(lambda db: self._adjust(db, key, delta, now))

    async def get(self, keys: Sequence[str], now: float) -> tuple[int, ...]:
        return await self._run(lambda db: tuple(self._value(db, key, now) for key in keys))

    async def acquire_lease(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> LeaseResult:
        return await self._run(lambda db: self._acquire(db, key, holder, limit, now, expires_at))

    async def renew_lease(self, key: str, holder: str, now: float, expires_at: float) -> bool:
        sql = "UPDATE leases SET expires_at = ? WHERE key = ? AND holder = ? AND expires_at > ?"
        return await self._run(
            lambda db: db.execute(sql, (expires_at, key, holder, now)).rowcount > 0
        )

    async def release_lease(self, key: str, holder: str) -> bool:
        sql = "DELETE FROM leases WHERE key = ? AND holder = ?"
        return await self._run(lambda db: db.execute(sql, (key, holder)).rowcount > 0)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    # -- on the database thread ---------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise StateError(f"SQLite state {self._path!r}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        """Open and set up the file. Switching a new file to WAL answers "busy" at once (no
        busy handler) while another process does the same, so setup is retried for a while."""
        if self._conn is not None:
            return self._conn
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            conn = sqlite3.connect(
                self._path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SCHEMA)
            except sqlite3.OperationalError as exc:
                conn.close()
                busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)  # on the database thread, never the event loop
                delay = min(delay * 2, 0.2)
                continue
            self._conn = conn
            return conn

    def _row(self, db: sqlite3.Connection, key: str, now: float) -> tuple[int, float | None] | None:
        row: tuple[int, float | None] | None = db.execute(
            "SELECT value, expires_at FROM counters WHERE key = ?", (key,)
        ).fetchone()
        return row if row is not None and is_live(row[1], now) else None

    def _value(self, db: sqlite3.Connection, key: str, now: float) -> int:
        row = self._row(db, key, now)
        return 0 if row is None else row[0]

    def _add_within(
        self, db: sqlite3.Connection, adds: Sequence[CounterAdd], now: float
    ) -> AddResult:
        rows = [self._row(db, add.key, now) for add in adds]
        current = tuple(0 if row is None else row[0] for row in rows)
        if any(
            add.limit is not None and value + add.amount > add.limit
            for add, value in zip(adds, current, strict=True)
        ):
            return AddResult(ok=False, values=current)
        for add, row in zip(adds, rows, strict=True):
            if row is None:
                db.execute(
                    "INSERT OR REPLACE INTO counters (key, value, expires_at) VALUES (?, ?, ?)",
                    (add.key, add.amount, add.expires_at),
                )
            else:
                db.execute(
                    "UPDATE counters SET value = value + ? WHERE key = ?", (add.amount, add.key)
                )
        self._count_write(db, now)
        return AddResult(
            ok=True, values=tuple(v + a.amount for v, a in zip(current, adds, strict=True))
        )

    def _adjust(self, db: sqlite3.Connection, key: str, delta: int, now: float) -> int | None:
        row = self._row(db, key, now)
        if row is None:
            return None
        db.execute("UPDATE counters SET value = value + ? WHERE key = ?", (delta, key))
        return row[0] + delta

    def _acquire(
        self, db: sqlite3.Connection, key: str, holder: str, limit: int, now: float, expires: float
    ) -> LeaseResult:
        db.execute("DELETE FROM leases WHERE key = ? AND expires_at <= ?", (key, now))
        leases = dict(db.execute("SELECT holder, expires_at FROM leases WHERE key = ?", (key,)))
        acquired = holder in leases or len(leases) < limit
        if acquired:
            db.execute(
                "INSERT OR REPLACE INTO leases (key, holder, expires_at) VALUES (?, ?, ?)",
                (key, holder, expires),
            )
            leases[holder] = expires
        return LeaseResult(acquired, len(leases), min(leases.values(), default=None))

    def _count_write(self, db: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            db.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
