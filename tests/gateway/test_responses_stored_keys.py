"""Stored Responses API answers with stored keys: kept in the key store's own database, one
key's answers invisible to every other key (stored or configured)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from llmdispatcher.keys import open_key_store
from tests.gateway.test_stored_keys import CONFIG_KEY, _client, _status_becomes


def _auth(key: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {key}"}}


async def test_answers_are_the_stored_keys_own(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    admin = open_key_store(f"sqlite:///{path}")
    first, first_plain = await admin.create({"name": "first"}, actor="test")
    _, second_plain = await admin.create({"name": "second"}, actor="test")
    await admin.aclose()
    client = await _client(f"sqlite:///{path}")
    try:
        await _status_becomes(client, second_plain, 200)
        body = {"model": "gpt-4o-mini", "input": "hi"}
        made = await (await client.post("/v1/responses", json=body, **_auth(first_plain))).json()
        url = f"/v1/responses/{made['id']}"
        for other in (second_plain, CONFIG_KEY):
            assert (await client.get(url, **_auth(other))).status == 404
            assert (await client.delete(url, **_auth(other))).status == 404
            chained = {**body, "previous_response_id": made["id"]}
            assert (await client.post("/v1/responses", json=chained, **_auth(other))).status == 404
        with sqlite3.connect(path) as db:
            owners = db.execute("SELECT owner FROM llmd_responses").fetchall()
        assert owners == [(first.id,)]
        assert (await client.get(url, **_auth(first_plain))).status == 200
        assert (await client.delete(url, **_auth(first_plain))).status == 200
        assert (await client.get(url, **_auth(first_plain))).status == 404
    finally:
        await client.close()
