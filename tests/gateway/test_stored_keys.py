"""Stored keys on the chat endpoints, in-process: accepted beside configured keys, refused when
revoked, expired or unknown (one answer for all), model patterns (through model groups and
/v1/messages too), per-key limits and key/team budgets through the shared machinery."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher, Request, Response
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.state import GATEWAY
from llmdispatcher.keys import KeyStore, open_key_store
from llmdispatcher.routing.model import Deployment, ModelGroup
from tests.gateway.inprocess import MESSAGES, OneModelVendor

CONFIG_KEY = "cfg-key-0123456789abcdef"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture
async def admin(db: str) -> AsyncIterator[KeyStore]:
    store = open_key_store(db)
    yield store
    await store.aclose()


async def _client(db: str, config: Config | None = None) -> TestClient[Any, Any]:
    vendor = OneModelVendor("gpt-4o-mini")
    vendor.name = "openai"  # priced by the shipped table, so budgets have something to count
    dispatcher = Dispatcher(config or Config(), vendors=[vendor], clock=FakeClock())
    settings = GatewayConfig(key_refresh_s=0.02, api_keys=(ApiKeyConfig("cfg", key=CONFIG_KEY),))
    app = create_app(dispatcher, settings, key_store=open_key_store(db))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(db: str, admin: KeyStore) -> AsyncIterator[TestClient[Any, Any]]:
    await admin.seq()  # migrated before the gateway reads it
    client = await _client(db)
    yield client
    await client.close()


def _chat(key: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "json": {"model": model, "messages": MESSAGES},
        "headers": {"Authorization": f"Bearer {key}"},
    }


async def _status_becomes(client: TestClient[Any, Any], key: str, status: int) -> None:
    """Poll until the gateway answers ``status`` (the cache refreshes every 20 ms)."""
    for _ in range(200):
        response = await client.post("/v1/chat/completions", **_chat(key))
        if response.status == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still {response.status}, never {status}")


async def test_a_stored_key_works_beside_configured_keys(
    client: TestClient[Any, Any], admin: KeyStore
) -> None:
    _, plaintext = await admin.create({"name": "app"}, actor="test")
    await _status_becomes(client, plaintext, 200)
    assert (await client.post("/v1/chat/completions", **_chat(CONFIG_KEY))).status == 200


async def test_revoked_expired_unknown_and_malformed_keys_get_one_answer(
    client: TestClient[Any, Any], admin: KeyStore
) -> None:
    key, plaintext = await admin.create({"name": "app"}, actor="test")
    await _status_becomes(client, plaintext, 200)
    await admin.revoke(key.id, actor="test")
    await _status_becomes(client, plaintext, 401)
    bodies = []
    for token in (plaintext, plaintext[:-1] + "x", plaintext[:12], "sk-llmd-", "garbage"):
        response = await client.post("/v1/chat/completions", **_chat(token))
        assert response.status == 401
        body = await response.json()
        body["error"].pop("message_id", None)
        bodies.append(body)
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["error"]["code"] == "invalid_api_key"


async def test_an_expired_key_is_refused(client: TestClient[Any, Any], admin: KeyStore) -> None:
    key, plaintext = await admin.create({"name": "app"}, actor="test")
    await _status_becomes(client, plaintext, 200)
    # Expiry is checked against the wall clock on every request: set it to a moment ago.
    async with admin.database.transaction() as tx:
        await tx.execute("UPDATE llmd_keys SET expires_at = 1 WHERE id = ?", (key.id,))
        await tx.execute("UPDATE llmd_key_sequence SET seq = seq + 1")
        await tx.execute("UPDATE llmd_keys SET seq = (SELECT seq FROM llmd_key_sequence)")
    await _status_becomes(client, plaintext, 401)


async def test_model_patterns_hold_through_groups_and_messages(db: str, admin: KeyStore) -> None:
    group = ModelGroup("cheap", (Deployment("openai", "gpt-4o-mini"),))
    wide = ModelGroup("any", (Deployment("openai", "gpt-4o-mini"), Deployment("openai", "o1")))
    client = await _client(db, Config(model_groups=(group, wide)))
    try:
        _, plaintext = await admin.create(
            {"name": "mini", "models": ["gpt-4o-mini*", "cheap"]}, actor="t"
        )
        await _status_becomes(client, plaintext, 200)
        assert (
            await client.post("/v1/chat/completions", **_chat(plaintext, "cheap"))
        ).status == 200
        for model in ("gpt-4o", "any"):
            response = await client.post("/v1/chat/completions", **_chat(plaintext, model))
            assert response.status == 403
            error = (await response.json())["error"]
            assert error["code"] == "model_not_allowed"
            assert "'mini'" in error["message"]
        response = await client.post(
            "/v1/messages",
            json={"model": "claude-3-5-haiku", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": plaintext},
        )
        assert response.status == 403
        error = (await response.json())["error"]  # Anthropic's shape: a type, no code
        assert error["type"] == "permission_error"
        assert "may not use model 'claude-3-5-haiku'" in error["message"]
    finally:
        await client.close()


async def test_rpm_limit_answers_429_with_retry_after(
    client: TestClient[Any, Any], admin: KeyStore
) -> None:
    _, plaintext = await admin.create({"name": "slow", "rpm": 2}, actor="test")
    await _status_becomes(client, plaintext, 200)  # one request
    assert (await client.post("/v1/chat/completions", **_chat(plaintext))).status == 200
    response = await client.post("/v1/chat/completions", **_chat(plaintext))
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("team_budget", [False, True])
async def test_key_and_team_budgets_answer_insufficient_quota(
    client: TestClient[Any, Any], admin: KeyStore, team_budget: bool
) -> None:
    if team_budget:
        await admin.set_team_budget({"name": "t", "budget_usd": "0.0001"}, actor="test")
        _, plaintext = await admin.create({"name": "k", "team": "t"}, actor="test")
    else:
        _, plaintext = await admin.create({"name": "k", "budget_usd": "0.0001"}, actor="test")
    await _status_becomes(client, plaintext, 429)
    response = await client.post("/v1/chat/completions", **_chat(plaintext))
    error = (await response.json())["error"]
    assert error["code"] == "insufficient_quota"
    scope = "team:t" if team_budget else "key:k"
    assert f"budget {scope} ($0.0001 per month) exceeded: spent $0" in error["message"]
    assert "resets in" in error["message"]
    assert (await client.post("/v1/chat/completions", **_chat(CONFIG_KEY))).status == 200


async def test_requests_are_tagged_with_key_id_name_and_team(
    db: str, admin: KeyStore, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    client = await _client(db, Config(ledger_url=ledger))
    try:
        key, plaintext = await admin.create({"name": "app", "team": "web"}, actor="test")
        await _status_becomes(client, plaintext, 200)
        metrics = await (await client.get("/metrics", headers=_chat(CONFIG_KEY)["headers"])).text()
        stats = await client.app[GATEWAY].dispatcher.ledger_stats()
    finally:
        await client.close()
    assert 'llmdispatcher_key_requests_total{key="app",outcome="ok",team="web"} 1.0' in metrics
    assert plaintext not in metrics
    assert stats.by_key["app"].requests == 1
    assert stats.by_team["web"].requests == 1
    data = (
        sqlite3.connect(tmp_path / "ledger.db")
        .execute("SELECT api_key_id, api_key_name, team FROM ledger_requests")
        .fetchall()
    )
    assert data == [(key.id, "app", "web")]


async def test_revoking_the_last_stored_key_does_not_open_the_gateway(
    tmp_path: Path, admin: KeyStore, db: str
) -> None:
    vendor = OneModelVendor("gpt-4o-mini")
    dispatcher = Dispatcher(vendors=[vendor], clock=FakeClock())
    settings = GatewayConfig(key_refresh_s=0.02)  # no configured keys, no admin key
    await admin.seq()
    client = TestClient(TestServer(create_app(dispatcher, settings, key_store=open_key_store(db))))
    await client.start_server()
    try:
        chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
        assert (await client.post("/v1/chat/completions", json=chat)).status == 200  # no keys yet
        key, plaintext = await admin.create({"name": "only"}, actor="test")
        await _status_becomes(client, "", 401)  # the first key turns authentication on
        assert (await client.post("/v1/chat/completions", **_chat(plaintext))).status == 200
        await admin.revoke(key.id, actor="test")
        await _status_becomes(client, plaintext, 401)
        assert (await client.post("/v1/chat/completions", json=chat)).status == 401
    finally:
        await client.close()


class HeldVendor(OneModelVendor):
    """Answers once ``release`` is set, so requests stay in flight."""

    def __init__(self) -> None:
        super().__init__("gpt-4o-mini")
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, request: Request) -> Response:
        self.entered.set()
        await self.release.wait()
        return await super().send(request)


async def test_max_concurrency_refuses_the_request_over_it(admin: KeyStore, db: str) -> None:
    vendor = HeldVendor()
    dispatcher = Dispatcher(vendors=[vendor], clock=FakeClock())
    app = create_app(dispatcher, GatewayConfig(key_refresh_s=0.02), key_store=open_key_store(db))
    client = TestClient(TestServer(app))
    _, plaintext = await admin.create({"name": "one", "max_concurrency": 1}, actor="test")
    await client.start_server()  # loads the key
    try:
        first = asyncio.ensure_future(client.post("/v1/chat/completions", **_chat(plaintext)))
        await vendor.entered.wait()  # the first is in flight
        second = await client.post("/v1/chat/completions", **_chat(plaintext))
        assert second.status == 429
        assert "max_concurrency" in (await second.json())["error"]["message"]
        vendor.release.set()
        assert (await first).status == 200
        assert (await client.post("/v1/chat/completions", **_chat(plaintext))).status == 200
    finally:
        await client.close()
