"""Stored gateway keys as values: what a key is, how a new one is made, what a change may say.

A key is ``sk-llmd-`` and 40 random base62 characters (~238 bits); it is shown once, when it is
made. Only its SHA-256 (``digest``) is stored, plus ``prefix`` (``sk-llmd-`` and the first four
random characters) so people can tell their keys apart in a listing.

Fields of a key (``parse_fields`` checks what a caller sends, naming the field and what it
accepts): ``name`` (unique, fixed at creation), ``team``, ``models`` (glob patterns, default
every model), ``rpm``, ``tpm``, ``max_concurrency``, ``budget_usd`` with ``budget_period``
(day | month | total), ``expires_at`` (epoch seconds; ``expires_at`` as ISO 8601 or
``expires_in`` as ``30d`` / ``12h`` / ``15m`` on input), ``metadata`` (a small JSON object),
``role`` (``client``, the default: the API only; ``viewer``: also signs in to the read-only
dashboard).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson

KEY_PREFIX = "sk-llmd-"
KEY_RANDOM_CHARS = 40
SHOWN_CHARS = 4  # of the random part, in ``prefix``
BASE62 = string.ascii_letters + string.digits
PERIODS = ("day", "month", "total")
MAX_METADATA_BYTES = 4096
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LIMIT_FIELDS = ("rpm", "tpm", "max_concurrency")
CREATE_FIELDS = (
    "name", "team", "models", *LIMIT_FIELDS, "budget_usd", "budget_period", "expires_at",
    "expires_in", "metadata", "role",
)  # fmt: skip
UPDATE_FIELDS = tuple(f for f in CREATE_FIELDS if f != "name")

Period = Literal["day", "month", "total"]
KeyRole = Literal["client", "viewer"]
ROLES = ("client", "viewer")
Metadata = dict[str, Any]  # a JSON object, checked by ``_metadata``


class KeyStoreError(Exception):
    """A refused key-store operation; ``status`` is the HTTP status the admin API answers."""

    status = 400


class InvalidField(KeyStoreError):
    status = 422

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.field = name


class DuplicateName(KeyStoreError):
    status = 409


class UnknownKey(KeyStoreError):
    status = 404


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One stored key (never its plaintext). Times are epoch seconds."""

    id: str
    name: str
    digest: bytes = field(repr=False)
    prefix: str
    created_at: float
    team: str | None = None
    models: tuple[str, ...] = ("*",)
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    budget_usd: Decimal | None = None
    budget_period: Period = "month"
    expires_at: float | None = None
    metadata: Metadata = field(default_factory=dict, hash=False)
    revoked_at: float | None = None
    updated_at: float | None = None
    role: KeyRole = "client"

    def active(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def allows(self, model: str) -> bool:
        return self.models == ("*",) or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def public(self) -> dict[str, Any]:
        """The JSON fields an admin sees (no digest, never the key)."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "team": self.team,
            "models": list(self.models),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrency": self.max_concurrency,
            "budget_usd": None if self.budget_usd is None else str(self.budget_usd),
            "budget_period": self.budget_period if self.budget_usd is not None else None,
            "expires_at": iso(self.expires_at),
            "metadata": self.metadata,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
            "role": self.role,
        }


@dataclass(frozen=True, slots=True)
class Team:
    """A team's shared budget (scope ``team:NAME``), counted for every key of the team."""

    name: str
    budget_usd: Decimal
    budget_period: Period = "month"

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "budget_usd": str(self.budget_usd),
            "budget_period": self.budget_period,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: who did what to which key, with the key's fields before and after."""

    ts: float
    actor: str
    action: str
    target: str
    before: Metadata | None
    after: Metadata | None

    def public(self) -> dict[str, Any]:
        return {
            "at": iso(self.ts),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }


def new_key() -> str:
    """A fresh plaintext key."""
    return KEY_PREFIX + "".join(secrets.choice(BASE62) for _ in range(KEY_RANDOM_CHARS))


def new_id() -> str:
    return "key_" + "".join(secrets.choice(BASE62) for _ in range(16))


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + SHOWN_CHARS]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# --- checking what a caller sends ------------------------------------------------------------
def parse_fields(data: Mapping[str, Any], *, now: float, creating: bool) -> dict[str, Any]:
    """The given fields as column values (``expires_in`` becomes ``expires_at``); absent fields
    are absent (unchanged), ``null`` clears an optional one. Raises ``InvalidField``."""
    allowed = CREATE_FIELDS if creating else UPDATE_FIELDS
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidField(unknown[0], f"unknown field; the fields are {', '.join(allowed)}")
    if creating and "name" not in data:
        raise InvalidField("name", "required: a unique name for the key (letters, digits, ._-)")
    if "expires_at" in data and "expires_in" in data:
        raise InvalidField("expires_in", "give expires_at or expires_in, not both")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == "expires_in":
            out["expires_at"] = None if value is None else now + duration_s(value, name)
        else:
            out[name] = CHECKS[name](value, now)
    if out.get("expires_at") is not None and out["expires_at"] <= now:
        raise InvalidField("expires_at", "must be in the future")
    return out


def duration_s(value: Any, name: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` in seconds."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise InvalidField(name, f"{value!r} is not a duration like 30d, 12h, 15m, 90s or 2w")
    return float(int(match.group(1)) * _UNIT_S[match.group(2)])


def _name(value: Any, _now: float, what: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidField(
            what, "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter/digit"
        )
    return value


def _team(value: Any, now: float) -> str | None:
    return None if value is None else _name(value, now, "team")


def _models(value: Any, _now: float) -> tuple[str, ...]:
    if value is None:
        return ("*",)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    ok = isinstance(value, list) and 0 < len(value) <= 100
    if not ok or not all(isinstance(p, str) and 0 < len(p) <= 200 for p in value):
        raise InvalidField("models", "a list of 1-100 model name patterns like 'gpt-4o*'")
    return tuple(value)


def _limit(name: str) -> Any:
    def check(value: Any, _now: float) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10**9:
            raise InvalidField(name, "a whole number from 1 to 1000000000, or null for no limit")
        return value

    return check


def _budget(value: Any, _now: float) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value)) if isinstance(value, int | float | str) else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    if isinstance(value, bool) or not amount.is_finite() or not 0 < amount <= 10**9:
        raise InvalidField("budget_usd", "a positive number of US dollars, or null for none")
    return amount


def _period(value: Any, _now: float) -> Period:
    if value not in PERIODS:
        raise InvalidField("budget_period", f"one of {', '.join(PERIODS)}")
    period: Period = value
    return period


def _expires_at(value: Any, _now: float) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidField("expires_at", "an ISO 8601 time like 2027-01-31T00:00:00Z, or null")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _metadata(value: Any, _now: float) -> Metadata:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise InvalidField("metadata", f"a JSON object of at most {MAX_METADATA_BYTES} bytes")
    return value


def _role(value: Any, _now: float) -> KeyRole:
    if value not in ROLES:
        raise InvalidField("role", "client (the API only) or viewer (also the read-only dashboard)")
    role: KeyRole = value
    return role


CHECKS: dict[str, Any] = {
    "name": _name,
    "team": _team,
    "models": _models,
    **{name: _limit(name) for name in LIMIT_FIELDS},
    "budget_usd": _budget,
    "budget_period": _period,
    "expires_at": _expires_at,
    "metadata": _metadata,
    "role": _role,
}
