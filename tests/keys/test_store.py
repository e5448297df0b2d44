"""One contract suite for the key store, run unchanged over SQLite and a real PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from llmdispatcher.keys import (
    DuplicateName,
    InvalidField,
    KeyStore,
    UnknownKey,
    open_key_store,
)
from llmdispatcher.keys.model import digest_of


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[KeyStore]:
    store = open_key_store(store_url)
    yield store
    await store.aclose()


async def test_create_shows_the_key_once_and_stores_only_its_hash(store: KeyStore) -> None:
    key, plaintext = await store.create(
        {"name": "billing", "team": "payments", "models": ["gpt-4o*"], "rpm": 60,
         "budget_usd": "12.50", "budget_period": "day", "expires_in": "30d",
         "metadata": {"owner": "alice"}},
        actor="test",
    )  # fmt: skip
    assert re.fullmatch(r"sk-llmd-[A-Za-z0-9]{40}", plaintext)
    assert key.digest == digest_of(plaintext)
    assert key.prefix == plaintext[:12]
    fetched = await store.get(key.id)
    assert fetched == key
    assert fetched.budget_usd == Decimal("12.50")
    assert fetched.expires_at is not None
    assert fetched.expires_at > time.time() + 29 * 86400
    public = fetched.public()
    assert plaintext not in str(public)
    assert "digest" not in public
    assert public["models"] == ["gpt-4o*"]
    assert public["metadata"] == {"owner": "alice"}


async def test_names_are_unique_and_ids_must_exist(store: KeyStore) -> None:
    await store.create({"name": "a"}, actor="test")
    with pytest.raises(DuplicateName, match="name: a key named 'a' exists already"):
        await store.create({"name": "a"}, actor="test")
    with pytest.raises(UnknownKey):
        await store.get("key_nope")
    with pytest.raises(UnknownKey):
        await store.revoke("key_nope", actor="test")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "tpm": "5"}, "tpm"),
        ({"name": "x", "max_concurrency": True}, "max_concurrency"),
        ({"name": "x", "budget_usd": -1}, "budget_usd"),
        ({"name": "x", "budget_period": "week"}, "budget_period"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_in": "3 fortnights"}, "expires_in"),
        ({"name": "x", "expires_in": "1d", "expires_at": "2099-01-01"}, "expires_in"),
        ({"name": "x", "models": []}, "models"),
        ({"name": "x", "metadata": [1]}, "metadata"),
        ({"name": "x", "metadata": {"a": "b" * 5000}}, "metadata"),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
async def test_every_field_is_checked(
    store: KeyStore, fields: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        await store.create(fields, actor="test")
    assert caught.value.field == named
    assert await store.list_keys() == []


async def test_update_revoke_and_list(store: KeyStore) -> None:
    a, _ = await store.create({"name": "a", "team": "t1"}, actor="test")
    b, _ = await store.create({"name": "b", "team": "t2"}, actor="test")
    changed = await store.update(a.id, {"rpm": 5, "models": "gpt-*,claude-*"}, actor="test")
    assert (changed.rpm, changed.models) == (5, ("gpt-*", "claude-*"))
    assert (await store.update(a.id, {"rpm": None}, actor="test")).rpm is None
    with pytest.raises(InvalidField, match="name"):
        await store.update(a.id, {"name": "c"}, actor="test")
    revoked = await store.revoke(b.id, actor="test")
    assert revoked.revoked_at is not None
    assert (await store.revoke(b.id, actor="test")).revoked_at == revoked.revoked_at
    with pytest.raises(InvalidField, match="revoked"):
        await store.update(b.id, {"rpm": 1}, actor="test")
    assert [k.name for k in await store.list_keys()] == ["a", "b"]
    assert [k.name for k in await store.list_keys(revoked=False)] == ["a"]
    assert [k.name for k in await store.list_keys(revoked=True)] == ["b"]
    assert [k.name for k in await store.list_keys(team="t2")] == ["b"]


async def test_changes_since_a_sequence_number(store: KeyStore) -> None:
    start = await store.changes(0)
    assert (start.seq, start.keys) == (0, ())
    a, _ = await store.create({"name": "a"}, actor="test")
    seen = await store.changes(start.seq)
    assert [k.id for k in seen.keys] == [a.id]
    assert await store.seq() == seen.seq
    await store.revoke(a.id, actor="test")
    later = await store.changes(seen.seq)
    assert later.keys[0].revoked_at is not None
    assert later.seq > seen.seq
    assert (await store.changes(later.seq)).keys == ()


async def test_team_budgets(store: KeyStore) -> None:
    team = await store.set_team_budget({"name": "t1", "budget_usd": 100}, actor="test")
    assert team is not None
    assert team.budget_period == "month"
    assert [t.name for t in await store.teams()] == ["t1"]
    assert (await store.changes(0)).teams == (team,)
    seq = await store.seq()
    assert await store.set_team_budget({"name": "t1", "budget_usd": None}, actor="test") is None
    assert await store.teams() == []
    assert (await store.changes(seq)).cleared_teams == ("t1",)
    with pytest.raises(InvalidField, match="budget_usd"):
        await store.set_team_budget({"name": "t1"}, actor="test")


async def test_the_audit_trail_has_every_action_and_no_secret(store: KeyStore) -> None:
    key, plaintext = await store.create({"name": "a"}, actor="cli:alice")
    await store.update(key.id, {"tpm": 1000}, actor="admin")
    await store.revoke(key.id, actor="admin")
    entries = await store.audit()
    assert [(e.actor, e.action) for e in entries] == [
        ("admin", "revoke"), ("admin", "update"), ("cli:alice", "create"),
    ]  # fmt: skip
    assert entries[1].before is not None
    assert entries[1].before["tpm"] is None
    assert entries[1].after is not None
    assert entries[1].after["tpm"] == 1000
    text = str([e.public() for e in entries])
    assert plaintext not in text
    assert key.digest.hex() not in text


async def test_the_database_file_never_holds_a_plaintext_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = open_key_store(f"sqlite:///{path}")
    plaintexts = []
    for i in range(5):
        key, plaintext = await store.create({"name": f"k{i}"}, actor="test")
        await store.update(key.id, {"rpm": 10}, actor="test")
        plaintexts.append(plaintext)
    await store.aclose()
    data = _all_bytes(tmp_path)  # the file, its WAL and shm
    for plaintext in plaintexts:
        assert plaintext.encode() not in data
        assert plaintext[8:].encode() not in data  # not even the random part
    assert b"sk-llmd-" in data  # the display prefixes are there: the grep does find text


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir())
