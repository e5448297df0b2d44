"""The key store in SQLite (the default: the data directory's database), stdlib ``sqlite3``.

One connection, used from worker threads one statement at a time under an ``asyncio.Lock``
held for the whole transaction, and a ``threading.Lock`` held by the thread that runs a
statement (a cancelled caller stops waiting, but its statement still runs to the end: the
rollback, or closing the connection, waits for it instead of racing it); WAL and a busy
timeout as the ledger does, so the CLI, the gateway and the ledger can share the file.
Writes begin with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..observability.ledger_sql import Row
from ..observability.ledger_sqlite import use_wal
from .database import Conflict, Tx
from .sql import MIGRATIONS, MIGRATIONS_DDL


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._using = threading.Lock()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        async with self._lock:
            conn = self._conn
            if conn is None:
                conn = await asyncio.to_thread(self._connect)
            tx = _SQLiteTx(conn, self._using)
            await tx.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield tx
            except BaseException:
                await tx.execute("ROLLBACK")
                raise
            await tx.execute("COMMIT")

    async def aclose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await asyncio.to_thread(self._close, self._conn)
                self._conn = None

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._using:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        path: str | Path = self.path
        if self.path != ":memory:":
            path = Path(self.path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if self.path != ":memory:":
            use_wal(conn, self._busy_timeout_s)
        conn.execute("PRAGMA synchronous=NORMAL")
        _migrate(conn)
        self._conn = conn
        return conn


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection, using: threading.Lock) -> None:
        self._conn = conn
        self._using = using

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await asyncio.to_thread(self._run, sql, params)

    def _run(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._using:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.IntegrityError as exc:
                raise Conflict(str(exc)) from exc


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(MIGRATIONS_DDL)
        applied = {name for (name,) in conn.execute("SELECT name FROM llmd_key_migrations")}
        for migration in MIGRATIONS:
            if migration.name in applied:
                continue
            for statement in migration.sql("sqlite"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO llmd_key_migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, time.time()),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
