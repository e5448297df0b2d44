"""``sqlite:///cache.db``: entries in a SQLite file, kept across restarts and shared by the
processes of one machine; the soonest to expire are evicted first.

As in ``state/sqlite.py``, one thread owns the connection and each call is one
``BEGIN IMMEDIATE`` transaction, so a put and its evictions are atomic between processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..state.sqlite import sqlite_path
from .store import Bounds, PutResult

T = TypeVar("T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_entries_expiry ON cache_entries (expires_at);
"""
_BUSY_TIMEOUT_S = 10.0


class SQLiteCacheStore:
    def __init__(self, url: str, bounds: Bounds) -> None:
        self.url = url
        self._path = sqlite_path(url)
        self._bounds = bounds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmd-cache")
        self._conn: sqlite3.Connection | None = None

    async def get(self, key: str, now: float) -> bytes | None:
        sql = "SELECT value FROM cache_entries WHERE key = ? AND expires_at > ?"

        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(sql, (key, now)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(read)

    async def put(self, key: str, value: bytes, expires_at: float, now: float) -> PutResult:
        return await self._run(lambda db: self._put(db, key, value, expires_at, now))

    def _put(
        self, db: sqlite3.Connection, key: str, value: bytes, expires_at: float, now: float
    ) -> PutResult:
        db.execute("DELETE FROM cache_entries WHERE expires_at <= ? OR key = ?", (now, key))
        stored = len(value) <= self._bounds.max_bytes
        if stored:
            db.execute(
                "INSERT INTO cache_entries (key, value, size, expires_at) VALUES (?, ?, ?, ?)",
                (key, value, len(value), expires_at),
            )
        entries, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cache_entries"
        ).fetchone()
        evicted = 0
        if entries > self._bounds.max_entries or size > self._bounds.max_bytes:
            for old, old_size in db.execute(
                "SELECT key, size FROM cache_entries ORDER BY expires_at"
            ).fetchall():
                if entries <= self._bounds.max_entries and size <= self._bounds.max_bytes:
                    break
                db.execute("DELETE FROM cache_entries WHERE key = ?", (old,))
                entries, size, evicted = entries - 1, size - old_size, evicted + 1
        return PutResult(stored, evicted, entries, size)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transaction, work
        )

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn
