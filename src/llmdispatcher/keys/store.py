"""The key store: create, read, change and revoke stored keys; team budgets; the audit trail.

::

    store = open_key_store("sqlite:///keys.db")       # or postgresql://...
    key, plaintext = await store.create({"name": "billing", "rpm": 60}, actor="cli:alice")
    await store.revoke(key.id, actor="admin")
    changes = await store.changes(since=0)            # what a gateway's cache polls

Every change writes its audit entry (who, what, when, the key's fields before and after; never
a secret) in the same transaction, and bumps the store's sequence number (``sql``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .database import Conflict, Database, Tx, open_database
from .model import (
    AuditEntry,
    DuplicateName,
    InvalidField,
    StoredKey,
    Team,
    UnknownKey,
    digest_of,
    display_prefix,
    new_id,
    new_key,
    parse_fields,
)
from .sql import (
    BUMP,
    CURRENT_SEQ,
    INSERT_AUDIT,
    INSERT_KEY,
    SELECT_AUDIT,
    SELECT_KEYS,
    SELECT_TEAMS,
    UPDATE_KEY,
    UPSERT_TEAM,
    audit_from_row,
    audit_json,
    key_from_row,
    key_row,
    team_from_row,
)


@dataclass(frozen=True, slots=True)
class Changes:
    """Keys and teams changed after sequence number ``since``, as of ``seq``. A team with no
    budget any more is listed in ``cleared_teams``."""

    seq: int
    keys: tuple[StoredKey, ...]
    teams: tuple[Team, ...]
    cleared_teams: tuple[str, ...]


class KeyStore:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self._now = clock

    # --- keys ---------------------------------------------------------------------------------
    async def create(self, fields: Mapping[str, Any], *, actor: str) -> tuple[StoredKey, str]:
        """A new key from the admin's ``fields`` (``model.parse_fields``), and its plaintext:
        the one time it exists outside the client's hands."""
        now = self._now()
        values = parse_fields(fields, now=now, creating=True)
        plaintext = new_key()
        key = StoredKey(
            id=new_id(),
            digest=digest_of(plaintext),
            prefix=display_prefix(plaintext),
            created_at=now,
            updated_at=now,
            **values,
        )
        async with self.database.transaction() as tx:
            if await tx.execute("SELECT id FROM llmd_keys WHERE name = ?", (key.name,)):
                raise DuplicateName(f"name: a key named {key.name!r} exists already")
            seq = await _bump(tx)
            try:
                await tx.execute(INSERT_KEY, (*key_row(key), seq))
            except Conflict:
                raise DuplicateName(f"name: a key named {key.name!r} exists already") from None
            await _audit(tx, now, actor, "create", key.id, None, key.public())
        return key, plaintext

    async def get(self, key_id: str) -> StoredKey:
        async with self.database.transaction(write=False) as tx:
            return await _get(tx, key_id)

    async def list_keys(
        self, *, team: str | None = None, revoked: bool | None = None
    ) -> list[StoredKey]:
        sql, params = SELECT_KEYS + " WHERE 1 = 1", []
        if team is not None:
            sql, params = sql + " AND team = ?", [team]
        if revoked is not None:
            sql += " AND revoked_at IS NOT NULL" if revoked else " AND revoked_at IS NULL"
        async with self.database.transaction(write=False) as tx:
            rows = await tx.execute(sql + " ORDER BY created_at, id", params)
        return [key_from_row(row) for row in rows]

    async def update(self, key_id: str, fields: Mapping[str, Any], *, actor: str) -> StoredKey:
        """Change the given fields of a key (not its name; a revoked key cannot change)."""
        now = self._now()
        values = parse_fields(fields, now=now, creating=False)
        async with self.database.transaction() as tx:
            before = await _get(tx, key_id)
            if before.revoked_at is not None:
                raise InvalidField("id", f"key {key_id} is revoked: create a new key instead")
            after = replace(before, updated_at=now, **values)
            await _save(tx, after)
            await _audit(tx, now, actor, "update", key_id, before.public(), after.public())
        return after

    async def revoke(self, key_id: str, *, actor: str) -> StoredKey:
        """Revoke a key (idempotent: revoking a revoked key changes nothing)."""
        now = self._now()
        async with self.database.transaction() as tx:
            before = await _get(tx, key_id)
            if before.revoked_at is not None:
                return before
            after = replace(before, revoked_at=now, updated_at=now)
            await _save(tx, after)
            await _audit(tx, now, actor, "revoke", key_id, before.public(), after.public())
        return after

    # --- teams --------------------------------------------------------------------------------
    async def set_team_budget(self, fields: Mapping[str, Any], *, actor: str) -> Team | None:
        """``{"name", "budget_usd", "budget_period"?}``; ``budget_usd: null`` removes it."""
        unknown = sorted(set(fields) - {"name", "budget_usd", "budget_period"})
        if unknown:
            raise InvalidField(
                unknown[0], "unknown field; the fields are budget_usd, budget_period"
            )
        now = self._now()
        values = parse_fields(
            {"name": fields.get("name"), **{k: v for k, v in fields.items() if k != "name"}},
            now=now,
            creating=True,
        )
        if "budget_usd" not in values:
            raise InvalidField("budget_usd", "required: dollars, or null to remove the budget")
        period = values.get("budget_period", "month")
        team = (
            None
            if values["budget_usd"] is None
            else Team(values["name"], values["budget_usd"], period)
        )
        async with self.database.transaction() as tx:
            seq = await _bump(tx)
            budget = None if team is None else str(team.budget_usd)
            await tx.execute(UPSERT_TEAM, (values["name"], budget, period, now, seq))
            after = None if team is None else team.public()
            await _audit(tx, now, actor, "team_budget", f"team:{values['name']}", None, after)
        return team

    async def teams(self) -> list[Team]:
        async with self.database.transaction(write=False) as tx:
            rows = await tx.execute(SELECT_TEAMS + " ORDER BY name")
        return [team for row in rows if (team := team_from_row(row)) is not None]

    # --- what gateways poll ------------------------------------------------------------------
    async def seq(self) -> int:
        """The sequence number of the last change (one row: cheap to poll)."""
        async with self.database.transaction(write=False) as tx:
            ((seq,),) = await tx.execute(CURRENT_SEQ)
        return int(seq)

    async def changes(self, since: int) -> Changes:
        """Keys and teams changed after ``since`` (``since=0``: everything)."""
        async with self.database.transaction(write=False) as tx:
            ((seq,),) = await tx.execute(CURRENT_SEQ)
            keys = await tx.execute(SELECT_KEYS + " WHERE seq > ?", (since,))
            teams = await tx.execute(SELECT_TEAMS + " WHERE seq > ?", (since,))
        found = [(row[0], team_from_row(row)) for row in teams]
        return Changes(
            seq=int(seq),
            keys=tuple(key_from_row(row) for row in keys),
            teams=tuple(team for _, team in found if team is not None),
            cleared_teams=tuple(name for name, team in found if team is None),
        )

    # --- the audit trail ---------------------------------------------------------------------
    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        """The latest ``limit`` admin actions, newest first."""
        async with self.database.transaction(write=False) as tx:
            rows = await tx.execute(SELECT_AUDIT, (limit,))
        return [audit_from_row(row) for row in rows]

    async def aclose(self) -> None:
        await self.database.aclose()


def open_key_store(url: str) -> KeyStore:
    """A key store at ``url`` (``sqlite:///path.db`` or ``postgresql://...``); nothing connects
    until first use."""
    return KeyStore(open_database(url))


async def _get(tx: Tx, key_id: str) -> StoredKey:
    rows = await tx.execute(SELECT_KEYS + " WHERE id = ?", (key_id,))
    if not rows:
        raise UnknownKey(f"no key with id {key_id!r} (llmdispatcher keys list shows the ids)")
    return key_from_row(rows[0])


async def _bump(tx: Tx) -> int:
    ((seq,),) = await tx.execute(BUMP)
    return int(seq)


async def _save(tx: Tx, key: StoredKey) -> None:
    seq = await _bump(tx)
    await tx.execute(UPDATE_KEY, (*key_row(key)[4:], seq, key.id))


async def _audit(
    tx: Tx,
    now: float,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await tx.execute(
        INSERT_AUDIT, (now, actor, action, target, audit_json(before), audit_json(after))
    )
