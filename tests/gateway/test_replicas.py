"""Two gateway processes sharing one PostgreSQL key store and one Redis: a key made on one
works on the other, a revocation reaches the other within a second (measured), and a budget
they share is never exceeded."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import ADMIN_KEY, GatewayProcess, call
from tests.ledger.test_ledger import _postgres_schema, postgres_server

__all__ = ["postgres_server"]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_server: str, redis_url: str, fake_openai: FakeOpenAI
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    schema_urls = _postgres_schema(postgres_server)
    store = next(schema_urls)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                f"state_url: '{redis_url}'",
                "ledger_url: none",
                "gateway:",
                f"  key_store_url: '{store}'",
                f"  admin_key: {ADMIN_KEY}",
                "  key_refresh_s: 0.5",
                "  auth_failures_per_minute: 100000",  # the polls below send refused keys
                "vendors:",
                f"  openai: {{type: openai, base_url: '{fake_openai.url}/v1', "
                f"api_key: {FAKE_OPENAI_KEY}}}",
            ]
        )
    )
    first, second = GatewayProcess("--config", config), GatewayProcess("--config", config)
    try:
        first.wait_listening()
        second.wait_listening()
        yield first, second
    finally:
        first.stop()
        second.stop()
        next(schema_urls, None)


def _chat(gateway: GatewayProcess, key: str) -> int:
    auth = {"Authorization": f"Bearer {key}"}
    return call("POST", f"{gateway.url}/v1/chat/completions", CHAT, auth).status


def _until(gateway: GatewayProcess, key: str, status: int, within_s: float) -> float:
    """Seconds until ``gateway`` answers ``status`` for ``key`` (polling every 20 ms)."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < within_s:
        if _chat(gateway, key) == status:
            return elapsed
        time.sleep(0.02)
    raise AssertionError(f"no {status} within {within_s}s")


def test_create_on_one_use_on_the_other_revoke_within_a_second(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = replicas
    made = call("POST", f"{first.url}/admin/v1/keys", {"name": f"k-{uuid.uuid4().hex[:8]}"}, ADMIN)
    assert made.status == 201
    key, key_id = made.json()["key"], made.json()["id"]
    assert _chat(first, key) == 200  # at once on the replica that made it
    _until(second, key, 200, within_s=2.0)
    gone = call("DELETE", f"{second.url}/admin/v1/keys/{key_id}", None, ADMIN)
    assert gone.status == 200
    assert _chat(second, key) == 401
    lag = _until(first, key, 401, within_s=2.0)
    assert lag < 1.0, f"the other replica still accepted a revoked key after {lag:.2f}s"


def test_a_budget_shared_by_both_replicas_is_never_exceeded(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = replicas
    budget = Decimal("0.0002")
    body = {"name": f"b-{uuid.uuid4().hex[:8]}", "budget_usd": str(budget)}
    made = call("POST", f"{first.url}/admin/v1/keys", body, ADMIN).json()
    key = made["key"]
    _until(second, key, 200, within_s=2.0)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: _chat((first, second)[i % 2], key), range(120)))
    assert set(statuses) <= {200, 429}
    assert 429 in statuses
    usage = _usage(first, made["id"], len(statuses) + 1)  # refused ones count as requests too
    assert Decimal(usage["spent_usd"]) <= budget
    assert Decimal(usage["remaining_usd"]) >= 0


def _usage(gateway: GatewayProcess, key_id: str, requests: int) -> dict[str, str]:
    """The key's usage once it counts ``requests`` (a request is settled just after its
    answer is sent)."""
    for _ in range(100):
        usage: dict[str, str] = call(
            "GET", f"{gateway.url}/admin/v1/keys/{key_id}", None, ADMIN
        ).json()["usage"]
        if usage["requests"] == requests:
            return usage
        time.sleep(0.02)
    raise AssertionError(f"{usage['requests']} requests counted, not {requests}")
