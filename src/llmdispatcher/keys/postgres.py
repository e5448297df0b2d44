"""The key store in PostgreSQL, for replicas: every gateway reads and polls one database.

psycopg 3 (``pip install 'llmdispatcher[postgres]'``), one async connection (admin changes are
rare and the gateways only poll), reopened after a failure. Migrations run under an advisory
lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ..errors import ConfigError
from ..observability.ledger_sql import Row
from .database import Conflict, Tx
from .sql import MIGRATIONS, MIGRATIONS_DDL

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigError(
        "a postgresql:// key store needs psycopg 3: pip install 'llmdispatcher[postgres]'"
    ) from exc

MIGRATION_LOCK = 0x6C6C_6D64_6B65_7973  # pg_advisory_xact_lock key: "llmdkeys"


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[Row] | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        async with self._lock:
            conn = await self._connection()
            async with conn.transaction():
                yield _PostgresTx(conn)

    async def aclose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _connection(self) -> psycopg.AsyncConnection[Row]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
            )
            await _migrate(conn)
            self._conn = conn
        return self._conn


class _PostgresTx:
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            cursor = await self._conn.execute(sql.replace("?", "%s"), tuple(params))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc
        return await cursor.fetchall() if cursor.description else []


async def _migrate(conn: psycopg.AsyncConnection[Row]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(MIGRATIONS_DDL)
        cursor = await conn.execute("SELECT name FROM llmd_key_migrations")
        applied = {row[0] for row in await cursor.fetchall()}
        for migration in MIGRATIONS:
            if migration.name in applied:
                continue
            for statement in migration.sql("postgresql"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO llmd_key_migrations (name, applied_at) VALUES (%s, %s)",
                (migration.name, time.time()),
            )
