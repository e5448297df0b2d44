"""The dispatcher end to end against the fake OpenAI server over real HTTP.

Backoff waits go through a FakeClock, so nothing here sleeps in real time (the only real waits
are short per-attempt timeouts against a stalling server).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator

import pytest

from llmdispatcher import (
    Config,
    Dispatcher,
    FakeClock,
    Request,
    RetryPolicy,
    StreamChunk,
    ToolCall,
    Usage,
)
from llmdispatcher.errors import (
    AuthenticationError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    StreamInterrupted,
    VendorServerError,
    VendorTimeout,
    VendorUnavailable,
)
from llmdispatcher.vendors import Connection, OpenAIVendor
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, Stall, ToolCallSpec

KEY = "sk-test-fake-0123456789"
HELLO = Request(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def vendor(fake: FakeOpenAI, name: str = "openai", **kwargs: object) -> OpenAIVendor:
    return OpenAIVendor(api_key=KEY, base_url=fake.url + "/v1", name=name, **kwargs)  # type: ignore[arg-type]


def dispatcher(
    *vendors: OpenAIVendor, clock: FakeClock | None = None, **config: object
) -> Dispatcher:
    policy = config.pop("retry_policy", RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8))
    return Dispatcher(
        Config(retry_policy=policy, **config),  # type: ignore[arg-type]
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


async def test_send_returns_text_usage_and_one_attempt(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="Hello there!",
            prompt_tokens=7,
            completion_tokens=3,
            cached_tokens=2,
            reasoning_tokens=1,
        )
    )
    async with dispatcher(vendor(fake_openai)) as d:
        response = await d.send(HELLO)
    assert response.content == "Hello there!"
    assert (response.vendor, response.model, response.finish_reason) == (
        "openai",
        "gpt-4o-mini",
        "stop",
    )
    assert response.usage == Usage(7, 3, 10, cached_tokens=2, reasoning_tokens=1)
    assert [(a.vendor, a.status) for a in response.attempts] == [("openai", "ok")]
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["messages"] == [{"role": "user", "content": "Say hello"}]
    assert "stream" not in sent.json


async def test_request_fields_are_translated(fake_openai: FakeOpenAI) -> None:
    request = Request(
        model="gpt-4o",
        messages=[{"role": "system", "content": "json please"}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        user="u1",
        response_format={"type": "json_object"},
        extra={"seed": 3},
    )
    async with dispatcher(vendor(fake_openai)) as d:
        await d.send(request)
    body = fake_openai.requests[-1].json
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_completion_tokens"] == 50
    assert body["stop"] == ["END"]
    assert body["user"] == "u1"
    assert body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 3


async def test_stream_yields_text_then_one_final_chunk(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(text="Streaming works fine.", chunk_size=3, prompt_tokens=5, completion_tokens=4)
    )
    async with dispatcher(vendor(fake_openai)) as d:
        chunks = await collect(d.stream(HELLO))
        stats = d.stats()
    *body, last = chunks
    assert len(body) == 7
    assert "".join(c.delta for c in body) == "Streaming works fine."
    assert all(c.finish_reason is None and c.usage is None for c in body)
    assert last.delta == ""
    assert last.finish_reason == "stop"
    assert last.usage == Usage(5, 4, 9)
    assert fake_openai.requests[-1].json["stream_options"] == {"include_usage": True}
    assert stats.vendor_stats["openai"].ttft_p50_s is not None


async def test_tool_calls_non_streamed(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris"}),
                ToolCallSpec("get_weather", {"city": "Oslo"}),
            ],
        )
    )
    request = Request(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    async with dispatcher(vendor(fake_openai)) as d:
        response = await d.send(request)
    assert response.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert all(c.id for c in response.tool_calls)
    assert fake_openai.requests[-1].json["tools"] == [WEATHER_TOOL]


async def test_tool_calls_streamed_assemble_by_index(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris", "unit": "celsius"}),
                ToolCallSpec("get_time", {"zone": "Europe/Oslo"}),
            ],
        )
    )
    request = Request(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )
    async with dispatcher(vendor(fake_openai)) as d:
        chunks = await collect(d.stream(request))
    calls: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for index, call_id, name, fragment in chunk.tool_call_deltas:
            if name:
                names[index] = name
                assert call_id
            calls.setdefault(index, []).append(fragment)
    assert names == {0: "get_weather", 1: "get_time"}
    assert json.loads("".join(calls[0])) == {"city": "Paris", "unit": "celsius"}
    assert json.loads("".join(calls[1])) == {"zone": "Europe/Oslo"}
    assert sum(len(c.tool_call_deltas) for c in chunks) > 4  # really fragmented
    assert chunks[-1].finish_reason == "tool_calls"


async def test_tool_round_trip_messages_are_sent_in_openai_shape(fake_openai: FakeOpenAI) -> None:
    request = Request(
        model="gpt-4o",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [ToolCall("call_1", "get_weather", '{"city":"Paris"}')],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
    )
    async with dispatcher(vendor(fake_openai)) as d:
        await d.send(request)
    messages = fake_openai.requests[-1].json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18C"}


@pytest.mark.parametrize("kind", ["rate_limit", "server", "overloaded", "timeout", "conflict"])
async def test_retryable_statuses_are_retried(fake_openai: FakeOpenAI, kind: str) -> None:
    fake_openai.enqueue(Fail(kind), Fail(kind), Reply(text="third time lucky"))
    clock = FakeClock()
    async with dispatcher(vendor(fake_openai), clock=clock) as d:
        response = await d.send(HELLO)
        stats = d.stats()
    assert response.content == "third time lucky"
    assert len(fake_openai.requests) == 3
    assert [a.status for a in response.attempts][-1] == "ok"
    assert len(response.attempts) == 3
    assert len(clock.sleeps) == 2
    assert stats.retries == 2


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("bad_request", InvalidRequestError),
        ("auth", AuthenticationError),
        ("not_found", ModelNotFound),
        ("context_length", ContextLengthExceeded),
        ("quota", RateLimitError),
    ],
)
async def test_non_retryable_statuses_are_not_retried(
    fake_openai: FakeOpenAI, kind: str, error: type[Exception]
) -> None:
    fake_openai.enqueue(Fail(kind))
    clock = FakeClock()
    async with dispatcher(vendor(fake_openai), clock=clock) as d:
        with pytest.raises(error) as caught:
            await d.send(HELLO)
    assert len(fake_openai.requests) == 1
    assert clock.sleeps == []
    assert caught.value.retryable is False  # type: ignore[attr-defined]
    assert caught.value.vendor == "openai"  # type: ignore[attr-defined]
    assert [a.vendor for a in caught.value.attempts] == ["openai"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("status", "kind"), [(422, "bad_request"), (403, "auth")])
async def test_422_and_403_are_not_retried(fake_openai: FakeOpenAI, status: int, kind: str) -> None:
    fake_openai.enqueue(Fail(kind, status=status))
    async with dispatcher(vendor(fake_openai)) as d:
        with pytest.raises((InvalidRequestError, AuthenticationError)) as caught:
            await d.send(HELLO)
    assert caught.value.status == status
    assert len(fake_openai.requests) == 1


async def test_retry_after_headers_are_honoured(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Fail("rate_limit", retry_after="3"),
        Fail("overloaded", retry_after_ms="1250", retry_after="9"),
        Reply(),
    )
    clock = FakeClock()
    async with dispatcher(vendor(fake_openai), clock=clock) as d:
        await d.send(HELLO)
    assert clock.sleeps == [3.0, 1.25]


async def test_retry_after_is_capped_by_max_delay(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("rate_limit", retry_after="600"), Reply())
    clock = FakeClock()
    policy = RetryPolicy(max_retries=1, max_delay=4.0)
    async with dispatcher(vendor(fake_openai), clock=clock, retry_policy=policy) as d:
        await d.send(HELLO)
    assert clock.sleeps == [4.0]


async def test_retries_exhausted_raise_vendor_unavailable(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(*[Fail("server")] * 3)
    async with dispatcher(vendor(fake_openai)) as d:
        with pytest.raises(VendorUnavailable) as caught:
            await d.send(HELLO)
        stats = d.stats()
    assert [a.status for a in caught.value.attempts] == ["VendorServerError"] * 3
    assert isinstance(caught.value.last_error, VendorServerError)
    assert "openai" in str(caught.value)
    assert (stats.total_requests, stats.failed_requests) == (1, 1)
    assert stats.vendor_stats["openai"].failures == 3


async def test_fallback_to_the_second_vendor(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[Fail("server")] * 3)
    fake_openai_b.enqueue(Reply(text="from backup"))
    async with dispatcher(
        vendor(fake_openai), vendor(fake_openai_b, "backup"), fallback_vendors=("backup",)
    ) as d:
        response = await d.send(HELLO)
        stats = d.stats()
    assert (response.vendor, response.content) == ("backup", "from backup")
    assert [a.vendor for a in response.attempts] == ["openai"] * 3 + ["backup"]
    assert (stats.fallbacks, stats.retries, stats.successful_requests) == (1, 2, 1)


async def test_auth_failure_falls_back_then_is_raised_as_itself_when_last(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("auth"))
    fake_openai_b.enqueue(Fail("auth"))
    async with dispatcher(
        vendor(fake_openai), vendor(fake_openai_b, "backup"), fallback_vendors=("backup",)
    ) as d:
        with pytest.raises(AuthenticationError) as caught:
            await d.send(HELLO)
    assert caught.value.vendor == "backup"
    assert [a.vendor for a in caught.value.attempts] == ["openai", "backup"]


async def test_bad_request_does_not_spend_fallbacks(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("bad_request"))
    async with dispatcher(
        vendor(fake_openai), vendor(fake_openai_b, "backup"), fallback_vendors=("backup",)
    ) as d:
        with pytest.raises(InvalidRequestError):
            await d.send(HELLO)
    assert fake_openai_b.requests == []


async def test_long_retry_after_fails_over_at_once(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("rate_limit", retry_after="120"))
    clock = FakeClock()
    async with dispatcher(
        vendor(fake_openai),
        vendor(fake_openai_b, "backup"),
        clock=clock,
        fallback_vendors=("backup",),
    ) as d:
        response = await d.send(HELLO)
    assert response.vendor == "backup"
    assert clock.sleeps == []


async def test_total_deadline_covers_backoff(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(*[Fail("server", retry_after="4")] * 5)
    clock = FakeClock()
    policy = RetryPolicy(max_retries=10, max_delay=10)
    async with dispatcher(vendor(fake_openai), clock=clock, retry_policy=policy, timeout=10.0) as d:
        with pytest.raises(VendorUnavailable) as caught:
            await d.send(HELLO)
    # two waits of 4 s fit in 10 s; the third would cross the deadline, so it is not taken
    assert clock.sleeps == [4.0, 4.0]
    assert len(caught.value.attempts) == 3


async def test_request_timeout_overrides_config_and_cuts_a_stalled_attempt(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(Stall(seconds=5))
    request = Request(model="m", messages=[{"role": "user", "content": "hi"}], timeout=0.3)
    async with dispatcher(vendor(fake_openai), timeout=60.0) as d:
        with pytest.raises(VendorTimeout, match=r"total deadline of 0.3s"):
            await d.send(request)
    assert await fake_openai.wait_for_disconnect_async(2.0)


async def test_per_attempt_read_timeout_is_retried(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=5), Reply(text="second try"))
    async with dispatcher(vendor(fake_openai, connection=Connection(timeout=0.2))) as d:
        response = await d.send(HELLO)
    assert response.content == "second try"
    assert response.attempts[0].status == "VendorTimeout"


async def test_stream_broken_before_first_token_is_retried(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        BreakStream(after_chunks=0), MidStreamError(after_chunks=0), Reply(text="clean stream")
    )
    async with dispatcher(vendor(fake_openai)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "clean stream"
    assert len(fake_openai.requests) == 3


async def test_stream_broken_before_first_token_falls_back(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[BreakStream(after_chunks=0)] * 3)
    fake_openai_b.enqueue(Reply(text="backup stream"))
    async with dispatcher(
        vendor(fake_openai), vendor(fake_openai_b, "backup"), fallback_vendors=("backup",)
    ) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "backup stream"
    assert chunks[-1].vendor == "backup"


@pytest.mark.parametrize(
    "failure",
    [
        BreakStream(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
        MidStreamError(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
    ],
)
async def test_stream_broken_after_first_token_keeps_partial_text(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI, failure: BreakStream | MidStreamError
) -> None:
    fake_openai.enqueue(failure)
    seen: list[str] = []
    async with dispatcher(
        vendor(fake_openai), vendor(fake_openai_b, "backup"), fallback_vendors=("backup",)
    ) as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in d.stream(HELLO):
                seen.append(chunk.delta)
        stats = d.stats()
    assert "".join(seen) == "Hell" + "o wo"
    assert caught.value.partial_text == "Hello wo"
    assert fake_openai_b.requests == []  # never replayed elsewhere
    assert stats.failed_requests == 1


async def test_cancelling_the_caller_reaches_the_vendor(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=10))
    async with dispatcher(vendor(fake_openai)) as d:
        task = asyncio.create_task(d.send(HELLO))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await fake_openai.wait_for_disconnect_async(2.0)
        assert d.stats().failed_requests == 1


async def test_a_consumer_that_stops_mid_stream_hangs_up(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=10, after_chunks=2))
    async with dispatcher(vendor(fake_openai)) as d:
        stream = d.stream(HELLO)
        first = await anext(stream)
        assert first.delta
        await stream.aclose()  # type: ignore[attr-defined]
        assert await fake_openai.wait_for_disconnect_async(2.0)


async def test_connection_refused_is_retried_then_unavailable() -> None:
    dead = OpenAIVendor(api_key=KEY, base_url="http://127.0.0.1:9/v1")
    async with dispatcher(dead) as d:
        with pytest.raises(VendorUnavailable, match=r"VendorConnectionError|connection"):
            await d.send(HELLO)


async def test_no_api_key_in_errors_or_logs(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-abcdefghijklmnop"
    fake_openai.enqueue(*[Fail("server", message=f"echoing {wrong} back")] * 2)
    bad = OpenAIVendor(api_key=wrong, base_url=fake_openai.url + "/v1")
    caplog.set_level(logging.DEBUG, logger="llmdispatcher")
    async with dispatcher(bad, enable_logging=True, retry_policy=RetryPolicy(max_retries=1)) as d:
        with pytest.raises(VendorUnavailable) as first:
            await d.send(HELLO)
        with pytest.raises(AuthenticationError) as second:
            await d.send(HELLO)
    texts = [
        str(first.value),
        repr(first.value),
        str(second.value),
        repr(bad),
        caplog.text,
        repr(d.vendors),
    ]
    assert caplog.text  # logging was on and wrote something
    for text in texts:
        assert wrong not in text
    assert "***" in str(first.value)


async def test_logging_is_off_by_default_and_never_logs_content(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmdispatcher")
    async with dispatcher(vendor(fake_openai)) as d:
        await d.send(HELLO)
    assert caplog.text == ""
    async with dispatcher(vendor(fake_openai), enable_logging=True) as d:
        await d.send(HELLO)
    record = json.loads(caplog.records[-1].getMessage())
    assert record["event"] == "request"
    assert record["vendor"] == "openai"
    assert "Say hello" not in caplog.text


def test_sync_facade(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="sync answer"), Reply(text="sync stream"))
    with Dispatcher(vendors=[vendor(fake_openai)]) as d:
        assert d.send_sync(HELLO).content == "sync answer"
        assert "".join(c.delta for c in d.stream_sync(HELLO)) == "sync stream"


async def test_sync_facade_refuses_to_run_inside_a_loop(fake_openai: FakeOpenAI) -> None:
    async with dispatcher(vendor(fake_openai)) as d:
        with pytest.raises(RuntimeError, match=r"await the async method"):
            d.send_sync(HELLO)


async def test_stats_count_requests_tokens_and_latency(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(prompt_tokens=10, completion_tokens=5), Reply(prompt_tokens=20, completion_tokens=7)
    )
    async with Dispatcher(vendors=[vendor(fake_openai)]) as d:
        await d.send(HELLO)
        await collect(d.stream(HELLO))
        stats = d.stats()
    openai_stats = stats.vendor_stats["openai"]
    assert (stats.total_requests, stats.successful_requests) == (2, 2)
    assert (openai_stats.prompt_tokens, openai_stats.completion_tokens) == (30, 12)
    assert openai_stats.latency_p50_s is not None
    assert openai_stats.latency_p50_s > 0
    assert openai_stats.latency_p99_s is not None
    assert openai_stats.latency_p99_s >= openai_stats.latency_p50_s
