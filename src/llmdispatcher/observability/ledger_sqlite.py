"""The SQLite ledger store: the embedded default, stdlib ``sqlite3`` run in a worker thread.

One connection per store, in WAL mode (readers never block the writer, and several processes,
or several stores in one, can share the file), ``synchronous=NORMAL`` (a commit survives a crash
of the process; a power cut may lose the last few), and a busy timeout so concurrent writers
wait for each other instead of failing. Writes take the write lock up front (``BEGIN
IMMEDIATE``), so a transaction never has to upgrade a read lock and deadlock with a peer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .ledger_rollup import BACKFILL_SQL, RollupWrite
from .ledger_sql import INSERT_SQL, MIGRATIONS, MIGRATIONS_DDL, Migration, Row, Statement

T = TypeVar("T")


class SQLiteStore:
    dialect = "sqlite"

    def __init__(self, path: str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.transactions = 0
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._migrated = False
        self._lock = threading.Lock()  # one connection, used by one worker thread at a time

    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        await asyncio.to_thread(self._locked, self._migrate, migrations)

    async def write(self, rows: Sequence[Row]) -> None:
        await asyncio.to_thread(self._locked, self._write, rows)

    async def query(self, statements: Sequence[Statement]) -> list[list[Row]]:
        return await asyncio.to_thread(self._locked, self._query, statements)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    # --- in the worker thread -----------------------------------------------------------------
    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return work(self._connection(), *args)

    def _ready(self, conn: sqlite3.Connection) -> None:
        if not self._migrated:
            self._migrate(conn, MIGRATIONS)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                Path(self.path).expanduser() if self.path != ":memory:" else self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # we say BEGIN and COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
            use_wal(conn, self._busy_timeout_s)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _migrate(self, conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
        with _transaction(conn, "BEGIN IMMEDIATE"):
            conn.execute(MIGRATIONS_DDL)
            applied = {name for (name,) in conn.execute("SELECT name FROM ledger_migrations")}
            for migration in migrations:
                if migration.name in applied:
                    continue
                for statement in migration.sql(self.dialect):
                    conn.execute(statement)
                if migration.rolls_up:
                    _backfill(conn)
                conn.execute(
                    "INSERT INTO ledger_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, time.time()),
                )
        self._migrated = True

    def _write(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        self._ready(conn)
        with _transaction(conn, "BEGIN IMMEDIATE"):
            conn.executemany(INSERT_SQL, rows)
            _roll_up(conn, RollupWrite.of_rows(rows))  # in the same transaction: never apart
        self.transactions += 1

    def _query(self, conn: sqlite3.Connection, statements: Sequence[Statement]) -> list[list[Row]]:
        self._ready(conn)
        with _transaction(conn, "BEGIN"):  # one read snapshot for every statement
            return [conn.execute(sql, params).fetchall() for sql, params in statements]

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._migrated = False


def _roll_up(conn: sqlite3.Connection, rollup: RollupWrite) -> None:
    """Merge ``rollup`` into the stored rollups (the caller holds the write lock)."""
    found = [row for sql, params in rollup.lookups() for row in conn.execute(sql, params)]
    sql, values = rollup.upsert(found)
    conn.executemany(sql, values)


def _backfill(conn: sqlite3.Connection) -> None:
    """Roll up the rows already in the ledger, a chunk at a time (memory stays bounded)."""
    last = 0
    while rows := conn.execute(BACKFILL_SQL, (last,)).fetchall():
        last = rows[-1][0]
        _roll_up(conn, RollupWrite(row[1:] for row in rows))


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    """Commit what the block did, or roll it back if it raised."""
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL (a no-op once it is). Two connections converting a new file
    at once can get SQLITE_BUSY straight away (SQLite skips the busy handler where waiting
    could deadlock), so retry with backoff, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay_s)  # a worker thread, never the event loop
        delay_s = min(delay_s * 2, 0.1)
