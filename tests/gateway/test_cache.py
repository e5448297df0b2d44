"""The response cache through the gateway: ``Cache-Control`` request headers, the
``x-llmdispatcher-cache`` response header, streamed hits read by the official OpenAI SDK, and
the cache's metrics (with no ``*_created`` series on the page)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Cache, Config, Dispatcher, RetryPolicy
from llmdispatcher.gateway.app import create_app
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


@pytest.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[TestClient[Any, Any]]:
    vendor = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1")
    config = Config(cache=Cache(), retry_policy=RetryPolicy(max_retries=0))
    client = TestClient(TestServer(create_app(Dispatcher(config, vendors=[vendor]))))
    await client.start_server()
    yield client
    await client.close()


async def outcome(client: TestClient[Any, Any], body: dict[str, Any], **headers: str) -> str:
    reply = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert reply.status == 200, await reply.text()
    await reply.read()
    return reply.headers["x-llmdispatcher-cache"]


async def test_the_response_header_says_miss_hit_or_bypass(
    client: TestClient[Any, Any], fake_openai: FakeOpenAI
) -> None:
    seen = [
        await outcome(client, CHAT),
        await outcome(client, CHAT),
        await outcome(client, CHAT, **{"Cache-Control": "no-cache"}),
        await outcome(client, {**CHAT, "temperature": 1}),
        await outcome(client, {**CHAT, "stream": True}),
    ]
    assert seen == ["miss", "hit", "bypass", "bypass", "hit"]
    assert len(fake_openai.requests) == 3


async def test_no_store_keeps_the_answer_out(
    client: TestClient[Any, Any], fake_openai: FakeOpenAI
) -> None:
    first = await outcome(client, CHAT, **{"Cache-Control": "no-store"})
    assert [first, await outcome(client, CHAT)] == ["miss", "miss"]
    assert len(fake_openai.requests) == 2


async def test_a_streamed_hit_reads_like_the_original_in_the_openai_sdk(
    client: TestClient[Any, Any], fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply("Hello there, from a cached answer", completion_tokens=7))
    base = str(client.make_url("/v1"))
    async with openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], temperature=0
        )
        first = raw.parse()
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert raw.headers["x-llmdispatcher-cache"] == "miss"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content == "Hello there, from a cached answer"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert first.usage is not None
    assert chunks[-1].usage.model_dump() == first.usage.model_dump()
    assert len(fake_openai.requests) == 1


async def test_the_anthropic_endpoint_is_served_from_the_same_cache(
    client: TestClient[Any, Any], fake_openai: FakeOpenAI
) -> None:
    body = {**CHAT, "max_tokens": 50}
    await outcome(client, {**body, "max_completion_tokens": 50})
    reply = await client.post("/v1/messages", json=body)
    assert reply.status == 200, await reply.text()
    assert reply.headers["x-llmdispatcher-cache"] == "hit"
    assert (await reply.json())["content"][0]["text"] == "Hello from the fake"


async def test_metrics_count_hits_and_bytes_and_carry_no_created_series(
    client: TestClient[Any, Any],
) -> None:
    for _ in range(3):
        await outcome(client, CHAT)
    text = (await (await client.get("/metrics")).read()).decode()
    assert 'llmdispatcher_cache_requests_total{outcome="hit"} 2.0' in text
    assert 'llmdispatcher_cache_requests_total{outcome="miss"} 1.0' in text
    assert "llmdispatcher_cache_entries 1.0" in text
    assert "llmdispatcher_cache_saved_tokens_total 42.0" in text  # 2 hits x (9 + 12)
    size = next(line for line in text.splitlines() if line.startswith("llmdispatcher_cache_bytes "))
    assert float(size.split()[1]) > 0
    assert "_created" not in text
    stats = await (await client.get("/api/v1/stats")).json()
    assert (stats["total_requests"], stats["cache_hits"], stats["tokens_saved"]) == (3, 2, 42)


async def test_a_hit_reports_no_attempt_streamed_or_not(client: TestClient[Any, Any]) -> None:
    await outcome(client, CHAT)
    for body in (CHAT, {**CHAT, "stream": True}):
        reply = await client.post("/v1/chat/completions", json=body)
        await reply.read()
        assert reply.headers["x-llmdispatcher-cache"] == "hit"
        assert reply.headers["x-llmdispatcher-attempts"] == "0"


async def test_a_streamed_hit_reads_like_the_original_in_the_anthropic_sdk(
    client: TestClient[Any, Any], fake_openai: FakeOpenAI
) -> None:
    import anthropic

    fake_openai.enqueue(Reply("Bonjour from the cache", prompt_tokens=11, completion_tokens=5))
    base = str(client.make_url("")).rstrip("/")
    ask: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        # this SDK (2.x) has no temperature parameter any more; the Messages API still does
        "extra_body": {"temperature": 0},
    }
    async with anthropic.AsyncAnthropic(base_url=base, api_key="unused", max_retries=0) as sdk:
        raw = await sdk.messages.with_raw_response.create(**ask)
        first = await raw.parse()
        async with sdk.messages.stream(**ask) as stream:
            final = await stream.get_final_message()
    assert raw.headers["x-llmdispatcher-cache"] == "miss"
    assert final.content[0].text == first.content[0].text == "Bonjour from the cache"  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 5)
    assert (first.usage.input_tokens, first.usage.output_tokens) == (11, 5)
    assert final.stop_reason == first.stop_reason == "end_turn"
    assert len(fake_openai.requests) == 1
