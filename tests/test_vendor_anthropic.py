"""Our Anthropic adapter through the Dispatcher against the strict fake Anthropic server.

Backoff waits go through a FakeClock, so nothing here sleeps in real time.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, RetryPolicy, StreamChunk, Usage
from llmdispatcher.errors import (
    AuthenticationError,
    ConfigError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    StreamInterrupted,
    UnsupportedRequest,
    VendorConnectionError,
    VendorError,
    VendorServerError,
    VendorTimeout,
    VendorUnavailable,
)
from llmdispatcher.types import ToolCall
from llmdispatcher.vendors import OpenAIVendor, vendor_class
from llmdispatcher.vendors.anthropic import (
    AnthropicStreamDecoder,
    AnthropicVendor,
    anthropic_error_info,
    map_stop_reason,
    refine_error,
    usage_from_anthropic,
)
from llmdispatcher.vendors.error_mapping import error_for
from tests.fakes.anthropic_fake import FakeAnthropic, adapter_for
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.fixtures_anthropic import FAKE_ANTHROPIC_KEY as KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "claude-sonnet-4-6"
HELLO = Request(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def vendor(fake: FakeAnthropic, name: str = "anthropic", **kwargs: Any) -> AnthropicVendor:
    return AnthropicVendor(api_key=KEY, base_url=fake.url, name=name, **kwargs)


def dispatcher(*vendors: Any, clock: FakeClock | None = None, **config: Any) -> Dispatcher:
    policy = config.pop("retry_policy", RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8))
    return Dispatcher(
        Config(retry_policy=policy, **config),
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


async def send(fake: FakeAnthropic, request: Request, **kwargs: Any) -> Any:
    async with dispatcher(vendor(fake, **kwargs)) as d:
        return await d.send(request)


# ---------------------------------------------------------------------------- translation
async def test_send_translates_text_usage_and_headers(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(
        Reply(text="Hello there!", prompt_tokens=7, completion_tokens=3, cached_tokens=2)
    )
    response = await send(fake_anthropic, HELLO)
    assert (response.content, response.vendor, response.model) == (
        "Hello there!",
        "anthropic",
        MODEL,
    )
    assert response.finish_reason == "stop"
    assert response.usage == Usage(7, 3, 10, cached_tokens=2)
    assert response.id.startswith("msg_01")
    sent = fake_anthropic.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
    }


async def test_request_fields_are_translated(fake_anthropic: FakeAnthropic) -> None:
    request = Request(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": ""},  # says nothing: dropped, the users merge
            {"role": "user", "content": [{"type": "text", "text": "three"}]},
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END", "STOP"],
        user="user-1",
        extra={"top_k": 5, "model": "not-this-one"},
    )
    await send(fake_anthropic, request)
    body = fake_anthropic.requests[-1].json
    assert body["system"] == "Be brief.\n\nBe kind."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": t} for t in ("one", "two", "three")],
        }
    ]
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.9, 5)
    assert (body["max_tokens"], body["stop_sequences"]) == (50, ["END", "STOP"])
    assert body["metadata"] == {"user_id": "user-1"}
    assert body["model"] == MODEL


async def test_default_max_tokens_is_configurable(fake_anthropic: FakeAnthropic) -> None:
    await send(fake_anthropic, HELLO, default_max_tokens=123)
    assert fake_anthropic.requests[-1].json["max_tokens"] == 123


async def test_temperature_above_one_is_refused_before_sending(
    fake_anthropic: FakeAnthropic,
) -> None:
    request = Request(model=MODEL, messages=HELLO.messages, temperature=1.5)
    with pytest.raises(InvalidRequestError) as caught:
        await send(fake_anthropic, request)
    assert isinstance(caught.value, UnsupportedRequest)  # another vendor may take it
    assert "request.temperature" in str(caught.value)
    assert "0 to 1" in str(caught.value)
    assert fake_anthropic.requests == []


async def test_api_version_2026_drops_sampling_with_one_warning(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmdispatcher")
    hot = Request(model=MODEL, messages=HELLO.messages, temperature=1.5, top_p=0.5)
    async with dispatcher(vendor(fake_anthropic, api_version="2026-10-21")) as d:
        await d.send(hot)
        await collect(d.stream(hot))
    for sent in fake_anthropic.requests:
        assert sent.headers["anthropic-version"] == "2026-10-21"
        assert not {"temperature", "top_p", "top_k"} & set(sent.json)
    warnings = [r for r in caplog.records if r.name == "llmdispatcher"]
    assert len(warnings) == 1
    assert "temperature" in warnings[0].getMessage()
    assert "2023-06-01" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
async def test_tools_and_tool_choice(
    fake_anthropic: FakeAnthropic, choice: Any, expected: dict[str, str]
) -> None:
    request = Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER], tool_choice=choice)
    await send(fake_anthropic, request)
    body = fake_anthropic.requests[-1].json
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == expected


async def test_unknown_tool_choice_is_refused(fake_anthropic: FakeAnthropic) -> None:
    request = Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER], tool_choice="maybe")
    with pytest.raises(InvalidRequestError, match=r"request\.tool_choice"):
        await send(fake_anthropic, request)
    assert fake_anthropic.requests == []


async def test_tool_round_trip_history_alternates(fake_anthropic: FakeAnthropic) -> None:
    calls = [
        ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
        ToolCall("toolu_2", "get_weather", ""),
    ]
    request = Request(
        model=MODEL,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "9C"}],
            },
            {"role": "user", "content": "and tomorrow?"},
        ],
    )
    response = await send(fake_anthropic, request)  # the strict fake checks the pairing
    assert response.content == "Hello from the fake"
    messages = fake_anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
    ]
    assert messages[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "18C"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "content": [{"type": "text", "text": "9C"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
async def test_tool_arguments_must_be_a_json_object(
    fake_anthropic: FakeAnthropic, arguments: str
) -> None:
    request = Request(
        model=MODEL,
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [ToolCall("t1", "f", arguments)]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ],
    )
    with pytest.raises(InvalidRequestError, match=r"messages\[1\].*JSON object"):
        await send(fake_anthropic, request)
    assert fake_anthropic.requests == []


async def test_tool_calls_in_a_response(fake_anthropic: FakeAnthropic) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_time")]
    fake_anthropic.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls"))
    response = await send(
        fake_anthropic, Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER])
    )
    assert response.finish_reason == "tool_calls"
    assert response.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert all(c.id.startswith("toolu_01") for c in response.tool_calls)


async def test_stream_text_then_one_final_chunk(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(
        Reply(text="Streaming works fine.", chunk_size=3, prompt_tokens=5, completion_tokens=4)
    )
    async with dispatcher(vendor(fake_anthropic)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "Streaming works fine."
    assert len([c for c in chunks if c.delta]) == 7
    assert [c.finish_reason for c in chunks] == [None] * 7 + ["stop"]
    # message_start's output_tokens (1) is a placeholder: it must not be added
    assert chunks[-1].usage == Usage(5, 4, 9)
    assert fake_anthropic.requests[-1].json["stream"] is True


async def test_streamed_tool_calls_are_assembled(fake_anthropic: FakeAnthropic) -> None:
    specs = [
        ToolCallSpec("get_weather", {"city": "Paris", "unit": "celsius"}),
        ToolCallSpec("get_time"),  # no arguments: Anthropic streams no JSON for it
    ]
    fake_anthropic.enqueue(
        Reply(text="Let me see.", tool_calls=specs, finish="tool_calls", chunk_size=4)
    )
    request = Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER])
    async with dispatcher(vendor(fake_anthropic)) as d:
        chunks = await collect(d.stream(request))
    assert "".join(c.delta for c in chunks) == "Let me see."
    arguments: dict[int, list[str]] = {}
    heads: dict[int, tuple[str | None, str | None]] = {}
    for chunk in chunks:
        for index, call_id, name, fragment in chunk.tool_call_deltas:
            if name is not None:
                heads[index] = (call_id, name)
                assert fragment == ""
            arguments.setdefault(index, []).append(fragment)
    assert [name for _, name in heads.values()] == ["get_weather", "get_time"]
    assert all(call_id and call_id.startswith("toolu_01") for call_id, _ in heads.values())
    assert json.loads("".join(arguments[0])) == {"city": "Paris", "unit": "celsius"}
    assert json.loads("".join(arguments[1])) == {}
    assert len(arguments[0]) > 4  # really fragmented
    assert chunks[-1].finish_reason == "tool_calls"


async def test_images_data_uri_and_url(fake_anthropic: FakeAnthropic) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    await send(
        fake_anthropic, Request(model=MODEL, messages=[{"role": "user", "content": content}])
    )
    blocks = fake_anthropic.requests[-1].json["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


async def test_unsupported_image_type_is_refused(fake_anthropic: FakeAnthropic) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]
    with pytest.raises(UnsupportedRequest, match="image/bmp"):
        await send(
            fake_anthropic, Request(model=MODEL, messages=[{"role": "user", "content": content}])
        )
    assert fake_anthropic.requests == []


async def test_json_schema_becomes_a_closed_output_config(fake_anthropic: FakeAnthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "required": ["city"],
    }
    fake_anthropic.enqueue(Reply(text='{"city": {"name": "Oslo"}}'))
    request = Request(
        model=MODEL,
        messages=HELLO.messages,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    response = await send(fake_anthropic, request)  # the fake rejects unclosed objects
    assert json.loads(response.content) == {"city": {"name": "Oslo"}}
    sent = fake_anthropic.requests[-1].json["output_config"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["schema"]["additionalProperties"] is False
    assert sent["schema"]["properties"]["city"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is left alone


async def test_json_object_is_a_forced_tool_whose_input_is_the_text(
    fake_anthropic: FakeAnthropic,
) -> None:
    answer = ToolCallSpec("json_output", {"answer": 42, "items": ["a", "b"]})
    fake_anthropic.enqueue(
        Reply(text="", tool_calls=[answer], finish="tool_calls"),
        Reply(text="", tool_calls=[answer], finish="tool_calls", chunk_size=5),
    )
    request = Request(model=MODEL, messages=HELLO.messages, response_format={"type": "json_object"})
    async with dispatcher(vendor(fake_anthropic)) as d:
        response = await d.send(request)
        chunks = await collect(d.stream(request))
    body = fake_anthropic.requests[0].json
    assert body["tool_choice"] == {"type": "tool", "name": "json_output"}
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert "output_config" not in body
    assert json.loads(response.content) == answer.arguments
    assert (response.finish_reason, response.tool_calls) == ("stop", ())
    assert json.loads("".join(c.delta for c in chunks)) == answer.arguments
    assert not any(c.tool_call_deltas for c in chunks)
    assert chunks[-1].finish_reason == "stop"


async def test_json_object_with_tools_is_refused(fake_anthropic: FakeAnthropic) -> None:
    request = Request(
        model=MODEL,
        messages=HELLO.messages,
        tools=[WEATHER],
        response_format={"type": "json_object"},
    )
    with pytest.raises(UnsupportedRequest, match="json_schema"):
        await send(fake_anthropic, request)


@pytest.mark.parametrize(
    ("finish", "expected"), [("length", "length"), ("content_filter", "content_filter")]
)
async def test_finish_reasons(fake_anthropic: FakeAnthropic, finish: str, expected: str) -> None:
    fake_anthropic.enqueue(Reply(finish=finish), Reply(finish=finish))
    async with dispatcher(vendor(fake_anthropic)) as d:
        assert (await d.send(HELLO)).finish_reason == expected
        assert (await collect(d.stream(HELLO)))[-1].finish_reason == expected


def test_every_stop_reason_maps() -> None:
    expected = {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
    assert {raw: map_stop_reason(raw, True) for raw in expected} == expected
    assert map_stop_reason(None, True) == "tool_calls"
    assert map_stop_reason(None, False) is None


def test_usage_counts_cache_reads_writes_and_thinking() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 50,
            "output_tokens_details": {"thinking_tokens": 20},
        }
    )
    assert usage == Usage(
        1110, 50, 1160, cached_tokens=1000, reasoning_tokens=20, cache_write_tokens=100
    )


async def test_reasoning_and_cached_tokens_from_the_wire(fake_anthropic: FakeAnthropic) -> None:
    reply = Reply(prompt_tokens=30, completion_tokens=20, cached_tokens=25, reasoning_tokens=8)
    fake_anthropic.enqueue(reply, reply)
    async with dispatcher(vendor(fake_anthropic)) as d:
        sent = await d.send(HELLO)
        streamed = (await collect(d.stream(HELLO)))[-1].usage
    expected = Usage(30, 20, 50, cached_tokens=25, reasoning_tokens=8)
    assert sent.usage == expected
    assert streamed == expected


# -------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "error", "status", "retryable"),
    [
        ("rate_limit", RateLimitError, 429, True),
        ("quota", RateLimitError, 402, False),
        ("server", VendorServerError, 500, True),
        ("overloaded", VendorServerError, 529, True),
        ("auth", AuthenticationError, 401, False),
        ("bad_request", InvalidRequestError, 400, False),
        ("not_found", ModelNotFound, 404, False),
        # Anthropic gives "prompt is too long" no distinct type: it stays a bad request
        ("context_length", InvalidRequestError, 400, False),
        ("timeout", VendorTimeout, 408, True),
        ("conflict", VendorServerError, 409, True),
    ],
)
async def test_error_kinds_map_to_classes(
    fake_anthropic: FakeAnthropic, kind: str, error: type[VendorError], status: int, retryable: bool
) -> None:
    fake_anthropic.enqueue(Fail(kind))
    v = vendor(fake_anthropic)
    try:
        with pytest.raises(VendorError) as caught:
            await v.send(HELLO)
    finally:
        await v.aclose()
    assert type(caught.value) is error
    assert not isinstance(caught.value, ContextLengthExceeded)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_")
    assert caught.value.error_type is not None
    assert caught.value.error_type.endswith("_error")


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [(413, "bad_request", InvalidRequestError), (403, "auth", AuthenticationError)],
)
async def test_413_and_403_are_not_retried(
    fake_anthropic: FakeAnthropic, status: int, kind: str, error: type[VendorError]
) -> None:
    fake_anthropic.enqueue(Fail(kind, status=status))
    with pytest.raises(error) as caught:
        await send(fake_anthropic, HELLO)
    assert (caught.value.status, caught.value.retryable) == (status, False)
    assert len(fake_anthropic.requests) == 1


def test_spend_limit_429_is_not_retried() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "spend limit reached",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
        "request_id": "req_1",
    }
    info = anthropic_error_info(429, {}, json.dumps(body).encode())
    error = refine_error(error_for(429, info, vendor="anthropic"))
    assert isinstance(error, RateLimitError)
    assert (error.retryable, error.error_code, error.request_id) == (
        False,
        "enforced_spend_limit_reached",
        "req_1",
    )
    plain = anthropic_error_info(429, {"request-id": "req_2"}, b"<html>busy</html>")
    assert refine_error(error_for(429, plain, vendor="a")).retryable is True
    assert plain.request_id == "req_2"


@pytest.mark.parametrize("kind", ["rate_limit", "server", "overloaded", "timeout", "conflict"])
async def test_retryable_kinds_are_retried(fake_anthropic: FakeAnthropic, kind: str) -> None:
    fake_anthropic.enqueue(Fail(kind), Fail(kind), Reply(text="third time lucky"))
    clock = FakeClock()
    async with dispatcher(vendor(fake_anthropic), clock=clock) as d:
        response = await d.send(HELLO)
    assert response.content == "third time lucky"
    assert len(fake_anthropic.requests) == 3
    assert len(clock.sleeps) == 2


async def test_quota_falls_back_to_another_vendor(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.enqueue(Fail("quota"))
    fake_openai.enqueue(Reply(text="from openai"))
    backup = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1")
    clock = FakeClock()
    async with dispatcher(
        vendor(fake_anthropic), backup, clock=clock, fallback_vendors=("openai",)
    ) as d:
        response = await d.send(HELLO)
    assert (response.vendor, response.content) == ("openai", "from openai")
    assert len(fake_anthropic.requests) == 1
    assert clock.sleeps == []


async def test_retry_after_headers_are_honoured(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(
        Fail("rate_limit", retry_after="3"),
        Fail("overloaded", retry_after_ms="1250", retry_after="9"),
        Reply(),
    )
    clock = FakeClock()
    async with dispatcher(vendor(fake_anthropic), clock=clock) as d:
        await d.send(HELLO)
    assert clock.sleeps == [3.0, 1.25]


# ------------------------------------------------------------------------------------ streams
async def test_stream_failure_before_first_token_is_retried(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(
        MidStreamError(after_chunks=0, kind="overloaded"),
        BreakStream(after_chunks=0),
        Reply(text="clean stream"),
    )
    async with dispatcher(vendor(fake_anthropic)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "clean stream"
    assert len(fake_anthropic.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [
        BreakStream(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
        MidStreamError(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
    ],
)
async def test_stream_failure_after_first_token_keeps_partial_text(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI, failure: BreakStream | MidStreamError
) -> None:
    fake_anthropic.enqueue(failure)
    backup = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1")
    seen: list[str] = []
    async with dispatcher(vendor(fake_anthropic), backup, fallback_vendors=("openai",)) as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in d.stream(HELLO):
                seen.append(chunk.delta)
    assert "".join(seen) == "Hello wo"
    assert caught.value.partial_text == "Hello wo"
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("overloaded", VendorServerError, 529),
        ("server", VendorServerError, 529),
        ("rate_limit", RateLimitError, 429),
        ("bad_request", InvalidRequestError, 400),
    ],
)
async def test_error_event_inside_a_stream(
    fake_anthropic: FakeAnthropic, kind: str, error: type[VendorError], status: int
) -> None:
    fake_anthropic.enqueue(MidStreamError(text="abcdefgh", after_chunks=1, kind=kind))
    v = vendor(fake_anthropic)
    got: list[str] = []
    try:
        with pytest.raises(VendorError) as caught:
            async for chunk in v.stream(HELLO):
                got.append(chunk.delta)
    finally:
        await v.aclose()
    assert "".join(got) == "abcd"  # what came before the error reached the caller first
    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.retryable is (status >= 429)


async def test_a_stream_cut_before_message_stop_is_a_connection_error(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue(BreakStream(text="abcdefgh", after_chunks=2))
    v = vendor(fake_anthropic)
    try:
        with pytest.raises(VendorConnectionError):
            await collect(v.stream(HELLO))
    finally:
        await v.aclose()


def _frames(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e}\ndata: {json.dumps(d)}\n\n".encode() for e, d in events)


def test_decoder_skips_ping_unknown_and_thinking_and_needs_message_stop() -> None:
    v = AnthropicVendor(api_key=KEY)
    decoder = AnthropicStreamDecoder(v, "m", None)
    start = {
        "model": "claude-x",
        "usage": {"input_tokens": 11, "cache_read_input_tokens": 4, "output_tokens": 1},
    }
    data = _frames(
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        ("brand_new_event", {"type": "brand_new_event"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": "Hi"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "!"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 7},
            },
        ),
    )
    chunks = list(decoder.feed(data[:37])) + list(decoder.feed(data[37:]))
    assert [c.delta for c in chunks] == ["Hi", "!", ""]
    assert chunks[-1].usage == Usage(15, 7, 22, cached_tokens=4)
    assert {c.model for c in chunks} == {"claude-x"}
    with pytest.raises(VendorConnectionError, match="message_stop"):
        list(decoder.finish())
    assert list(decoder.feed(_frames(("message_stop", {"type": "message_stop"})))) == []
    assert list(decoder.finish()) == []


# ------------------------------------------------------------------- setup, listing and health
def test_env_var_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert AnthropicVendor.from_env() is None
    with pytest.raises(ConfigError, match=r"ANTHROPIC_API_KEY.*api_key="):
        AnthropicVendor()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-123456")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.local:8080/")
    made = AnthropicVendor.from_env()
    assert isinstance(made, AnthropicVendor)
    assert (made.name, made.base_url) == ("anthropic", "http://proxy.local:8080")
    assert made.secrets() == ("sk-ant-from-env-123456",)
    assert "sk-ant-from-env" not in repr(made)
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    assert AnthropicVendor().base_url == "https://api.anthropic.com"
    assert vendor_class("anthropic") is AnthropicVendor


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"api_version": "latest"}, "api_version"), ({"default_max_tokens": 0}, "default_max_tokens")],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        AnthropicVendor(api_key=KEY, **kwargs)


async def test_list_models_follows_pages_and_health() -> None:
    names = [f"claude-model-{i:02d}" for i in range(25)]
    with FakeAnthropic(api_key=KEY, models=names) as fake:
        v = adapter_for(fake)
        try:
            assert await v.list_models() == names
            health = await v.health()
        finally:
            await v.aclose()
        paths = [(r.path, r.query) for r in fake.requests]
    assert paths[:2] == [("/v1/models", {}), ("/v1/models", {"after_id": "claude-model-19"})]
    assert health.ok
    assert paths[2] == ("/v1/models", {"limit": "1"})


async def test_health_reports_failures_without_the_key(fake_anthropic: FakeAnthropic) -> None:
    wrong = "sk-ant-wrong-key-abcdefghijkl"
    bad = AnthropicVendor(api_key=wrong, base_url=fake_anthropic.url)
    dead = AnthropicVendor(api_key=KEY, base_url="http://127.0.0.1:9")
    try:
        bad_health, dead_health = await bad.health(), await dead.health()
    finally:
        await bad.aclose()
        await dead.aclose()
    assert not bad_health.ok
    assert "authentication_error" in bad_health.detail
    assert wrong not in bad_health.detail
    assert not dead_health.ok


async def test_the_key_never_appears_in_errors(fake_anthropic: FakeAnthropic) -> None:
    wrong = "sk-ant-wrong-key-abcdefghijkl"
    fake_anthropic.enqueue(Fail("server", message=f"echoing {wrong} back"))
    bad = AnthropicVendor(api_key=wrong, base_url=fake_anthropic.url)
    async with dispatcher(bad, retry_policy=RetryPolicy(max_retries=0)) as d:
        with pytest.raises(VendorUnavailable) as first:
            await d.send(HELLO)
        with pytest.raises(AuthenticationError) as second:
            await d.send(HELLO)
    for text in (str(first.value), repr(first.value), str(second.value), repr(bad)):
        assert wrong not in text
    assert "***" in str(first.value)
    assert "invalid x-api-key" in str(second.value)
