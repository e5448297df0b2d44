"""The PostgreSQL ledger store, for teams: every replica writes to one database.

Needs psycopg 3 (``pip install 'llmdispatcher[postgres]'``, which installs ``psycopg[binary]``).
One async connection per store (the ledger writes in batches from one task, so a pool buys
nothing), reopened after a failure. A write that takes longer than ``write_timeout_s`` (a
server or network that went silent) is abandoned with its connection and fails like any other,
so the ledger moves on to keeping the records (see ``ledger``). Batches go in with
``executemany`` (psycopg pipelines the rows: one round trip per batch, not per row).
Migrations run under a transaction-scoped advisory lock, so replicas starting together
migrate once. Tables go to the connection's ``search_path``: choose a schema with
``?options=-csearch_path%3Dmyschema`` in the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .ledger_rollup import BACKFILL_SQL, RollupWrite
from .ledger_sql import INSERT_SQL, MIGRATIONS, MIGRATIONS_DDL, Migration, Row, Statement

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigError(
        "a postgresql:// ledger needs psycopg 3: pip install 'llmdispatcher[postgres]' "
        "(or pip install 'psycopg[binary]')"
    ) from exc

MIGRATION_LOCK = 0x6C6C_6D64_6C65_6467  # pg_advisory_xact_lock key: "llmdledg"
ROLLUP_LOCK = 0x6C6C_6D64_726F_6C6C  # "llmdroll": one writer at a time merges into the rollups


def _pg(sql: str) -> str:
    """Our SQL uses ``?`` placeholders (and no literal ``?`` or ``%``); psycopg wants ``%s``."""
    return sql.replace("?", "%s")


class PostgresStore:
    dialect = "postgresql"

    def __init__(
        self, url: str, *, connect_timeout_s: float = 10.0, write_timeout_s: float = 15.0
    ) -> None:
        self.url = url
        self.transactions = 0
        self._connect_timeout_s = connect_timeout_s
        self._write_timeout_s = write_timeout_s
        self._conn: psycopg.AsyncConnection[Row] | None = None
        self._migrated = False
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection

    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        async with self._lock:
            await self._migrate(await self._connection(), migrations)

    async def write(self, rows: Sequence[Row]) -> None:
        async with self._lock:
            try:
                async with asyncio.timeout(self._write_timeout_s):
                    conn = await self._ready()
                    async with conn.transaction(), conn.cursor() as cursor:
                        await cursor.executemany(_pg(INSERT_SQL), rows)
                        # never apart; summing is CPU work (~30 ms for 500 rows): not on the loop
                        rollup = await asyncio.to_thread(RollupWrite.of_rows, rows)
                        await _roll_up(conn, rollup)
            except TimeoutError:
                await self._abandon()
                raise
            self.transactions += 1

    async def _abandon(self) -> None:
        """Drop a connection a timed-out write left in an unknown state (never wait on it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()

    async def query(self, statements: Sequence[Statement]) -> list[list[Row]]:
        async with self._lock:
            conn = await self._ready()
            results: list[list[Row]] = []
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                for sql, params in statements:
                    cursor = await conn.execute(_pg(sql), params)
                    results.append(await cursor.fetchall())
            return results

    async def aclose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _connection(self) -> psycopg.AsyncConnection[Row]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
            )
        return self._conn

    async def _ready(self) -> psycopg.AsyncConnection[Row]:
        conn = await self._connection()
        if not self._migrated:
            await self._migrate(conn, MIGRATIONS)
        return conn

    async def _migrate(
        self, conn: psycopg.AsyncConnection[Row], migrations: Sequence[Migration]
    ) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(MIGRATIONS_DDL)
            cursor = await conn.execute("SELECT name FROM ledger_migrations")
            applied = {row[0] for row in await cursor.fetchall()}
            for migration in migrations:
                if migration.name not in applied:
                    await _apply(conn, migration, self.dialect)
        self._migrated = True


async def _roll_up(conn: psycopg.AsyncConnection[Any], rollup: RollupWrite) -> None:
    """Merge ``rollup`` into the stored rollups, replicas one at a time (the lock is held to
    the commit: a read-merge-write of two replicas at once would lose one's counts)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
    found: list[Row] = []
    for sql, params in rollup.lookups():
        cursor = await conn.execute(_pg(sql), params)
        found += await cursor.fetchall()
    sql, values = await asyncio.to_thread(rollup.upsert, found)  # decoding, merging: CPU
    async with conn.cursor() as cursor:
        await cursor.executemany(_pg(sql), values)


async def _backfill(conn: psycopg.AsyncConnection[Any]) -> None:
    """Roll up the rows already in the ledger, a chunk at a time (memory stays bounded)."""
    last = 0
    while True:
        cursor = await conn.execute(_pg(BACKFILL_SQL), (last,))
        rows = await cursor.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        await _roll_up(conn, RollupWrite(row[1:] for row in rows))


async def _apply(conn: psycopg.AsyncConnection[Any], migration: Migration, dialect: str) -> None:
    for statement in migration.sql(dialect):
        await conn.execute(statement)
    if migration.rolls_up:
        await _backfill(conn)
    await conn.execute(
        "INSERT INTO ledger_migrations (name, applied_at) VALUES (%s, %s)",
        (migration.name, time.time()),
    )
