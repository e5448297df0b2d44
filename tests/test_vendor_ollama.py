"""OllamaVendor through the Dispatcher against the fake Ollama server, over real HTTP.

Backoff waits go through a FakeClock, so nothing here sleeps in real time.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ollama._client import _parse_host

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
    ConfigError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    StreamInterrupted,
    UnsupportedRequest,
    VendorConnectionError,
    VendorServerError,
    VendorUnavailable,
)
from llmdispatcher.vendors import Connection, vendor_class
from llmdispatcher.vendors.ollama import OllamaVendor, parse_host
from tests.fakes.fixtures_ollama import FAKE_OLLAMA_KEY as KEY
from tests.fakes.ollama_fake import FakeOllama, adapter_for
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "llama3.2"
HELLO = Request(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()


def dispatcher(*vendors: OllamaVendor, clock: FakeClock | None = None, **config: Any) -> Dispatcher:
    policy = config.pop("retry_policy", RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8))
    return Dispatcher(
        Config(retry_policy=policy, **config),
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


def ask(*messages: dict[str, Any], model: str = MODEL, **fields: Any) -> Request:
    return Request(model=model, messages=list(messages), **fields)


# ------------------------------------------------------------------------- request translation
async def test_send_returns_text_usage_and_one_attempt(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="Hello there!", prompt_tokens=7, completion_tokens=3))
    async with dispatcher(adapter_for(fake_ollama)) as d:
        response = await d.send(HELLO)
    assert (response.content, response.vendor, response.model) == ("Hello there!", "ollama", MODEL)
    assert response.finish_reason == "stop"
    assert response.usage == Usage(7, 3, 10)  # Ollama reports no cached or reasoning counts
    assert [(a.vendor, a.status) for a in response.attempts] == [("ollama", "ok")]
    sent = fake_ollama.last_request
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": False,  # explicit: Ollama streams when it is left out
    }


async def test_request_fields_go_under_options(fake_ollama: FakeOllama) -> None:
    request = ask(
        {"role": "system", "content": "json please"},
        {"role": "user", "content": "hi", "name": "bob"},
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        user="u1",
        metadata={"k": "v"},
        response_format={"type": "json_object"},
        extra={
            "seed": 3,
            "top_k": 20,
            "think": False,
            "keep_alive": "1h",
            "options": {"min_p": 0.1},
        },
    )
    vendor = adapter_for(fake_ollama, keep_alive="5m", num_ctx=8192)
    async with dispatcher(vendor) as d:
        await d.send(request)
    body = fake_ollama.last_request.json
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "num_predict": 50,
        "stop": ["END"],
        "num_ctx": 8192,
        "seed": 3,
        "top_k": 20,
        "min_p": 0.1,
    }
    assert body["format"] == "json"
    assert (body["think"], body["keep_alive"]) == (False, "1h")  # extra overrides the default
    assert body["messages"] == [
        {"role": "system", "content": "json please"},
        {"role": "user", "content": "hi"},
    ]
    assert not {"temperature", "user", "metadata", "name"} & set(body)


async def test_constructor_defaults_and_json_schema(fake_ollama: FakeOllama) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    request = ask(
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        extra={"num_ctx": 2048, "model": "ignored", "stream": True},
    )
    async with dispatcher(adapter_for(fake_ollama, keep_alive=-1, num_ctx=8192)) as d:
        await d.send(request)
    body = fake_ollama.last_request.json
    assert body["format"] == schema
    assert (body["keep_alive"], body["options"], body["stream"]) == (-1, {"num_ctx": 2048}, False)
    assert body["model"] == MODEL
    assert body["messages"][0]["content"] == "one\ntwo"


async def test_bad_response_format_is_refused_before_sending(fake_ollama: FakeOllama) -> None:
    request = ask({"role": "user", "content": "x"}, response_format={"type": "xml"})
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(InvalidRequestError, match="json_object"):
            await d.send(request)
    assert fake_ollama.requests == []


# ----------------------------------------------------------------------------------- streaming
async def test_stream_yields_text_then_one_final_chunk(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        Reply(text="Streaming works fine.", chunk_size=3, prompt_tokens=5, completion_tokens=4)
    )
    async with dispatcher(adapter_for(fake_ollama)) as d:
        chunks = await collect(d.stream(HELLO))
    *body, last = chunks
    assert len(body) == 7
    assert "".join(c.delta for c in body) == "Streaming works fine."
    assert all(c.finish_reason is None and c.usage is None for c in body)
    assert (last.delta, last.finish_reason, last.usage) == ("", "stop", Usage(5, 4, 9))
    assert fake_ollama.last_request.json["stream"] is True


async def test_length_finish_and_cached_prompt(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        Reply(finish="length", prompt_tokens=0, completion_tokens=6),
        Reply(finish="length", prompt_tokens=0, completion_tokens=6),
    )
    async with dispatcher(adapter_for(fake_ollama)) as d:
        response = await d.send(HELLO)
        chunks = await collect(d.stream(HELLO))
    assert (response.finish_reason, response.usage) == ("length", Usage(0, 6, 6))
    assert (chunks[-1].finish_reason, chunks[-1].usage) == ("length", Usage(0, 6, 6))


# ------------------------------------------------------------------------------------- tools
async def test_tool_calls_non_streamed(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        Reply(
            text="",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris"}),
                ToolCallSpec("get_weather", {}),
            ],
        )
    )
    request = ask({"role": "user", "content": "weather?"}, tools=[WEATHER_TOOL], tool_choice="auto")
    async with dispatcher(adapter_for(fake_ollama)) as d:
        response = await d.send(request)
    assert response.finish_reason == "tool_calls"  # Ollama said done_reason "stop"
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {}),
    ]
    raw_ids = [c["id"] for c in response.raw["message"]["tool_calls"]]
    assert [c.id for c in response.tool_calls] == raw_ids
    assert fake_ollama.last_request.json["tools"] == [WEATHER_TOOL]


async def test_tool_call_ids_are_made_up_for_older_servers(fake_ollama: FakeOllama) -> None:
    fake_ollama.legacy_tool_calls = True
    calls = [ToolCallSpec("a", {"x": 1}), ToolCallSpec("b", {})]
    fake_ollama.enqueue(
        Reply(text="", finish="tool_calls", tool_calls=calls),
        Reply(text="", finish="tool_calls", tool_calls=calls),
    )
    request = ask({"role": "user", "content": "go"}, tools=[WEATHER_TOOL])
    async with dispatcher(adapter_for(fake_ollama)) as d:
        response = await d.send(request)
        chunks = await collect(d.stream(request))
    assert [c.id for c in response.tool_calls] == ["call_0", "call_1"]
    assert [d.id for c in chunks for d in c.tool_call_deltas] == ["call_0", "call_1"]


async def test_tool_calls_streamed_arrive_whole(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        Reply(
            text="Let me check.",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris", "unit": "celsius"}),
                ToolCallSpec("get_time", {"zone": "Europe/Oslo"}),
            ],
        )
    )
    request = ask({"role": "user", "content": "weather?"}, tools=[WEATHER_TOOL])
    async with dispatcher(adapter_for(fake_ollama)) as d:
        chunks = await collect(d.stream(request))
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert [(d.index, d.name, json.loads(d.arguments)) for d in deltas] == [
        (0, "get_weather", {"city": "Paris", "unit": "celsius"}),
        (1, "get_time", {"zone": "Europe/Oslo"}),
    ]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert "".join(c.delta for c in chunks) == "Let me check."
    assert chunks[-1].finish_reason == "tool_calls"


async def test_tool_round_trip_history_in_ollama_shape(fake_ollama: FakeOllama) -> None:
    request = ask(
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_2", "get_time", ""),
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        tools=[WEATHER_TOOL],
    )
    async with dispatcher(adapter_for(fake_ollama)) as d:
        await d.send(request)
    messages = fake_ollama.last_request.json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {}}},
        ],
    }
    assert messages[2:] == [
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
    ]


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ([{"role": "tool", "tool_call_id": "call_9", "content": "x"}], "call_9"),
        (
            [{"role": "assistant", "tool_calls": [ToolCall("c", "f", "[1, 2]")]}],
            "must be a JSON object",
        ),
    ],
)
async def test_malformed_tool_history_is_refused_before_sending(
    fake_ollama: FakeOllama, messages: list[Any], needle: str
) -> None:
    request = ask({"role": "user", "content": "hi"}, *messages)
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(InvalidRequestError, match=needle):
            await d.send(request)
    assert fake_ollama.requests == []


async def test_tool_choice(fake_ollama: FakeOllama) -> None:
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(UnsupportedRequest, match="cannot force a tool call"):
            await d.send(
                ask({"role": "user", "content": "x"}, tools=[WEATHER_TOOL], tool_choice="required")
            )
        assert fake_ollama.requests == []
        await d.send(
            ask({"role": "user", "content": "x"}, tools=[WEATHER_TOOL], tool_choice="none")
        )
    assert "tools" not in fake_ollama.last_request.json


# ------------------------------------------------------------------------------------ images
async def test_data_uri_images_are_sent_as_bare_base64(fake_ollama: FakeOllama) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    request = ask(
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
        model="llava",
    )
    async with dispatcher(adapter_for(fake_ollama)) as d:
        response = await d.send(request)
    assert response.content
    assert fake_ollama.last_request.json["messages"] == [
        {"role": "user", "content": "What is this?", "images": [PNG]}
    ]


async def test_image_urls_and_text_models_are_refused_before_sending(
    fake_ollama: FakeOllama,
) -> None:
    url_image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    data_image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(UnsupportedRequest, match=r"data:image/<type>;base64") as url:
            await d.send(ask({"role": "user", "content": [url_image]}, model="llava"))
        with pytest.raises(UnsupportedRequest, match="vision_models=") as text_only:
            await d.send(ask({"role": "user", "content": [data_image]}))
    assert isinstance(url.value, InvalidRequestError)
    assert text_only.value.vendor == "ollama"
    assert fake_ollama.requests == []
    fake_ollama.models.append("gemma3:4b")
    async with dispatcher(adapter_for(fake_ollama, vision_models=["gemma3"])) as d:
        await d.send(ask({"role": "user", "content": [data_image]}, model="gemma3:4b"))
    assert fake_ollama.last_request.json["messages"][0]["images"] == [PNG]


def test_vision_heuristic() -> None:
    vendor = OllamaVendor(host="localhost", api_key="", vision_models=["gemma3", "minicpm-v:8b"])
    for named_like_vision in ("llava:13b", "llama3.2-vision", "qwen2.5vl:7b", "qwen3-vl"):
        assert vendor.supports_vision(named_like_vision), named_like_vision
    assert vendor.supports_vision("gemma3:27b")
    assert vendor.supports_vision("minicpm-v:8b")
    assert not vendor.supports_vision("minicpm-v:latest")
    assert not vendor.supports_vision("llama3.2")


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kind", ["rate_limit", "server", "overloaded", "timeout", "conflict"])
async def test_retryable_statuses_are_retried(fake_ollama: FakeOllama, kind: str) -> None:
    fake_ollama.enqueue(Fail(kind), Fail(kind), Reply(text="third time lucky"))
    clock = FakeClock()
    async with dispatcher(adapter_for(fake_ollama), clock=clock) as d:
        response = await d.send(HELLO)
    assert response.content == "third time lucky"
    assert len(fake_ollama.requests) == 3
    assert len(response.attempts) == 3
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(
    ("kind", "error", "needle"),
    [
        ("bad_request", InvalidRequestError, "cannot unmarshal"),
        ("auth", AuthenticationError, "unauthorized"),
        ("not_found", ModelNotFound, "run `ollama pull llama3.2` on the Ollama host"),
        ("context_length", ContextLengthExceeded, "exceeds the context length"),
        ("quota", RateLimitError, "weekly usage limit"),
    ],
)
async def test_non_retryable_statuses_are_not_retried(
    fake_ollama: FakeOllama, kind: str, error: type[Exception], needle: str
) -> None:
    fake_ollama.enqueue(Fail(kind))
    clock = FakeClock()
    async with dispatcher(adapter_for(fake_ollama), clock=clock) as d:
        with pytest.raises(error) as caught:
            await d.send(HELLO)
    assert type(caught.value) is error
    assert needle in str(caught.value)
    assert len(fake_ollama.requests) == 1
    assert clock.sleeps == []
    assert caught.value.retryable is False  # type: ignore[attr-defined]


async def test_a_model_that_is_not_pulled_says_how_to_pull_it(fake_ollama: FakeOllama) -> None:
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(ModelNotFound) as caught:
            await d.send(ask({"role": "user", "content": "x"}, model="mistral:7b"))
    assert caught.value.status == 404
    assert "run `ollama pull mistral:7b`" in str(caught.value)


async def test_server_rejections_are_invalid_requests(fake_ollama: FakeOllama) -> None:
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(InvalidRequestError, match='invalid option provided: "bogus"') as caught:
            await d.send(ask({"role": "user", "content": "x"}, extra={"options": {"bogus": 1}}))
    assert (caught.value.status, caught.value.retryable) == (400, False)
    assert len(fake_ollama.requests) == 1


async def test_retry_after_is_honoured(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        Fail("overloaded", retry_after="3"), Fail("rate_limit", retry_after="1.5"), Reply()
    )
    clock = FakeClock()
    async with dispatcher(adapter_for(fake_ollama), clock=clock) as d:
        await d.send(HELLO)
    assert clock.sleeps == [3.0, 1.5]


async def test_stream_failures_before_the_first_token_are_retried(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        BreakStream(after_chunks=0), MidStreamError(after_chunks=0), Reply(text="clean stream")
    )
    async with dispatcher(adapter_for(fake_ollama)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "clean stream"
    assert len(fake_ollama.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [
        BreakStream(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
        MidStreamError(text="Hello world, this breaks", after_chunks=2, chunk_size=4),
    ],
)
async def test_stream_failure_after_the_first_token_keeps_partial_text(
    fake_ollama: FakeOllama, failure: BreakStream | MidStreamError
) -> None:
    fake_ollama.enqueue(failure)
    seen: list[str] = []
    async with dispatcher(adapter_for(fake_ollama)) as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in d.stream(HELLO):
                seen.append(chunk.delta)
    assert "".join(seen) == "Hello wo"
    assert caught.value.partial_text == "Hello wo"
    assert len(fake_ollama.requests) == 1


async def test_an_error_line_is_a_retryable_server_error(fake_ollama: FakeOllama) -> None:
    vendor = adapter_for(fake_ollama)
    fake_ollama.enqueue(MidStreamError(text="abcd", after_chunks=1, kind="overloaded"))
    got: list[str] = []
    try:
        with pytest.raises(VendorServerError, match="server busy") as mid:
            async for chunk in vendor.stream(HELLO):
                got.append(chunk.delta)
    finally:
        await vendor.aclose()
    assert (got, mid.value.retryable, mid.value.status) == (["abcd"], True, None)


def test_a_stream_that_ends_cleanly_without_done_is_incomplete() -> None:
    decoder = OllamaVendor(host="localhost", api_key="").stream_decoder(HELLO)
    line = b'{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}\n'
    assert [c.delta for c in decoder.feed(line[:20])] == []  # split lines are reassembled
    assert [c.delta for c in decoder.feed(line[20:])] == ["Hi"]
    with pytest.raises(VendorConnectionError, match="done:true"):
        list(decoder.finish())
    decoder = OllamaVendor(host="localhost", api_key="").stream_decoder(HELLO)
    last = b'{"model":"m","message":{"role":"assistant","content":"!"},"done":true,"eval_count":2}'
    chunks = [*decoder.feed(line), *decoder.feed(last), *decoder.finish()]  # no final newline
    assert [(c.delta, c.finish_reason) for c in chunks] == [("Hi", None), ("!", "stop")]
    assert chunks[-1].usage == Usage(0, 2, 2)


async def test_connection_refused_is_retried_then_unavailable() -> None:
    async with dispatcher(OllamaVendor(host="127.0.0.1:9", api_key="")) as d:
        with pytest.raises(VendorUnavailable, match=r"VendorConnectionError|connection"):
            await d.send(HELLO)


async def test_no_api_key_in_errors_or_repr(fake_ollama: FakeOllama) -> None:
    wrong = "ollama-wrong-key-abcdefghijklmnop"
    fake_ollama.enqueue(
        *[Fail("server", message=f"echoing {wrong} back")] * 2,
        MidStreamError(kind="server", after_chunks=0),
    )
    fake_ollama.api_key = None  # let the echoing errors through
    bad = adapter_for(fake_ollama, api_key=wrong)
    async with dispatcher(bad, retry_policy=RetryPolicy(max_retries=1)) as d:
        with pytest.raises(VendorUnavailable) as first:
            await d.send(HELLO)
        fake_ollama.api_key = KEY
        with pytest.raises(AuthenticationError) as second:
            await d.send(HELLO)
    texts = [str(first.value), repr(first.value), str(second.value), repr(bad), repr(d.vendors)]
    assert all(wrong not in text for text in texts)
    assert "***" in str(first.value)
    assert fake_ollama.requests[0].headers["authorization"] == f"Bearer {wrong}"


# ------------------------------------------------------------------- construction and health
@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "1.2.3.4",
        ":56789",
        "example.com:56789",
        "http://example.com",
        "https://example.com",
        "https://example.com:56789/path/",
        "example.com/path",
        "[0001:002:003:0004::1]",
        "https://[0001:002:003:0004::1]:56789/path",
    ],
)
def test_host_is_parsed_like_the_sdk(host: str | None) -> None:
    assert parse_host(host) == _parse_host(host)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    assert OllamaVendor.from_env() is None
    assert OllamaVendor().base_url == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-env-key-000")
    vendor = OllamaVendor.from_env()
    assert vendor is not None
    assert (vendor.name, vendor.base_url) == ("ollama", "http://gpu-box:11434")
    assert vendor.secrets() == ("ollama-env-key-000",)
    assert "ollama-env-key-000" not in repr(vendor)
    assert isinstance(vendor_class("ollama")(host="https://ollama.com"), OllamaVendor)
    assert OllamaVendor(host="https://ollama.com").base_url == "https://ollama.com:443"
    with pytest.raises(ConfigError, match="invalid port"):
        OllamaVendor(host="example.com:port")


async def test_keyless_server_and_caller_authorization_header(fake_ollama: FakeOllama) -> None:
    fake_ollama.api_key = None
    async with dispatcher(adapter_for(fake_ollama)) as d:
        await d.send(HELLO)
    assert "authorization" not in fake_ollama.last_request.headers
    fake_ollama.api_key = KEY
    vendor = adapter_for(
        fake_ollama,
        api_key="ignored-key",
        connection=Connection(headers={"authorization": f"Bearer {KEY}"}),
    )
    assert KEY in vendor.secrets()
    async with dispatcher(vendor) as d:
        await d.send(HELLO)
    assert fake_ollama.last_request.headers["authorization"] == f"Bearer {KEY}"


async def test_health_and_list_models(fake_ollama: FakeOllama) -> None:
    vendor = adapter_for(fake_ollama)
    dead = OllamaVendor(host="127.0.0.1:9", api_key="")
    try:
        health = await vendor.health()
        models = await vendor.list_models()
        fake_ollama.api_key = "another-key-000000"
        refused = await vendor.health()
        down = await dead.health()
    finally:
        await vendor.aclose()
        await dead.aclose()
    assert (health.ok, health.detail) == (True, "ollama 0.12.6")
    assert models == sorted(fake_ollama.models)
    assert [r.path for r in fake_ollama.requests] == ["/api/version", "/api/tags", "/api/version"]
    assert not refused.ok
    assert "unauthorized" in refused.detail
    assert not down.ok
