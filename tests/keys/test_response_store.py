"""The stored Responses API answers on SQLite and PostgreSQL: the key store's own database and
migrations, the owner's scope, retention."""

from __future__ import annotations

from llmdispatcher.keys import open_key_store
from llmdispatcher.keys.responses import ResponseStore, StoredResponse

ITEMS = [{"type": "message", "id": "msg_1", "role": "user", "content": []}]


def stored(response_id: str, owner: str = "key_a") -> StoredResponse:
    body = {"id": response_id, "object": "response", "output": []}
    return StoredResponse(response_id, owner, 100.0, body, ITEMS, [*ITEMS, {"type": "x"}])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_saved_answers_belong_to_their_owner(store_url: str) -> None:
    keys = open_key_store(store_url)
    store = ResponseStore(keys.database, retention_s=60)
    try:
        await keys.create({"name": "first"}, actor="test")  # one database for both
        await store.save(stored("resp_1"))
        found = await store.get("resp_1", "key_a")
        assert found == stored("resp_1")
        assert await store.get("resp_1", "key_b") is None
        assert await store.get("resp_2", "key_a") is None
        assert not await store.delete("resp_1", "key_b")
        assert await store.delete("resp_1", "key_a")
        assert await store.get("resp_1", "key_a") is None
        assert [k.name for k in await keys.list_keys()] == ["first"]
    finally:
        await keys.aclose()


async def test_answers_expire_after_the_retention(store_url: str) -> None:
    clock = Clock()
    keys = open_key_store(store_url)
    store = ResponseStore(keys.database, retention_s=60, clock=clock)
    try:
        await store.save(stored("resp_old"))
        clock.now += 61
        assert await store.get("resp_old", "key_a") is None
        assert not await store.delete("resp_old", "key_a")
        await store.save(stored("resp_new"))  # a write purges what expired
        async with keys.database.transaction(write=False) as tx:
            rows = await tx.execute("SELECT id FROM llmd_responses")
        assert [row[0] for row in rows] == ["resp_new"]
    finally:
        await keys.aclose()
