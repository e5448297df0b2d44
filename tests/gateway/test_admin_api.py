"""The admin API, in-process: every endpoint, its status codes, and the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.gateway.app import create_app
from llmdispatcher.keys import open_key_store
from tests.gateway.inprocess import MESSAGES, OneModelVendor

ADMIN_KEY = "admin-key-0123456789abcdef"
CLIENT_KEY = "client-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _client(tmp_path: Path, **settings: Any) -> TestClient[Any, Any]:
    dispatcher = Dispatcher(vendors=[OneModelVendor("gpt-4o-mini")], clock=FakeClock())
    config = GatewayConfig(api_keys=(ApiKeyConfig("cfg", key=CLIENT_KEY),), **settings)
    store = open_key_store(f"sqlite:///{tmp_path / 'keys.db'}")
    client = TestClient(TestServer(create_app(dispatcher, config, key_store=store)))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(tmp_path, admin_key=ADMIN_KEY)
    yield client
    await client.close()


async def test_without_an_admin_key_the_api_says_how_to_enable_it(tmp_path: Path) -> None:
    client = await _client(tmp_path)
    try:
        response = await client.get("/admin/v1/keys", headers=ADMIN)
        assert response.status == 404
        assert "LLMDISPATCHER_ADMIN_KEY" in (await response.json())["error"]["message"]
    finally:
        await client.close()


async def test_admin_key_by_digest_works_too(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    client = await _client(tmp_path, admin_key_sha256=digest)
    try:
        assert (await client.get("/admin/v1/keys", headers=ADMIN)).status == 200
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-admin-key-0123456789"}, 401),
        ({"Authorization": f"Bearer {CLIENT_KEY}"}, 403),
    ],
)
async def test_only_the_admin_key_gets_in(
    client: TestClient[Any, Any], headers: dict[str, str], status: int
) -> None:
    for method, path in (("GET", "/admin/v1/keys"), ("POST", "/admin/v1/keys"),
                         ("GET", "/admin/v1/audit"), ("DELETE", "/admin/v1/keys/x")):  # fmt: skip
        response = await client.request(method, path, headers=headers, json={"name": "x"})
        assert response.status == status, (method, path)


async def test_create_use_show_update_revoke(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/admin/v1/keys",
        json={"name": "app", "team": "web", "rpm": 100, "budget_usd": 5, "expires_in": "30d",
              "metadata": {"owner": "alice"}},
        headers=ADMIN,
    )  # fmt: skip
    assert response.status == 201
    created = await response.json()
    plaintext, key_id = created.pop("key"), created["id"]
    assert plaintext.startswith("sk-llmd-")
    assert created["budget_period"] == "month"
    chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
    auth = {"Authorization": f"Bearer {plaintext}"}
    assert (await client.post("/v1/chat/completions", json=chat, headers=auth)).status == 200

    shown = await (await client.get(f"/admin/v1/keys/{key_id}", headers=ADMIN)).json()
    assert shown["usage"]["requests"] == 1
    assert shown["usage"]["tokens"] == 5
    assert shown["usage"]["remaining_usd"] is not None
    assert "key" not in shown

    listed = await (await client.get("/admin/v1/keys?team=web", headers=ADMIN)).json()
    assert [k["id"] for k in listed["data"]] == [key_id]
    assert plaintext not in str(listed)

    patched = await client.patch(
        f"/admin/v1/keys/{key_id}", json={"models": ["o1*"]}, headers=ADMIN
    )
    assert (await patched.json())["models"] == ["o1*"]
    refused = await client.post("/v1/chat/completions", json=chat, headers=auth)
    assert refused.status == 403

    for _ in range(2):  # idempotent
        gone = await client.delete(f"/admin/v1/keys/{key_id}", headers=ADMIN)
        assert gone.status == 200
        assert (await gone.json())["revoked_at"] is not None
    assert (await client.post("/v1/chat/completions", json=chat, headers=auth)).status == 401
    revoked = await (await client.get("/admin/v1/keys?revoked=true", headers=ADMIN)).json()
    assert [k["id"] for k in revoked["data"]] == [key_id]

    trail = await (await client.get("/admin/v1/audit", headers=ADMIN)).json()
    assert [e["action"] for e in trail["data"]] == ["revoke", "update", "create"]
    assert trail["data"][1]["before"]["models"] == ["*"]
    assert trail["data"][1]["after"]["models"] == ["o1*"]
    assert trail["data"][0]["actor"].startswith("admin@")
    assert plaintext not in str(trail)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "rpm": -1}, "rpm"),
        ({"name": "x", "budget_period": "week"}, "budget_period"),
        ({"name": "x", "expires_in": "soon"}, "expires_in"),
        ({"name": "x", "nope": 1}, "nope"),
        ({"team": "t"}, "name"),
    ],
)
async def test_bad_fields_are_422_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/admin/v1/keys", json=body, headers=ADMIN)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["param"] == field
    assert error["message"].startswith(f"{field}: ")


async def test_duplicates_409_and_unknown_ids_404(client: TestClient[Any, Any]) -> None:
    assert (await client.post("/admin/v1/keys", json={"name": "a"}, headers=ADMIN)).status == 201
    assert (await client.post("/admin/v1/keys", json={"name": "a"}, headers=ADMIN)).status == 409
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, "/admin/v1/keys/key_nope", headers=ADMIN, json={})
        assert response.status == 404, method
    bad = await client.get("/admin/v1/keys?revoked=maybe", headers=ADMIN)
    assert bad.status == 422
    assert (await client.get("/admin/v1/audit?limit=0", headers=ADMIN)).status == 422


async def test_team_budgets(client: TestClient[Any, Any]) -> None:
    response = await client.put("/admin/v1/teams/web", json={"budget_usd": "20"}, headers=ADMIN)
    assert await response.json() == {"name": "web", "budget_usd": "20", "budget_period": "month"}
    teams = await (await client.get("/admin/v1/teams", headers=ADMIN)).json()
    assert [t["name"] for t in teams["data"]] == ["web"]
    bad = await client.put("/admin/v1/teams/web", json={"budget_usd": "x"}, headers=ADMIN)
    assert bad.status == 422


async def test_a_gateway_with_an_admin_key_is_never_open(tmp_path: Path) -> None:
    dispatcher = Dispatcher(vendors=[OneModelVendor("gpt-4o-mini")], clock=FakeClock())
    store = open_key_store(f"sqlite:///{tmp_path / 'keys.db'}")
    app = create_app(dispatcher, GatewayConfig(admin_key=ADMIN_KEY), key_store=store)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
        assert (await client.post("/v1/chat/completions", json=chat)).status == 401
    finally:
        await client.close()


async def test_a_stream_is_counted_once_it_ends(client: TestClient[Any, Any]) -> None:
    created = await (await client.post("/admin/v1/keys", json={"name": "s"}, headers=ADMIN)).json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    response = await client.post("/v1/chat/completions", json=body, headers=auth)
    assert (await response.text()).endswith("data: [DONE]\n\n")
    shown = await (await client.get(f"/admin/v1/keys/{created['id']}", headers=ADMIN)).json()
    assert (shown["usage"]["requests"], shown["usage"]["tokens"]) == (1, 4)
