"""What the gateway refuses at its edge, in-process: model names, what a client can make the
metrics and the routing-health map hold, nesting, content types, hosts, wrong keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher, Request, Response, StreamChunk, Usage
from llmdispatcher.cli.serve_cmd import gateway_settings
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.errors import ModelNotFound
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.metrics import GatewayMetrics, KnownNames
from llmdispatcher.gateway.server import build_dispatcher
from llmdispatcher.gateway.state import GATEWAY
from llmdispatcher.gateway.validation import MAX_MODEL_NAME
from llmdispatcher.observability.events import AttemptFinished, FallbackTaken
from llmdispatcher.routing.health import HealthTracker
from llmdispatcher.routing.rules import RoutingCondition, RoutingRule
from llmdispatcher.types import Attempt
from llmdispatcher.vendors.base import Vendor

MESSAGES = [{"role": "user", "content": "hi"}]


class OneModelVendor(Vendor):
    """Serves only ``known``; any other model is a 404, as real vendors answer."""

    capabilities = Vendor.capabilities

    def __init__(self, known: str = "known-model") -> None:
        self.name = "echo"
        self.known = known

    async def send(self, request: Request) -> Response:
        if request.model != self.known:
            raise ModelNotFound(f"no model {request.model[:40]!r}", vendor=self.name, status=404)
        return Response("ok", self.name, request.model, "stop", Usage(3, 2, 5))

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="ok", vendor=self.name, model=request.model)
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 1, 4), vendor=self.name)


async def edge_client(
    vendor: Vendor, settings: GatewayConfig | None = None, **kw: Any
) -> TestClient[Any, Any]:
    """An in-process gateway in front of ``vendor``; retries wait on a ``FakeClock``."""
    dispatcher = Dispatcher(vendors=[vendor], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher, settings, **kw)))
    await client.start_server()
    return client


async def _metrics_size(client: TestClient[Any, Any]) -> int:
    return len(await (await client.get("/metrics")).read())


# --- model names ------------------------------------------------------------------------------
LEGITIMATE = [
    "gpt-4o-2024-08-06",
    "openai/gpt-4o",
    "llama3.1:8b",
    "models/gemini-1.5-flash",
    "accounts/fireworks/models/x",
    "claude-3-5-sonnet@20240620",
    "ft:gpt-4o-mini:org::id",
    "@cf/meta/llama-3-8b-instruct",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
]
REFUSED = [
    "gemini-1.5-flash/../../tunedModels/x",
    "../etc/passwd",
    "a//b",
    "/leading",
    "trailing/",
    "two words",
    "tab\there",
    "new\nline",
    "nul\x00",
    "del\x7f",
    "query?x=1",
    "frag#x",
    "pct%2e%2e",
    "glob*",
    "ünïcode",
    "x" * (MAX_MODEL_NAME + 1),
]


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/messages", "/api/v1/chat/completions"]
)
async def test_model_names_are_checked_on_every_chat_endpoint(path: str) -> None:
    client = await edge_client(OneModelVendor())
    try:
        for name in REFUSED:
            reply = await client.post(path, json={"model": name, "messages": MESSAGES,
                                                  "max_tokens": 5})  # fmt: skip
            assert reply.status == 400, name
            text = await reply.text()
            assert "model" in text
            if path != "/v1/messages":
                assert (await reply.json())["error"]["param"] == "model"
        for name in LEGITIMATE:  # not refused at the edge: the vendor decides (404 here)
            reply = await client.post(path, json={"model": name, "messages": MESSAGES,
                                                  "max_tokens": 5})  # fmt: skip
            assert reply.status == 404, name
    finally:
        await client.close()


async def test_a_100_kb_model_name_is_a_400_and_metrics_stay_small() -> None:
    client = await edge_client(OneModelVendor())
    try:
        before = await _metrics_size(client)
        reply = await client.post(
            "/v1/chat/completions", json={"model": "m" * 100_000, "messages": MESSAGES}
        )
        assert reply.status == 400
        assert (await reply.json())["error"]["param"] == "model"
        assert len(await reply.read()) < 1000  # the name is not echoed back
        assert await _metrics_size(client) < before + 2000
    finally:
        await client.close()


async def test_ten_thousand_unknown_models_do_not_grow_metrics_or_health() -> None:
    client = await edge_client(OneModelVendor())
    try:
        body = {"model": "known-model", "messages": MESSAGES}
        assert (await client.post("/v1/chat/completions", json=body)).status == 200

        async def unknown(i: int) -> int:
            reply = await client.post(
                "/v1/chat/completions", json={"model": f"unknown-{i}", "messages": MESSAGES}
            )
            return reply.status

        assert set(await asyncio.gather(*(unknown(i) for i in range(100)))) == {404}
        settled = await _metrics_size(client)
        for start in range(100, 10_000, 200):
            statuses = await asyncio.gather(*(unknown(i) for i in range(start, start + 200)))
            assert set(statuses) == {404}
        text = (await (await client.get("/metrics")).read()).decode()
        assert len(text) < settled + 200  # counter values grow by a few digits, nothing else
        assert "unknown-" not in text
        assert 'gen_ai_request_model="known-model"' in text
        assert 'gen_ai_request_model="other"' in text
    finally:
        await client.close()


def test_health_map_is_bounded_and_keeps_busy_deployments() -> None:
    health = HealthTracker(max_deployments=100)
    health.started("busy/model")
    for i in range(10_000):
        health.started(f"openai/unknown-{i}")
        health.finished(f"openai/unknown-{i}", ok=False)
    assert len(health) == 100
    assert health.view("busy/model").in_flight == 1  # in flight: never dropped
    assert health.view("openai/unknown-9999").samples == 1  # the recent ones are kept
    assert health.view("openai/unknown-0").samples == 0  # the idle old ones are gone
    health.closed("openai/unknown-0")  # closing a dropped entry does not bring it back
    assert len(health) == 100


def test_vendor_labels_drop_client_model_parts_of_deployment_ids() -> None:
    known = KnownNames(vendors=frozenset({"openai", "backup"}),
                       deployments=frozenset({"fast-pool"}))  # fmt: skip
    metrics = GatewayMetrics(lambda: known)
    for i in range(1000):
        metrics.on_event(FallbackTaken("r", f"openai/client-{i}", f"backup/client-{i}", "E"))
        attempt = Attempt(vendor="openai", model=f"client-{i}", status="ModelNotFound", error="x",
                          duration_s=0.001)  # fmt: skip
        metrics.on_event(AttemptFinished("r", attempt))
    metrics.on_event(FallbackTaken("r", "fast-pool", "nowhere/x", "E"))
    text = metrics.render().decode()
    assert "client-" not in text
    assert 'from_vendor="openai",reason="E",to_vendor="backup"' in text
    assert 'from_vendor="fast-pool",reason="E",to_vendor="other"' in text


# --- nesting, Python's messages, huge Retry-After ---------------------------------------------
def _nested(levels: int) -> Any:
    value: Any = {"type": "object"}
    for _ in range(levels - 1):
        value = {"nested": value}
    return value


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/messages", "/api/v1/chat/completions"]
)
async def test_deeply_nested_json_is_a_400_naming_the_field(path: str) -> None:
    client = await edge_client(OneModelVendor())
    try:
        body = {"model": "known-model", "messages": MESSAGES, "max_tokens": 5,
                "response_format": _nested(300)}  # fmt: skip
        reply = await client.post(path, json=body)
        assert reply.status == 400
        assert "response_format" in await reply.text()
        arrays: Any = [[[[1]]]]
        for _ in range(100):
            arrays = [arrays]
        reply = await client.post(path, json={**body, "response_format": None, "stop": arrays})
        assert reply.status == 400
        assert "stop" in await reply.text()
        ok = {**body, "response_format": _nested(40)}  # deep schemas still pass
        assert (await client.post(path, json=ok)).status == 200
    finally:
        await client.close()


class RaisingVendor(OneModelVendor):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def send(self, request: Request) -> Response:
        raise self.error


async def test_pythons_value_error_messages_do_not_reach_the_client() -> None:
    try:
        int("secret-ish internals")
    except ValueError as exc:
        python_error = exc
    client = await edge_client(RaisingVendor(python_error))
    try:
        reply = await client.post(
            "/v1/chat/completions", json={"model": "known-model", "messages": MESSAGES}
        )
        text = await reply.text()
        assert reply.status == 400
        assert "internals" not in text
        assert "int()" not in text
        assert (await reply.json())["error"]["message"] == (
            "the request has a value that cannot be used"
        )
    finally:
        await client.close()


async def test_our_value_error_messages_still_name_the_field() -> None:
    client = await edge_client(OneModelVendor())
    try:
        body = {"model": "known-model", "messages": MESSAGES, "temperature": 7}
        reply = await client.post("/v1/chat/completions", json=body)
        assert reply.status == 400
        assert (await reply.json())["error"]["param"] == "temperature"
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("hint", "header"), [(float("inf"), "3600"), (1e9, "3600"), (float("nan"), None), (2.2, "3")]
)
async def test_any_retry_after_gives_a_json_429(hint: float, header: str | None) -> None:
    from llmdispatcher.errors import RateLimitError

    error = RateLimitError("slow down", vendor="echo", status=429, retry_after=hint)
    client = await edge_client(RaisingVendor(error))
    try:
        reply = await client.post(
            "/v1/chat/completions", json={"model": "known-model", "messages": MESSAGES}
        )
        assert reply.status == 429
        assert (await reply.json())["error"]["type"] == "rate_limit_error"
        assert reply.headers.get("retry-after") == header
    finally:
        await client.close()


# --- CSRF and DNS rebinding -------------------------------------------------------------------
CHAT = {"model": "known-model", "messages": MESSAGES}


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
    from llmdispatcher.gateway.throttle import Throttle

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
