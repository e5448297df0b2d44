"""The key store's schema, its named migrations and the row <-> value mapping.

Tables (prefixed ``llmd_`` so they can share a database with the ledger)::

    llmd_key_migrations (name PRIMARY KEY, applied_at)      which migrations ran
    llmd_key_sequence   (id = 1, seq)                       bumped by every change
    llmd_keys           (id, name UNIQUE, digest UNIQUE, prefix, team, models, rpm, tpm,
                         max_concurrency, budget_usd, budget_period, expires_at, metadata,
                         created_at, updated_at, revoked_at, seq)
    llmd_key_teams      (name, budget_usd, budget_period, updated_at, seq)
    llmd_key_audit      (id, ts, actor, action, target, before, after)
    llmd_responses      (id, owner, created_at, expires_at, body, input_items, context)
                        stored Responses API answers (``responses.py``)

Every change bumps ``llmd_key_sequence.seq`` in its own transaction and stamps the rows it
touched with the new value, so a gateway learns of changes by polling one row and then reads
only the rows with a higher ``seq``. The bump takes the row's write lock until commit, so
sequence numbers are handed out in commit order. Migrations follow the ledger's rules
(``observability/ledger_sql.py``): named, applied once under a lock, only ever appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from ..observability.ledger_sql import Migration, Row
from .model import AuditEntry, Period, StoredKey, Team

MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS llmd_key_migrations "
    "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "001_create_keys",
        (
            "CREATE TABLE llmd_key_sequence (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL)",
            "INSERT INTO llmd_key_sequence (id, seq) VALUES (1, 0)",
            """CREATE TABLE llmd_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                digest TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                team TEXT,
                models TEXT NOT NULL,
                rpm BIGINT,
                tpm BIGINT,
                max_concurrency BIGINT,
                budget_usd TEXT,
                budget_period TEXT NOT NULL,
                expires_at DOUBLE PRECISION,
                metadata TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION,
                seq BIGINT NOT NULL
            )""",
            "CREATE INDEX llmd_keys_seq ON llmd_keys (seq)",
            """CREATE TABLE llmd_key_teams (
                name TEXT PRIMARY KEY,
                budget_usd TEXT,
                budget_period TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                seq BIGINT NOT NULL
            )""",
            """CREATE TABLE llmd_key_audit (
                id {id},
                ts DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                before TEXT,
                after TEXT
            )""",
        ),
    ),
    Migration(
        "002_create_responses",
        (
            """CREATE TABLE llmd_responses (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                body TEXT NOT NULL,
                input_items TEXT NOT NULL,
                context TEXT NOT NULL
            )""",
            "CREATE INDEX llmd_responses_expires ON llmd_responses (expires_at)",
        ),
    ),
)

KEY_COLUMNS = (
    "id", "name", "digest", "prefix", "team", "models", "rpm", "tpm", "max_concurrency",
    "budget_usd", "budget_period", "expires_at", "metadata", "created_at", "updated_at",
    "revoked_at",
)  # fmt: skip
SELECT_KEYS = f"SELECT {', '.join(KEY_COLUMNS)} FROM llmd_keys"
INSERT_KEY = (
    f"INSERT INTO llmd_keys ({', '.join(KEY_COLUMNS)}, seq) "
    f"VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 1))})"
)
UPDATE_KEY = (
    "UPDATE llmd_keys SET "
    + ", ".join(f"{c} = ?" for c in KEY_COLUMNS[4:])
    + ", seq = ? WHERE id = ?"
)
BUMP = "UPDATE llmd_key_sequence SET seq = seq + 1 WHERE id = 1 RETURNING seq"
CURRENT_SEQ = "SELECT seq FROM llmd_key_sequence WHERE id = 1"
UPSERT_TEAM = (
    "INSERT INTO llmd_key_teams (name, budget_usd, budget_period, updated_at, seq) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET budget_usd = excluded.budget_usd, "
    "budget_period = excluded.budget_period, updated_at = excluded.updated_at, seq = excluded.seq"
)
SELECT_TEAMS = "SELECT name, budget_usd, budget_period FROM llmd_key_teams"
INSERT_AUDIT = (
    "INSERT INTO llmd_key_audit (ts, actor, action, target, before, after) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_AUDIT = (
    "SELECT ts, actor, action, target, before, after FROM llmd_key_audit ORDER BY id DESC LIMIT ?"
)


def key_row(key: StoredKey) -> Row:
    """``key`` in ``KEY_COLUMNS`` order."""
    return (
        key.id, key.name, key.digest.hex(), key.prefix, key.team, _json(list(key.models)),
        key.rpm, key.tpm, key.max_concurrency,
        None if key.budget_usd is None else str(key.budget_usd), key.budget_period,
        key.expires_at, _json(key.metadata), key.created_at, key.updated_at, key.revoked_at,
    )  # fmt: skip


def key_from_row(row: Sequence[Any]) -> StoredKey:
    (id_, name, digest, prefix, team, models, rpm, tpm, conc, budget, period, expires,
     metadata, created, updated, revoked) = row  # fmt: skip
    return StoredKey(
        id=id_,
        name=name,
        digest=bytes.fromhex(digest),
        prefix=prefix,
        created_at=created,
        team=team,
        models=tuple(orjson.loads(models)),
        rpm=rpm,
        tpm=tpm,
        max_concurrency=conc,
        budget_usd=None if budget is None else Decimal(budget),
        budget_period=_period(period),
        expires_at=expires,
        metadata=orjson.loads(metadata),
        revoked_at=revoked,
        updated_at=updated,
    )


def team_from_row(row: Sequence[Any]) -> Team | None:
    name, budget, period = row
    return None if budget is None else Team(name, Decimal(budget), _period(period))


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    ts, actor, action, target, before, after = row
    return AuditEntry(ts, actor, action, target, _loads(before), _loads(after))


def _period(value: str) -> Period:
    period: Period = "day" if value == "day" else "total" if value == "total" else "month"
    return period


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: str | None) -> dict[str, Any] | None:
    return None if value is None else dict(orjson.loads(value))


def audit_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _json(value)
