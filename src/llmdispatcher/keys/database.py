"""The seam between the key store and its database: one transaction at a time, ``?`` SQL.

``open_database(url)`` picks the driver by URL scheme (``sqlite:///path.db`` or
``postgresql://...``), importing it only then. A driver migrates on first use and reports a
unique-constraint violation as ``Conflict``, whatever its own exception is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ..errors import ConfigError
from ..observability.ledger_sql import Row


class Conflict(Exception):
    """A unique constraint refused a write (the statement's transaction is rolled back)."""


class Tx(Protocol):
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its rows (none for a write without RETURNING)."""
        ...


class Database(Protocol):
    dialect: str

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Tx]:
        """Everything run on the yielded ``Tx`` commits together, or not at all."""
        ...

    async def aclose(self) -> None: ...


def open_database(url: str) -> Database:
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(url.removeprefix("sqlite:///"))
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ConfigError(  # the scheme only: the rest of a URL may hold a password
        f"key store url scheme {scheme + '://'!r}: expected sqlite:///path.db or "
        "postgresql://user@host/db"
    )
