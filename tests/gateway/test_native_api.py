"""The native ``/api/v1`` endpoints, ``/metrics`` and ``/openapi.json`` on a running gateway."""

from __future__ import annotations

import json
import re

from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail
from tests.gateway import AUTH, MINI_AUTH, call

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hi"}]}


def test_health_needs_no_key(gateway: str) -> None:
    reply = call("GET", f"{gateway}/api/v1/health")
    assert reply.status == 200
    assert reply.json()["status"] == "ok"
    assert reply.json()["vendors"] == ["openai", "backup", "anthropic"]
    assert reply.headers["x-llmdispatcher-attempts"] == "0"


def test_chat_returns_the_dispatchers_response(gateway: str) -> None:
    reply = call("POST", f"{gateway}/api/v1/chat/completions", CHAT, AUTH)
    data = reply.json()
    assert (data["content"], data["vendor"], data["finish_reason"]) == (
        "Hello from the fake",
        "openai",
        "stop",
    )
    assert data["usage"]["total_tokens"] == 21
    assert [a["status"] for a in data["attempts"]] == ["ok"]


def test_chat_vendor_override_and_unknown_vendor(gateway: str, fake_openai_b: FakeOpenAI) -> None:
    reply = call("POST", f"{gateway}/api/v1/chat/completions", {**CHAT, "vendor": "backup"}, AUTH)
    assert reply.json()["vendor"] == "backup"
    assert len(fake_openai_b.requests) == 1
    bad = call("POST", f"{gateway}/api/v1/chat/completions", {**CHAT, "vendor": "nope"}, AUTH)
    assert bad.status == 400
    assert bad.json()["error"]["param"] == "vendor"


def test_chat_stream(gateway: str) -> None:
    reply = call("POST", f"{gateway}/api/v1/chat/completions/stream", CHAT, AUTH)
    frames = reply.body.decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-2]]
    assert "".join(c["delta"] for c in chunks) == "Hello from the fake"
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 21


def test_test_vendor(gateway: str, fake_openai: FakeOpenAI) -> None:
    ok = call("POST", f"{gateway}/api/v1/test/vendor", {"vendor": "openai"}, AUTH).json()
    assert (ok["ok"], ok["reachable"], ok["auth_ok"]) == (True, True, True)
    assert ok["latency_ms"] >= 0
    fake_openai.api_key = "another-key-0123456789"
    refused = call("POST", f"{gateway}/api/v1/test/vendor", {"vendor": "openai"}, AUTH).json()
    assert (refused["ok"], refused["reachable"], refused["auth_ok"]) == (False, True, False)
    probe = {"vendor": "backup", "model": "gpt-4o-mini"}
    assert call("POST", f"{gateway}/api/v1/test/vendor", probe, AUTH).json()["ok"] is True
    assert call("POST", f"{gateway}/api/v1/test/vendor", {"vendor": "x"}, AUTH).status == 400


def test_a_model_check_is_a_chat_request_of_the_key(
    gateway: str, fake_openai_b: FakeOpenAI
) -> None:
    """A check with a model goes where a chat request goes: the key's allowed models, the
    dispatcher's send path (limits, budgets, ledger), the stats."""
    url = f"{gateway}/api/v1/test/vendor"
    refused = call("POST", url, {"vendor": "backup", "model": "gpt-4o"}, MINI_AUTH)
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert fake_openai_b.requests == []
    before = call("GET", f"{gateway}/api/v1/stats", headers=AUTH).json()
    allowed = call("POST", url, {"vendor": "backup", "model": "gpt-4o-mini"}, MINI_AUTH)
    assert allowed.json()["ok"] is True
    assert allowed.headers["x-llmdispatcher-attempts"] == "1"
    assert len(fake_openai_b.requests) == 1
    after = call("GET", f"{gateway}/api/v1/stats", headers=AUTH).json()
    assert after["total_requests"] == before["total_requests"] + 1
    backup = (before["vendor_stats"].get("backup") or {}).get("requests", 0)
    assert after["vendor_stats"]["backup"]["requests"] == backup + 1
    bad = call("POST", url, {"vendor": "backup", "model": "../x"}, MINI_AUTH)
    assert bad.status == 400


def test_stats_and_vendors(gateway: str) -> None:
    call("POST", f"{gateway}/api/v1/chat/completions", CHAT, AUTH)
    stats = call("GET", f"{gateway}/api/v1/stats", headers=AUTH).json()
    assert stats["total_requests"] >= 1
    assert stats["workers"] == 1
    assert stats["vendor_stats"]["openai"]["requests"] >= 1
    vendors = call("GET", f"{gateway}/api/v1/vendors", headers=AUTH).json()["vendors"]
    assert [v["name"] for v in vendors] == ["openai", "backup", "anthropic"]
    assert all(v["health"]["ok"] and v["breaker"] == "closed" for v in vendors)


def test_routing_explain_sends_nothing(gateway: str, fake_anthropic: object) -> None:
    body = {"model": "claude-sonnet-4-6", "messages": CHAT["messages"]}
    plan = call("POST", f"{gateway}/api/v1/routing/explain", body, AUTH).json()
    assert plan["vendors"] == ["anthropic", "backup"]
    assert plan["rule"]["vendor"] == "anthropic"
    assert plan["reason"].startswith("rule")
    assert fake_anthropic.requests == []  # type: ignore[attr-defined]


def test_metrics(gateway: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"))  # one retry
    call("POST", f"{gateway}/v1/chat/completions", CHAT, AUTH)
    call("POST", f"{gateway}/v1/chat/completions", {**CHAT, "stream": True}, AUTH)
    assert call("GET", f"{gateway}/metrics").status == 401  # keys are configured
    reply = call("GET", f"{gateway}/metrics", headers=AUTH)
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    for name in (
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "llmdispatcher_gateway_overhead_seconds_bucket",
        "llmdispatcher_requests_total",
        "llmdispatcher_attempts_total",
        "llmdispatcher_retries_total",
        "llmdispatcher_http_requests_in_flight",
        "llmdispatcher_http_errors_total",
        "llmdispatcher_cost_usd_total",  # gpt-4o is in the shipped price table
    ):
        assert name in text, name
    assert re.search(
        r'llmdispatcher_retries_total\{reason="VendorServerError",vendor="openai"\} [1-9]', text
    )
    assert 'gen_ai_token_type="output"' in text
    assert 'gen_ai_provider_name="openai"' in text


def test_openapi_document(gateway: str) -> None:
    doc = call("GET", f"{gateway}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v1/chat/completions", "/v1/models", "/v1/messages", "/api/v1/health",
                 "/api/v1/routing/explain", "/metrics"):  # fmt: skip
        assert path in doc["paths"]
