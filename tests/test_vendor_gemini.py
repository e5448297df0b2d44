"""GeminiVendor through the Dispatcher against the fake Gemini server over real HTTP.

Backoff waits go through a FakeClock, so nothing here sleeps in real time.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

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
    ConfigError,
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
from llmdispatcher.vendors import Connection, OpenAIVendor
from llmdispatcher.vendors.gemini import GeminiVendor
from llmdispatcher.vendors.gemini_request import decode_call_id, encode_call_id
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.fixtures_gemini import FAKE_GEMINI_KEY as KEY
from tests.fakes.gemini_fake import FakeGemini, adapter_for
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
HELLO = Request(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,  # JSON Schema that Gemini's OpenAPI `parameters` rejects
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_SCHEMA,
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5E"
    "rkJggg=="
)


def dispatcher(*vendors: GeminiVendor, clock: FakeClock | None = None, **config: Any) -> Dispatcher:
    policy = config.pop("retry_policy", RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8))
    return Dispatcher(
        Config(retry_policy=policy, **config),
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


async def send(fake: FakeGemini, request: Request, **kwargs: Any) -> Any:
    async with dispatcher(adapter_for(fake, **kwargs)) as d:
        return await d.send(request)


# ------------------------------------------------------------------ request translation
async def test_send_text_usage_path_and_auth_header(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Reply(text="Hello there!", prompt_tokens=7, completion_tokens=3))
    response = await send(fake_gemini, HELLO)
    assert response.content == "Hello there!"
    assert (response.vendor, response.model, response.finish_reason) == ("google", MODEL, "stop")
    assert response.usage == Usage(7, 3, 10)
    assert response.id
    sent = fake_gemini.requests[-1]
    assert (sent.path, sent.query) == (GENERATE, {})  # never ?key=
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}


@pytest.mark.parametrize(
    "model",
    [
        "gemini-1.5-flash/../../tunedModels/x",
        "models/gemini-1.5-flash/../../tunedModels/x",
        "tunedModels/../models/x",
        "..",
        "models/..",
        "gemini-1.5-flash?alt=json",
        "gemini-1.5-flash#frag",
        "gemini 1.5",
        "gemini-1.5-flash%2F..",
        "gemini-1.5-flash:generateContent",
    ],
)
async def test_a_model_name_never_walks_the_url_path(fake_gemini: FakeGemini, model: str) -> None:
    vendor = adapter_for(fake_gemini)
    request = Request(model=model, messages=HELLO.messages)
    refused = rf"model {re.escape(repr(model))} cannot be sent to vendor 'google': it goes into"
    try:
        with pytest.raises(UnsupportedRequest, match=refused):
            vendor.check(request)
        with pytest.raises(UnsupportedRequest, match=refused):
            await vendor.send(request)
        with pytest.raises(UnsupportedRequest, match=refused):
            await collect(vendor.stream(request))
        async with dispatcher(vendor) as d:
            with pytest.raises(UnsupportedRequest, match=refused):
                await d.send(request)
    finally:
        await vendor.aclose()
    assert fake_gemini.requests == []  # nothing reached the vendor's request line


async def test_model_resource_names_reach_the_request_line_as_written(
    fake_gemini: FakeGemini,
) -> None:
    fake_gemini.enqueue(Reply(text="a"), Reply(text="b"))
    for model in (MODEL, "models/" + MODEL):
        await send(fake_gemini, Request(model=model, messages=HELLO.messages))
    with pytest.raises(ModelNotFound):  # the fake serves no tuned models; the line is what counts
        await send(fake_gemini, Request(model="tunedModels/my-tune-7", messages=HELLO.messages))
    assert [r.target for r in fake_gemini.requests] == [
        GENERATE,
        GENERATE,
        "/v1beta/tunedModels/my-tune-7:generateContent",
    ]


async def test_request_fields_are_translated(fake_gemini: FakeGemini) -> None:
    request = Request(
        model="models/" + MODEL,  # the SDK's full resource name works too
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": ""},  # empty turns are dropped, not sent
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": "again"},
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["END", "STOP"],
        user="u1",
        extra={
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
        },
    )
    await send(fake_gemini, request)
    body = fake_gemini.requests[-1].json
    assert fake_gemini.requests[-1].path == GENERATE
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Salut"}]},
        {"role": "user", "parts": [{"text": "again"}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "stopSequences": ["END", "STOP"],
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert "user" not in body


async def test_api_version_v1(fake_gemini: FakeGemini) -> None:
    await send(fake_gemini, HELLO, api_version="v1")
    assert fake_gemini.requests[-1].path == f"/v1/models/{MODEL}:generateContent"


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": WEATHER_SCHEMA, "strict": True},
            },
            {"responseMimeType": "application/json", "responseJsonSchema": WEATHER_SCHEMA},
        ),
        ({"type": "text"}, None),
    ],
)
async def test_json_mode(
    fake_gemini: FakeGemini, response_format: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    fake_gemini.enqueue(Reply(text='{"city": "Paris"}'))
    request = Request(model=MODEL, messages=HELLO.messages, response_format=response_format)
    response = await send(fake_gemini, request)
    assert json.loads(response.content) == {"city": "Paris"}
    assert fake_gemini.requests[-1].json.get("generationConfig") == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
async def test_tools_and_tool_choice(
    fake_gemini: FakeGemini, choice: Any, expected: dict[str, Any]
) -> None:
    request = Request(
        model=MODEL, messages=HELLO.messages, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice
    )
    await send(fake_gemini, request)
    body = fake_gemini.requests[-1].json
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER_SCHEMA,
                },
                {"name": "get_time", "parametersJsonSchema": {"type": "object"}},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": expected}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stop": list("abcdef")}, UnsupportedRequest, "at most 5 stop sequences"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, InvalidRequestError, "tool_choice"),
        (
            {
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            InvalidRequestError,
            "not in tools",
        ),
        ({"response_format": {"type": "xml"}}, InvalidRequestError, "response_format"),
        (
            {"messages": [{"role": "system", "content": "only a system prompt"}]},
            InvalidRequestError,
            "at least one non-empty",
        ),
    ],
)
async def test_requests_gemini_cannot_take_are_refused_before_sending(
    fake_gemini: FakeGemini, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    fields: dict[str, Any] = {"model": MODEL, "messages": HELLO.messages, **kwargs}
    with pytest.raises(error, match=match):
        await send(fake_gemini, Request(**fields))
    assert fake_gemini.requests == []


# --------------------------------------------------------------------------------- images
async def test_images_inline_and_by_url(fake_gemini: FakeGemini) -> None:
    request = Request(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a/cat.JPG?x=1"},
                    },
                ],
            }
        ],
    )
    await send(fake_gemini, request)
    parts = fake_gemini.requests[-1].json["contents"][0]["parts"]
    assert parts == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a/cat.JPG?x=1"}},
    ]


@pytest.mark.parametrize(
    "url", ["https://example.com/image", "https://example.com/a.gif", "http://example.com/a.png"]
)
async def test_image_urls_gemini_cannot_read_fall_back(
    fake_gemini: FakeGemini, fake_openai: FakeOpenAI, url: str
) -> None:
    request = Request(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
    )
    fake_openai.enqueue(Reply(text="from backup"))
    backup = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1", name="backup")
    async with Dispatcher(
        Config(fallback_vendors=("backup",)), vendors=[adapter_for(fake_gemini), backup]
    ) as d:
        response = await d.send(request)
    assert response.vendor == "backup"  # UnsupportedRequest is not the caller's fault
    assert response.attempts[0].status == "UnsupportedRequest"
    assert fake_gemini.requests == []


# -------------------------------------------------------------------------- tool calls
async def test_tool_calls_non_streamed(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(
            text="",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris"}),
                ToolCallSpec("get_weather", {"city": "Oslo"}),
            ],
        )
    )
    request = Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER_TOOL])
    response = await send(fake_gemini, request)
    assert response.finish_reason == "tool_calls"  # Gemini said STOP
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    first, second = response.tool_calls
    assert first.id != second.id
    assert decode_call_id(first.id)[1] is not None  # the first call carries the signature
    assert decode_call_id(second.id) == (second.id, None)
    for call in response.tool_calls:
        assert all(ch.isalnum() or ch in "_-" for ch in call.id)


async def test_tool_round_trip_echoes_thought_signatures(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(
            text="Let me check.",
            finish="tool_calls",
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris"}),
                ToolCallSpec("get_time", {}),
            ],
        )
    )
    tools = [WEATHER_TOOL, TIME_TOOL]
    first = await send(fake_gemini, Request(model=MODEL, messages=HELLO.messages, tools=tools))
    fake_gemini.require_thought_signatures = True  # as Gemini 3 does
    weather, clock = first.tool_calls
    history = [
        *HELLO.messages,
        {"role": "assistant", "content": first.content, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": clock.id, "content": "noon"},  # answered out of order
        {"role": "tool", "tool_call_id": weather.id, "content": '{"temp": 18}'},
        {"role": "user", "content": "and tomorrow?"},
    ]
    follow = await send(fake_gemini, Request(model=MODEL, messages=history, tools=tools))
    assert follow.content == "Hello from the fake"
    contents = fake_gemini.requests[-1].json["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Let me check."},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": decode_call_id(weather.id)[1],
            },
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    assert contents[2] == {  # one user turn carries every result, then the user's text
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
            {"text": "and tomorrow?"},
        ],
    }


def test_signature_survives_the_id_codec_byte_for_byte() -> None:
    signature = "++++//8AAQ=="  # standard base64, as Gemini sends bytes
    call_id = encode_call_id("call_1", signature)
    assert "+" not in call_id
    assert "/" not in call_id
    assert "=" not in call_id
    assert decode_call_id(call_id) == ("call_1", signature)
    assert decode_call_id("call_plain") == ("call_plain", None)


async def test_unsigned_history_is_rejected_by_gemini_3(fake_gemini: FakeGemini) -> None:
    fake_gemini.require_thought_signatures = True
    history = [
        *HELLO.messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [ToolCall("call_1", "get_time", "{}")],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    ]
    with pytest.raises(InvalidRequestError, match="thought_signature") as caught:
        await send(fake_gemini, Request(model=MODEL, messages=history, tools=[TIME_TOOL]))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"temp": 18}', {"temp": 18}),
        ("[1, 2]", {"result": [1, 2]}),
        ("42", {"result": 42}),
        ('"sunny"', {"result": "sunny"}),
        ("not json at all", {"result": "not json at all"}),
    ],
)
async def test_tool_results_become_objects(
    fake_gemini: FakeGemini, content: str, expected: dict[str, Any]
) -> None:
    history = [
        *HELLO.messages,
        {"role": "assistant", "tool_calls": [ToolCall("call_9", "get_time", "")]},
        {"role": "tool", "tool_call_id": "call_9", "content": content},
    ]
    await send(fake_gemini, Request(model=MODEL, messages=history, tools=[TIME_TOOL]))
    part = fake_gemini.requests[-1].json["contents"][2]["parts"][0]
    assert part == {"functionResponse": {"name": "get_time", "response": expected}}


async def test_tool_result_without_a_known_call_is_refused(fake_gemini: FakeGemini) -> None:
    history = [*HELLO.messages, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]
    with pytest.raises(InvalidRequestError, match="call_x"):
        await send(fake_gemini, Request(model=MODEL, messages=history))
    bad_args = [*HELLO.messages, {"role": "assistant", "tool_calls": [ToolCall("c", "f", "[1]")]}]
    with pytest.raises(InvalidRequestError, match="JSON object"):
        await send(fake_gemini, Request(model=MODEL, messages=bad_args))
    assert fake_gemini.requests == []


async def test_tool_calls_streamed(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(
            text="Checking",
            finish="tool_calls",
            chunk_size=3,
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Paris", "unit": "celsius"}),
                ToolCallSpec("get_time", {"zone": "Europe/Oslo"}),
            ],
        )
    )
    request = Request(model=MODEL, messages=HELLO.messages, tools=[WEATHER_TOOL, TIME_TOOL])
    async with dispatcher(adapter_for(fake_gemini)) as d:
        chunks = await collect(d.stream(request))
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for index, call_id, name, fragment in chunk.tool_call_deltas:
            entry = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            if name:
                entry["id"], entry["name"] = call_id or "", name
            entry["arguments"] += fragment
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"zone": "Europe/Oslo"}),
    ]
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert "".join(c.delta for c in chunks) == "Checking"
    assert chunks[-1].finish_reason == "tool_calls"
    assert fake_gemini.requests[-1].query == {"alt": "sse"}


# --------------------------------------------------------------------- responses, streams
async def test_stream_text_then_one_final_chunk_with_last_usage(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(
            text="Streaming works fine.",
            chunk_size=3,
            prompt_tokens=5,
            completion_tokens=10,
            cached_tokens=2,
            reasoning_tokens=4,
        )
    )
    async with dispatcher(adapter_for(fake_gemini)) as d:
        chunks = await collect(d.stream(HELLO))
    *body, last = chunks
    assert len(body) == 7
    assert "".join(c.delta for c in body) == "Streaming works fine."
    assert all(c.finish_reason is None and c.usage is None for c in body)
    assert last.finish_reason == "stop"
    # running per-chunk counts are not summed: the final chunk's numbers win
    assert last.usage == Usage(5, 10, 15, cached_tokens=2, reasoning_tokens=4)
    assert fake_gemini.requests[-1].path == f"/v1beta/models/{MODEL}:streamGenerateContent"


async def test_usage_counts_thoughts_and_cache(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(prompt_tokens=20, completion_tokens=9, cached_tokens=8, reasoning_tokens=5)
    )
    response = await send(fake_gemini, HELLO)
    assert response.usage == Usage(20, 9, 29, cached_tokens=8, reasoning_tokens=5)


@pytest.mark.parametrize(
    ("reply", "finish", "content"),
    [
        (Reply(text="cut off", finish="length"), "length", "cut off"),
        (Reply(text="partial", finish="content_filter"), "content_filter", "partial"),
        (Reply(text="", finish="content_filter"), "content_filter", ""),  # blocked prompt
    ],
)
async def test_finish_reasons_send_and_stream(
    fake_gemini: FakeGemini, reply: Reply, finish: str, content: str
) -> None:
    fake_gemini.enqueue(reply, reply)
    async with dispatcher(adapter_for(fake_gemini)) as d:
        response = await d.send(HELLO)
        chunks = await collect(d.stream(HELLO))
    assert (response.finish_reason, response.content) == (finish, content)
    assert chunks[-1].finish_reason == finish
    assert "".join(c.delta for c in chunks) == content


def gemini_answer(finish: str, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    content = {"role": "model", "parts": parts or [{"text": "x"}]}
    return {"candidates": [{"content": content, "finishReason": finish}]}


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "stop"),
        ("OTHER", "stop"),
        ("LANGUAGE", "stop"),
        ("MAX_TOKENS", "length"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reason_table(finish: str, expected: str) -> None:
    vendor = GeminiVendor(api_key=KEY)
    assert vendor.parse_response(gemini_answer(finish), HELLO).finish_reason == expected


@pytest.mark.parametrize(
    ("finish", "error", "retryable"),
    [
        ("MALFORMED_FUNCTION_CALL", VendorServerError, True),
        ("UNEXPECTED_TOOL_CALL", VendorServerError, True),
        ("TOO_MANY_TOOL_CALLS", VendorServerError, True),
        ("MISSING_THOUGHT_SIGNATURE", InvalidRequestError, False),
    ],
)
def test_broken_output_finish_reasons_raise(
    finish: str, error: type[VendorError], retryable: bool
) -> None:
    vendor = GeminiVendor(api_key=KEY)
    with pytest.raises(error) as caught:
        vendor.parse_response(gemini_answer(finish), HELLO)
    assert caught.value.retryable is retryable
    assert caught.value.error_type == finish
    decoder = vendor.stream_decoder(HELLO)
    event = b"data: " + json.dumps(gemini_answer(finish)).encode() + b"\r\n\r\n"
    got: list[StreamChunk] = []
    with pytest.raises(error):
        got.extend(decoder.feed(event))
    assert [c.delta for c in got] == ["x"]  # text before the failure still reaches the caller


def test_thought_parts_are_not_answer_text() -> None:
    vendor = GeminiVendor(api_key=KEY)
    parts = [{"text": "thinking...", "thought": True}, {"text": "answer"}]
    assert vendor.parse_response(gemini_answer("STOP", parts), HELLO).content == "answer"


async def test_stream_without_finish_reason_is_incomplete(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(BreakStream(text="abcdefgh", after_chunks=2))  # every content chunk
    vendor = adapter_for(fake_gemini)
    got: list[str] = []
    with pytest.raises(VendorConnectionError):
        async for chunk in vendor.stream(HELLO):
            got.append(chunk.delta)
    await vendor.aclose()
    assert "".join(got) == "abcdefgh"


def test_stream_decoder_handles_split_events_and_late_usage() -> None:
    vendor = GeminiVendor(api_key=KEY)
    decoder = vendor.stream_decoder(HELLO)
    first = json.dumps({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}).encode()
    last = json.dumps(
        {
            "candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 2,
                "totalTokenCount": 5,
            },
        }
    ).encode()
    late = json.dumps(
        {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}
    ).encode()
    wire = b"data: " + first + b"\r\n\r\ndata: " + last + b"\r\n\r\ndata: " + late + b"\r\n\r\n"
    chunks: list[StreamChunk] = []
    for i in range(0, len(wire), 7):  # bytes arrive in arbitrary pieces, \r\n split too
        chunks.extend(decoder.feed(wire[i : i + 7]))
    chunks.extend(decoder.finish())
    assert "".join(c.delta for c in chunks) == "Hi!"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert [c.usage for c in chunks if c.usage][-1] == Usage(3, 4, 7)


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "error", "retryable", "status"),
    [
        ("rate_limit", RateLimitError, True, 429),
        ("quota", RateLimitError, False, 429),
        ("server", VendorServerError, True, 500),
        ("overloaded", VendorServerError, True, 503),
        ("timeout", VendorTimeout, True, 504),
        ("conflict", VendorServerError, True, 409),
        ("auth", AuthenticationError, False, 400),
        ("bad_request", InvalidRequestError, False, 400),
        ("not_found", ModelNotFound, False, 404),
        # no structured marker for "prompt too long": it stays a plain InvalidRequestError
        ("context_length", InvalidRequestError, False, 400),
    ],
)
async def test_error_kinds_map_to_classes(
    fake_gemini: FakeGemini, kind: str, error: type[VendorError], retryable: bool, status: int
) -> None:
    fake_gemini.enqueue(Fail(kind))
    vendor = adapter_for(fake_gemini)
    with pytest.raises(VendorError) as caught:
        await vendor.send(HELLO)
    await vendor.aclose()
    assert type(caught.value) is error
    assert (caught.value.retryable, caught.value.status) == (retryable, status)
    assert caught.value.vendor == "google"
    assert caught.value.error_type  # the RPC status, e.g. RESOURCE_EXHAUSTED


async def test_bad_key_and_missing_key_are_authentication_errors(fake_gemini: FakeGemini) -> None:
    wrong = "AIzaSy-wrong-key-0000000000000000000000"
    async with dispatcher(adapter_for(fake_gemini, api_key=wrong)) as d:
        with pytest.raises(AuthenticationError) as caught:
            await d.send(HELLO)
    assert (caught.value.status, caught.value.error_code) == (400, "API_KEY_INVALID")
    assert len(fake_gemini.requests) == 1  # never retried
    vendor = adapter_for(
        fake_gemini, api_key="x", connection=Connection(headers={"x-goog-api-key": ""})
    )
    with pytest.raises(AuthenticationError) as missing:
        await vendor.send(HELLO)
    await vendor.aclose()
    assert (missing.value.status, missing.value.error_type) == (403, "PERMISSION_DENIED")


@pytest.mark.parametrize("kind", ["rate_limit", "server", "overloaded", "timeout", "conflict"])
async def test_retryable_errors_are_retried(fake_gemini: FakeGemini, kind: str) -> None:
    fake_gemini.enqueue(Fail(kind), Fail(kind), Reply(text="third time lucky"))
    clock = FakeClock()
    async with dispatcher(adapter_for(fake_gemini), clock=clock) as d:
        response = await d.send(HELLO)
    assert response.content == "third time lucky"
    assert len(fake_gemini.requests) == 3
    assert len(clock.sleeps) == 2


async def test_retry_delay_from_the_body_is_honoured(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Fail("rate_limit", retry_after="37s"), Fail("rate_limit", retry_after_ms="1500"), Reply()
    )
    clock = FakeClock()
    policy = RetryPolicy(max_retries=3, max_delay=60)
    async with dispatcher(
        adapter_for(fake_gemini), clock=clock, retry_policy=policy, timeout=120.0
    ) as d:
        await d.send(HELLO)
    assert clock.sleeps == [37.0, 1.5]


async def test_spent_daily_quota_is_not_retried(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Fail("quota", retry_after="20s"), Reply())
    clock = FakeClock()
    async with dispatcher(adapter_for(fake_gemini), clock=clock) as d:
        with pytest.raises(RateLimitError) as caught:
            await d.send(HELLO)
    assert caught.value.retry_after == 20.0
    assert clock.sleeps == []
    assert len(fake_gemini.requests) == 1


async def test_stream_error_before_first_token_is_retried(fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        MidStreamError(after_chunks=0, kind="overloaded"),
        BreakStream(after_chunks=0),
        Reply(text="clean stream"),
    )
    async with dispatcher(adapter_for(fake_gemini)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "clean stream"
    assert len(fake_gemini.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [
        BreakStream(text="Hello world, this breaks", after_chunks=2),
        MidStreamError(text="Hello world, this breaks", after_chunks=2, kind="server"),
    ],
)
async def test_stream_failure_after_first_token_is_interrupted(
    fake_gemini: FakeGemini, fake_gemini_b: FakeGemini, failure: BreakStream | MidStreamError
) -> None:
    fake_gemini.enqueue(failure)
    seen: list[str] = []
    async with dispatcher(
        adapter_for(fake_gemini),
        adapter_for(fake_gemini_b, name="backup"),
        fallback_vendors=("backup",),
    ) as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in d.stream(HELLO):
                seen.append(chunk.delta)
    assert "".join(seen) == "Hello wo"
    assert caught.value.partial_text == "Hello wo"
    assert fake_gemini_b.requests == []


async def test_mid_stream_error_is_classified_by_its_code() -> None:
    vendor = GeminiVendor(api_key=KEY)
    decoder = vendor.stream_decoder(HELLO)
    error = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(RateLimitError) as caught:
        list(decoder.feed(b"data: " + json.dumps(error).encode() + b"\r\n\r\n"))
    assert caught.value.retryable is True
    no_code = {"error": {"message": "boom"}}
    with pytest.raises(VendorServerError):
        list(vendor.stream_decoder(HELLO).feed(b"data: " + json.dumps(no_code).encode() + b"\n\n"))


async def test_key_never_appears_in_errors_or_logs(
    fake_gemini: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    fake_gemini.enqueue(*[Fail("server", message=f"echoing {KEY} back")] * 2)
    vendor = adapter_for(fake_gemini)
    caplog.set_level(logging.DEBUG, logger="llmdispatcher")
    async with dispatcher(
        vendor, enable_logging=True, retry_policy=RetryPolicy(max_retries=1)
    ) as d:
        with pytest.raises(VendorUnavailable) as caught:
            await d.send(HELLO)
    texts = [str(caught.value), repr(caught.value), repr(vendor), caplog.text, repr(vendor.api_key)]
    assert caplog.text
    assert all(KEY not in text for text in texts)
    assert "***" in str(caught.value)


# ------------------------------------------------------------------ construction, listing
def test_env_construction_follows_google_genai(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert GeminiVendor.from_env() is None
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY or GEMINI_API_KEY") as caught:
        GeminiVendor()
    assert "api_key=" in str(caught.value)
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-1234")
    vendor = GeminiVendor.from_env()
    assert vendor is not None
    assert (vendor.name, vendor.api_key.reveal()) == ("google", "gemini-key-1234")
    assert vendor.base_url == "https://generativelanguage.googleapis.com"
    monkeypatch.setenv("GOOGLE_API_KEY", " google-key-5678 ")  # wins, as in the SDK; stripped
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://proxy.local:8080/")
    vendor = GeminiVendor(name="gem")
    assert (vendor.name, vendor.api_key.reveal()) == ("gem", "google-key-5678")
    assert vendor.model_url(MODEL, "generateContent") == (
        f"http://proxy.local:8080/v1beta/models/{MODEL}:generateContent"
    )
    assert "google-key" not in repr(vendor)
    with pytest.raises(ConfigError, match="api_version"):
        GeminiVendor(api_version="")


async def test_list_models_and_health(fake_gemini: FakeGemini) -> None:
    vendor = adapter_for(fake_gemini)
    assert await vendor.list_models() == sorted(
        m for m in fake_gemini.models if "embedding" not in m
    )
    health = await vendor.health()
    assert (health.ok, health.detail) == (True, "ok")
    assert fake_gemini.requests[-1].query == {"pageSize": "1"}
    fake_gemini.models = [f"gemini-x-{i:04d}" for i in range(1500)]  # more than one page
    names = await vendor.list_models()
    assert len(names) == 1500
    assert [r.query.get("pageToken") for r in fake_gemini.requests[-2:]] == [None, "1000"]
    await vendor.aclose()
    bad = adapter_for(fake_gemini, api_key="AIzaSy-bad-key-0000")
    health = await bad.health()
    assert health.ok is False
    assert "API key not valid" in health.detail
    assert "AIzaSy-bad-key-0000" not in health.detail
    with pytest.raises(AuthenticationError):
        await bad.list_models()
    await bad.aclose()
