"""Stored Responses API answers (``store: true``), so ``previous_response_id`` can continue a
conversation and ``GET``/``DELETE /v1/responses/{id}`` can find one.

They live in the key store's database (``llmd_responses``, migration ``002_create_responses``):
SQLite by default, PostgreSQL when replicas share one. Each row belongs to the key that created
it (``owner``): a read or delete by another key finds nothing, exactly as if the id did not
exist, so ids cannot be probed across keys. A row expires ``retention_s`` after it was written;
expired rows are never returned and are deleted by the next write.

``context`` is the whole conversation up to and including this answer, as Responses input
items (without ``instructions``, which OpenAI does not carry over either), so continuing a
chain reads one row whatever its length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .database import Database, open_database

Item = dict[str, Any]
SELECT = (
    "SELECT id, owner, created_at, body, input_items, context FROM llmd_responses "
    "WHERE id = ? AND owner = ? AND expires_at > ?"
)
INSERT = (
    "INSERT INTO llmd_responses (id, owner, created_at, expires_at, body, input_items, context) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE = "DELETE FROM llmd_responses WHERE id = ? AND owner = ? AND expires_at > ? RETURNING id"
PURGE = "DELETE FROM llmd_responses WHERE expires_at <= ?"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored answer: the response object as the API returned it, the input items of its
    request, and the conversation through it (``context``)."""

    id: str
    owner: str
    created_at: float
    body: Item
    input_items: list[Item]
    context: list[Item]


class ResponseStore:
    def __init__(
        self,
        database: Database,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.retention_s = retention_s
        self._now = clock

    async def save(self, response: StoredResponse) -> None:
        now = self._now()
        row = (
            response.id,
            response.owner,
            response.created_at,
            now + self.retention_s,
            _json(response.body),
            _json(response.input_items),
            _json(response.context),
        )
        async with self.database.transaction() as tx:
            await tx.execute(PURGE, (now,))
            await tx.execute(INSERT, row)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The answer, or None when it does not exist, expired, or is another key's."""
        async with self.database.transaction(write=False) as tx:
            rows = await tx.execute(SELECT, (response_id, owner, self._now()))
        if not rows:
            return None
        id_, owner_, created, body, items, context = rows[0]
        return StoredResponse(
            id_, owner_, created, orjson.loads(body), orjson.loads(items), orjson.loads(context)
        )

    async def delete(self, response_id: str, owner: str) -> bool:
        """Whether there was such an answer (of this owner) to delete."""
        async with self.database.transaction() as tx:
            rows = await tx.execute(DELETE, (response_id, owner, self._now()))
        return bool(rows)

    async def aclose(self) -> None:
        await self.database.aclose()


def open_response_store(url: str, retention_s: float) -> ResponseStore:
    """A store of its own at ``url`` (``sqlite:///:memory:`` for a gateway without a key
    store); nothing connects until first use."""
    return ResponseStore(open_database(url), retention_s)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
