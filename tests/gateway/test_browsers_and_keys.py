"""Browsers and keys, in-process: CSRF and DNS rebinding (Content-Type, Host, Origin), the
throttles (vendor checks per key, wrong keys per address), digests only, pinned metadata."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher
from llmdispatcher.cli.serve_cmd import gateway_settings
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.server import build_dispatcher
from llmdispatcher.gateway.state import GATEWAY
from llmdispatcher.gateway.throttle import Throttle
from llmdispatcher.routing.rules import RoutingCondition, RoutingRule
from tests.gateway.inprocess import CHAT, OneModelVendor, edge_client

# --- CSRF and DNS rebinding -------------------------------------------------------------------


async def test_a_browser_like_cross_site_post_is_refused() -> None:
    client = await edge_client(OneModelVendor())  # loopback, no keys: the exposed case
    try:
        body = json.dumps(CHAT)
        cross_site = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
        reply = await client.post("/v1/chat/completions", data=body, headers=cross_site)
        assert reply.status == 403
        assert "gateway.allowed_hosts" in (await reply.json())["error"]["message"]
        no_origin = {"Content-Type": "text/plain"}
        reply = await client.post("/v1/chat/completions", data=body, headers=no_origin)
        assert reply.status == 415
        assert (await reply.json())["error"]["code"] == "unsupported_media_type"
        rebound = {"Host": "evil.example:8080"}  # DNS rebinding: the attacker's name
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=rebound)
        assert reply.status == 421
        assert "gateway.allowed_hosts" in (await reply.json())["error"]["message"]
        reply = await client.get("/api/v1/stats", headers=rebound)
        assert reply.status == 421  # reading is refused too
        stats = await (await client.get("/api/v1/stats")).json()
        assert stats["total_requests"] == 0  # nothing reached a vendor
    finally:
        await client.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://localhost:3000"},
        {"Origin": "http://127.0.0.1:5173", "Host": "localhost:8080"},
        {"Host": "[::1]:8080"},
        {"Content-Type": "application/json; charset=utf-8"},
    ],
)
async def test_local_clients_pass(headers: dict[str, str]) -> None:
    client = await edge_client(OneModelVendor())
    try:
        reply = await client.post(
            "/v1/chat/completions",
            data=json.dumps(CHAT),
            headers={"Content-Type": "application/json", **headers},
        )
        assert reply.status == 200
    finally:
        await client.close()


async def test_allowed_hosts_setting() -> None:
    settings = GatewayConfig(allowed_hosts=("gw.internal",))
    client = await edge_client(OneModelVendor(), settings)
    try:
        named = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Host": "gw.internal"}
        )
        assert named.status == 200
        assert (await client.post("/v1/chat/completions", json=CHAT)).status == 421
    finally:
        await client.close()
    public = GatewayConfig(host="0.0.0.0", allow_unauthenticated=True)
    client = await edge_client(OneModelVendor(), public)
    try:  # off loopback, any name by default (operators list theirs to check)
        reply = await client.post("/v1/chat/completions", json=CHAT, headers={"Host": "gw.example"})
        assert reply.status == 200
    finally:
        await client.close()


# --- throttles: vendor checks per key, wrong keys per address ---------------------------------
TOKEN_A, TOKEN_B = "sk-gateway-key-a-0123456789", "sk-gateway-key-b-0123456789"
KEYED = GatewayConfig(
    api_keys=(
        ApiKeyConfig("a", key=TOKEN_A),
        ApiKeyConfig("b", key=TOKEN_B, allowed_models=("known-*",)),
    ),
    vendor_checks_per_minute=2,
    auth_failures_per_minute=3,
)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_vendor_checks_are_throttled_per_key() -> None:
    clock = FakeClock()
    client = await edge_client(OneModelVendor(), KEYED, clock=clock)
    check = {"vendor": "echo", "model": "known-model"}
    try:
        for _ in range(2):
            reply = await client.post("/api/v1/test/vendor", json=check, headers=_auth(TOKEN_A))
            assert (await reply.json())["ok"] is True
        refused = await client.post("/api/v1/test/vendor", json=check, headers=_auth(TOKEN_A))
        assert refused.status == 429
        assert refused.headers["retry-after"] == "30"
        assert "vendor_checks_per_minute" in (await refused.json())["error"]["message"]
        other_key = await client.post("/api/v1/test/vendor", json=check, headers=_auth(TOKEN_B))
        assert other_key.status == 200  # each key has its own allowance
        clock.advance(30)
        again = await client.post("/api/v1/test/vendor", json=check, headers=_auth(TOKEN_A))
        assert again.status == 200
        stats = await (await client.get("/api/v1/stats", headers=_auth(TOKEN_A))).json()
        assert stats["total_requests"] == 4  # every check went through the dispatcher
        metrics = await (await client.get("/metrics", headers=_auth(TOKEN_A))).text()
        assert 'gen_ai_request_model="known-model"' in metrics
    finally:
        await client.close()


async def test_wrong_keys_are_logged_and_slowed_down(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    client = await edge_client(OneModelVendor(), KEYED, clock=clock)
    wrong = "sk-wrong-key-9876543210-secret"
    try:
        with caplog.at_level(logging.WARNING, logger="llmdispatcher.gateway"):
            for _ in range(3):
                reply = await client.post("/v1/chat/completions", json=CHAT, headers=_auth(wrong))
                assert reply.status == 401
            throttled = await client.post("/v1/chat/completions", json=CHAT, headers=_auth(wrong))
            assert throttled.status == 429
            assert throttled.headers["retry-after"] == "20"
            assert (await throttled.json())["error"]["code"] == "too_many_auth_failures"
            # from that address, even a good key waits: keys are not checked while throttled
            good = await client.post("/v1/chat/completions", json=CHAT, headers=_auth(TOKEN_A))
            assert good.status == 429
            clock.advance(20)
            good = await client.post("/v1/chat/completions", json=CHAT, headers=_auth(TOKEN_A))
            assert good.status == 200
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 3
        assert "invalid_api_key" in refusals[0]
        assert "127.0.0.1" in refusals[0]
        fingerprint = hashlib.sha256(wrong.encode()).hexdigest()[:8]
        assert f"fingerprint {fingerprint}" in refusals[0]
        assert all("wrong-key" not in r and "secret" not in r for r in refusals)
    finally:
        await client.close()


async def test_the_wrong_key_throttle_map_is_bounded() -> None:
    clock = FakeClock()
    throttle = Throttle(3, 60.0, clock, max_names=100)
    for i in range(10_000):
        throttle.take(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    for _ in range(2):  # the newest address is still there, with one token spent
        assert throttle.take("10.0.39.15") == 0.0
    assert throttle.take("10.0.39.15") == pytest.approx(20.0)
    assert throttle.take("10.0.0.0") == 0.0  # the oldest was dropped: it starts afresh


# --- keys: digests only, pinned metadata and user ---------------------------------------------
def test_the_gateway_keeps_no_plain_key(tmp_path: Path) -> None:
    plain = "sk-plain-gateway-key-0123456789"
    app = create_app(Dispatcher(vendors=[OneModelVendor()]), GatewayConfig(
        api_keys=(ApiKeyConfig("a", key=plain),)))  # fmt: skip
    kept = app[GATEWAY].settings.api_keys
    assert [(k.key, k.key_sha256) for k in kept] == [
        (None, hashlib.sha256(plain.encode()).hexdigest())
    ]
    config = tmp_path / "c.yaml"
    config.write_text(
        "vendors: {v: {type: openai, base_url: 'http://127.0.0.1:9/v1', api_key: x}}\n"
        f"gateway: {{api_keys: [{{name: a, key: {plain}}}]}}\n"
    )
    dispatcher = build_dispatcher(str(config))
    assert dispatcher.config.gateway.api_keys[0].key is None
    assert plain not in repr(dispatcher.config)
    settings = gateway_settings(GatewayConfig(), None, None, None, False, plain)
    assert settings.api_keys[0].key is None
    assert settings.api_keys[0].key_sha256 == hashlib.sha256(plain.encode()).hexdigest()


class NamedVendor(OneModelVendor):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


async def test_a_key_can_pin_its_metadata_and_user() -> None:
    """A rule sends ``tier: pro`` (or user ``vip``) to the better vendor: a client of a key
    pinned to ``tier: basic`` cannot claim either."""
    rules = (
        RoutingRule(RoutingCondition(metadata={"tier": "pro"}), vendor="pro", priority=1),
        RoutingRule(RoutingCondition(users=("vip",)), vendor="pro", priority=2),
    )
    config = Config(default_vendor="basic", routing_rules=rules)
    dispatcher = Dispatcher(config, vendors=[NamedVendor("basic"), NamedVendor("pro")])
    settings = GatewayConfig(
        api_keys=(
            ApiKeyConfig("free", key=TOKEN_A, metadata={"tier": "basic"}, user="free-user"),
            ApiKeyConfig("open", key=TOKEN_B),
        )
    )
    client = TestClient(TestServer(create_app(dispatcher, settings)))
    await client.start_server()
    try:
        for claim in ({"metadata": {"tier": "pro"}}, {"user": "vip"}):
            body = {**CHAT, **claim}
            pinned = await client.post("/v1/chat/completions", json=body, headers=_auth(TOKEN_A))
            assert pinned.headers["x-llmdispatcher-vendor"] == "basic"
            unpinned = await client.post("/v1/chat/completions", json=body, headers=_auth(TOKEN_B))
            assert unpinned.headers["x-llmdispatcher-vendor"] == "pro"
    finally:
        await client.close()
