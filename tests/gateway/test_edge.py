"""What the gateway refuses at its edge, in-process: model names, what a client can make the
metrics and the routing-health map hold, nesting, Python's error wording, huge Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmdispatcher import Request, Response
from llmdispatcher.errors import RateLimitError
from llmdispatcher.gateway.metrics import GatewayMetrics, KnownNames
from llmdispatcher.gateway.validation import MAX_MODEL_NAME
from llmdispatcher.observability.events import AttemptFinished, FallbackTaken
from llmdispatcher.routing.health import HealthTracker
from llmdispatcher.types import Attempt
from tests.gateway.inprocess import MESSAGES, OneModelVendor, edge_client, metrics_size

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
        before = await metrics_size(client)
        reply = await client.post(
            "/v1/chat/completions", json={"model": "m" * 100_000, "messages": MESSAGES}
        )
        assert reply.status == 400
        assert (await reply.json())["error"]["param"] == "model"
        assert len(await reply.read()) < 1000  # the name is not echoed back
        assert await metrics_size(client) < before + 2000
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
        settled = await metrics_size(client)
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


def test_a_vendor_registered_after_the_app_gets_its_own_label() -> None:
    vendors = {"openai"}
    metrics = GatewayMetrics(lambda: KnownNames(vendors=frozenset(vendors)))
    assert metrics.vendor_label("late") == "other"
    vendors.add("late")
    assert metrics.vendor_label("late") == "late"
    assert metrics.vendor_label("late/client-model") == "late"


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
