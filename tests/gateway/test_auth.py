"""Gateway API keys: bearer tokens (and ``x-api-key`` on /v1/messages), per-key model
allow-lists, open endpoints, and the refusal to listen publicly without keys."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.cli import CliInvoker
from tests.gateway import AUTH, KEY, MINI_KEY, call

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer wrong-key-0123456789"}, "invalid_api_key"),
        ({"Authorization": f"Basic {KEY}"}, "missing_api_key"),
        ({"x-api-key": KEY}, "missing_api_key"),  # only /v1/messages takes x-api-key
    ],
)
def test_refused_without_a_valid_key(gateway: str, headers: dict[str, str], code: str) -> None:
    reply = call("POST", f"{gateway}/v1/chat/completions", CHAT, headers)
    assert reply.status == 401
    assert reply.json()["error"]["code"] == code
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert reply.headers["x-request-id"]


def test_the_sdk_sees_an_authentication_error(gateway: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="wrong-key-0123456789", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]


def test_allowed_models_per_key(gateway: str) -> None:
    mini = {"Authorization": f"Bearer {MINI_KEY}"}  # stored as its sha256 only
    denied = call("POST", f"{gateway}/v1/chat/completions", CHAT, mini)
    assert denied.status == 403
    assert denied.json()["error"]["param"] == "model"
    allowed = {**CHAT, "model": "gpt-4o-mini"}
    assert call("POST", f"{gateway}/v1/chat/completions", allowed, mini).status == 200
    listed = call("GET", f"{gateway}/v1/models", headers=mini).json()["data"]
    assert listed
    assert all(m["id"].startswith("gpt-4o-mini") for m in listed)


def test_open_and_closed_endpoints(gateway: str) -> None:
    assert call("GET", f"{gateway}/api/v1/health").status == 200
    assert call("GET", f"{gateway}/openapi.json").status == 200
    for path in ("/metrics", "/api/v1/stats", "/api/v1/vendors", "/v1/models"):
        assert call("GET", f"{gateway}{path}").status == 401, path
        assert call("GET", f"{gateway}{path}", headers=AUTH).status == 200, path


def test_request_ids(gateway: str) -> None:
    given = call("GET", f"{gateway}/api/v1/health", headers={"x-request-id": "trace-abc.123"})
    assert given.headers["x-request-id"] == "trace-abc.123"
    odd = call(
        "GET", f"{gateway}/api/v1/health", headers={"x-request-id": "not a sane id; <script>"}
    )
    assert odd.headers["x-request-id"] != "not a sane id; <script>"


def test_public_host_without_keys_is_refused(cli: CliInvoker, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("vendors:\n  local: {type: ollama}\n")
    result = cli("--config", config, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.output
    assert "--allow-unauthenticated" in result.output


@pytest.fixture
def cli() -> CliInvoker:
    return CliInvoker()
