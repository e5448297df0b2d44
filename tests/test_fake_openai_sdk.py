"""The fake OpenAI server is faithful: the official ``openai`` SDK talks to it like to the API."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY as KEY
from tests.fakes.openai_fake import FakeOpenAI, mask_key
from tests.fakes.script import (
    BreakStream,
    Fail,
    MidStreamError,
    Reply,
    Stall,
    ToolCallSpec,
)

# fixtures fake_openai / fake_openai_server come from tests/fakes/fixtures.py via tests/conftest.py
MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.url + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_openai.url + "/v1", api_key=KEY, max_retries=0
    ) as c:
        yield c


# --------------------------------------------------------------------------- success paths
def test_non_stream_text(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="Bonjour",
            prompt_tokens=5,
            completion_tokens=7,
            cached_tokens=2,
            reasoning_tokens=3,
            headers={"x-extra": "yes"},
        )
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    done = raw.parse()
    assert done.id.startswith("chatcmpl-")
    assert done.object == "chat.completion"
    assert done.model == "gpt-4o-mini"
    assert done.system_fingerprint is not None
    assert done.system_fingerprint.startswith("fp_")
    assert done.service_tier == "default"
    choice = done.choices[0]
    assert (choice.index, choice.finish_reason, choice.logprobs) == (0, "stop", None)
    assert choice.message.role == "assistant"
    assert choice.message.content == "Bonjour"
    assert (choice.message.refusal, choice.message.annotations) == (None, [])
    assert choice.message.tool_calls is None
    usage = done.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 7, 12)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 2
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    assert raw.headers["x-ratelimit-reset-tokens"] == "0s"
    assert raw.headers["x-extra"] == "yes"
    sent = fake_openai.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {"model": "gpt-4o-mini", "messages": MSGS}


@pytest.mark.parametrize("finish", ["stop", "length", "content_filter"])
def test_finish_reasons_pass_through(
    fake_openai: FakeOpenAI, client: openai.OpenAI, finish: str
) -> None:
    fake_openai.enqueue(Reply(finish=finish), Reply(finish=finish))
    done = client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert done.choices[0].finish_reason == finish
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert chunks[-1].choices[0].finish_reason == finish


def test_stream_text_with_usage(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    fake_openai.enqueue(Reply(text=text, chunk_size=5, prompt_tokens=11, completion_tokens=9))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(x or "" for x in content) == text
    assert len([x for x in content if x]) == 9  # 43 chars / 5 per delta
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 9)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake"


@pytest.mark.parametrize(
    ("options", "usage_key", "obfuscation"),
    [
        (None, False, True),
        ({"include_usage": True}, True, True),
        ({"include_usage": True, "include_obfuscation": False}, True, False),
    ],
)
def test_stream_wire_format(
    client: openai.OpenAI, options: dict[str, bool] | None, usage_key: bool, obfuscation: bool
) -> None:
    kwargs: dict[str, Any] = {"stream_options": options} if options else {}
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSGS, stream=True, **kwargs
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(line.startswith("data: ") for line in lines)
    assert all(("usage" in c) is usage_key for c in chunks)
    assert all(("obfuscation" in c) is obfuscation for c in chunks)
    if usage_key:
        assert all(c["usage"] is None for c in chunks if c["choices"])
        assert [c["choices"] for c in chunks].count([]) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}


def test_tool_calls_non_stream(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    specs = [
        ToolCallSpec("get_weather", {"city": "Paris"}),
        ToolCallSpec("get_time", {"tz": "Europe/Paris", "fmt": {"h24": True}}),
    ]
    fake_openai.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls"))
    done = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=TOOLS)
    message = done.choices[0].message
    assert done.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    assert len(message.tool_calls) == 2
    for call, spec in zip(message.tool_calls, specs, strict=True):
        assert call.type == "function"
        assert call.id.startswith("call_")
        assert isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == spec.arguments
        assert call.function.name == spec.name
    # and the fake accepts the conversation continued the OpenAI way
    follow = [*MSGS, message.model_dump(exclude_none=True)]
    follow += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in message.tool_calls]
    assert client.chat.completions.create(model="gpt-4o", messages=follow, tools=TOOLS).choices


def test_tool_calls_stream_helper(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_weather", {})]
    fake_openai.enqueue(Reply(text="Checking.", tool_calls=specs, finish="tool_calls"))
    with client.chat.completions.stream(model="gpt-4o", messages=MSGS, tools=TOOLS) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"content.delta", "tool_calls.function.arguments.done"} <= kinds
    message = final.choices[0].message
    assert message.content == "Checking."
    assert message.tool_calls is not None
    got = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert got == [(s.name, s.arguments) for s in specs]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_tool_calls_stream_manual_join(
    fake_openai: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    specs = [ToolCallSpec("a", {"x": 1, "long": "y" * 30}), ToolCallSpec("b", {"z": [1, 2]})]
    fake_openai.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls", chunk_size=3))
    calls: dict[int, dict[str, str]] = {}
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=MSGS, tools=TOOLS, stream=True
    )
    first = True
    async for chunk in stream:
        delta = chunk.choices[0].delta
        if first:  # a tool-only answer opens with role + the first call's id/name
            assert delta.role == "assistant"
            assert delta.content is None
            assert delta.tool_calls is not None
            assert delta.tool_calls[0].id is not None
            first = False
        for tc in delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            assert tc.function is not None
            if tc.id:
                assert not entry["id"], "id is sent once per call"
                entry["id"], entry["name"] = tc.id, tc.function.name or ""
            entry["arguments"] += tc.function.arguments or ""
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        (s.name, s.arguments) for s in specs
    ]
    assert all(c["id"].startswith("call_") for c in calls.values())


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "exc", "status", "type_", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "requests", "rate_limit_exceeded"),
        ("quota", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
        ("server", openai.InternalServerError, 500, "server_error", None),
        ("overloaded", openai.InternalServerError, 503, "server_error", None),
        ("auth", openai.AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
        ("bad_request", openai.BadRequestError, 400, "invalid_request_error", "invalid_value"),
        ("not_found", openai.NotFoundError, 404, "invalid_request_error", "model_not_found"),
        (
            "context_length",
            openai.BadRequestError,
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        ("timeout", openai.APIStatusError, 408, "timeout", None),
        ("conflict", openai.ConflictError, 409, "invalid_request_error", "conflict"),
    ],
)
def test_fail_kinds_raise_sdk_classes(
    fake_openai: FakeOpenAI,
    client: openai.OpenAI,
    kind: str,
    exc: type[openai.APIStatusError],
    status: int,
    type_: str,
    code: str | None,
) -> None:
    fake_openai.enqueue(Fail(kind))
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    err = info.value
    assert type(err) is exc
    assert err.status_code == status
    assert (err.type, err.code) == (type_, code)
    assert isinstance(err.body, dict)
    assert set(err.body) == {"message", "type", "param", "code"}
    assert err.request_id is not None
    assert err.request_id.startswith("req_")
    assert KEY not in str(err)


def test_retry_after_headers_and_overrides(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(
        Fail("rate_limit", retry_after="7", retry_after_ms="6500"),
        Fail("server", status=502, message="upstream exploded"),
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    headers = info.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("7", "6500")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "gpt-4o" in info.value.message
    with pytest.raises(openai.InternalServerError) as info2:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert info2.value.status_code == 502
    assert "upstream exploded" in info2.value.message
    assert "retry-after" not in info2.value.response.headers


def test_mid_stream_error_raises_api_error(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(MidStreamError(text="abcdefghijkl", after_chunks=2, kind="server"))
    got: list[str] = []
    stream = client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    with pytest.raises(openai.APIError) as info:
        got.extend(c.choices[0].delta.content or "" for c in stream)
    assert not isinstance(info.value, openai.APIStatusError | openai.APIConnectionError)
    assert "".join(got) == "abcdefgh"
    assert info.value.type == "server_error"
    assert "Sorry about that" in info.value.message


def test_break_stream_raises_connection_error(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake_openai.enqueue(BreakStream(text="abcdefghijkl", after_chunks=1), BreakStream())
    got: list[str] = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    with pytest.raises(openai.APIConnectionError):
        got.extend(c.choices[0].delta.content or "" for c in stream)
    assert "".join(got) == "abcd"
    with pytest.raises(openai.APIConnectionError):  # non-stream: dropped before any byte
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert fake_openai.disconnects == 0  # the fake hung up, not the client


def test_scripted_fail_wins_over_auth_and_validation(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"), Fail("rate_limit"), Reply(text="never"))
    with openai.OpenAI(base_url=fake_openai.url + "/v1", api_key="sk-bad", max_retries=0) as c:
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="gpt-4o", messages=MSGS)
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gpt-4o", messages=MSGS, extra_body={"bogus": 1})
        with pytest.raises(openai.AuthenticationError):  # a Reply needs an acceptable request
            c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert fake_openai.pending == 1


# ------------------------------------------------------------------------ strict validation
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"extra_body": {"temprature": 0.5}}, "Unrecognized request argument supplied: temprature"),
        ({"stream_options": {"include_usage": True}}, "'stream_options'"),
        ({"tool_choice": "required"}, "'tool_choice'"),
        ({"parallel_tool_calls": False}, "'parallel_tool_calls'"),
        ({"response_format": {"type": "json_object"}}, "'json'"),
        ({"extra_body": {"model": None}}, "you must provide a model parameter"),
        ({"messages": []}, "'messages': empty array"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "param=messages[0].role"),
        ({"temperature": 2.5}, "'temperature'"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "'stop'"),
        ({"model": "gpt-5-mini", "max_tokens": 10}, "Use 'max_completion_tokens' instead"),
        ({"model": "o3-mini", "temperature": 0.2}, "Only the default (1) value is supported"),
        (
            {"messages": [*MSGS, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            {
                "messages": [
                    *MSGS,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": {}},
                            }
                        ],
                    },
                ]
            },
            "'messages[1].tool_calls[0].function.arguments': expected a string, but got an object",
        ),
        (
            {
                "messages": [
                    *MSGS,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "did not have response messages: call_9",
        ),
    ],
)
def test_strict_validation_rejects(
    fake_openai: FakeOpenAI, client: openai.OpenAI, kwargs: dict[str, Any], needle: str
) -> None:
    fake_openai.enqueue(Reply(text="must not be used"))
    args: dict[str, Any] = {"model": "gpt-4o", "messages": MSGS} | kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**args)
    assert needle in f"{info.value.message} param={info.value.param}"
    assert info.value.type == "invalid_request_error"
    assert fake_openai.pending == 1  # a rejected request consumes no scripted step


def test_valid_optional_fields_are_accepted(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "developer", "content": "Answer in JSON."}, *MSGS],
        temperature=0.2,
        top_p=1,
        max_completion_tokens=50,
        stop=["\n"],
        seed=1,
        n=1,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        tools=TOOLS,
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format={"type": "json_object"},
        user="u1",
        metadata={"k": "v"},
        store=False,
        service_tier="auto",
        reasoning_effort="low",
        logprobs=False,
        safety_identifier="s",
        prompt_cache_key="p",
        verbosity="low",
    )
    assert done.choices[0].message.content == "Hello from the fake"


def test_wrong_key_is_401_and_masked(fake_openai: FakeOpenAI) -> None:
    wrong = "sk-wrong-secret-key-987654321"
    with openai.OpenAI(base_url=fake_openai.url + "/v1", api_key=wrong, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            c.chat.completions.create(model="gpt-4o", messages=MSGS)
        assert info.value.code == "invalid_api_key"
        assert info.value.status_code == 401
        assert wrong not in str(info.value)
        assert wrong not in info.value.response.text
        assert f"Incorrect API key provided: {mask_key(wrong)}." in info.value.message
        assert mask_key(wrong).startswith("sk-wrong*")
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
    assert fake_openai.pending == 0
    assert len(fake_openai.requests) == 2


async def test_raw_http_edges(fake_openai: FakeOpenAI) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(fake_openai.url) as http:
        async with http.post("/v1/chat/completions", json={"model": "m", "messages": MSGS}) as r:
            body = await r.json()
            assert r.status == 401
            assert body["error"]["message"].startswith("You didn't provide an API key")
        async with http.post("/v1/nope", json={}, headers=auth) as r:
            assert r.status == 404
            assert (await r.json())["error"]["message"] == "Invalid URL (POST /v1/nope)"
        async with http.get("/v1/chat/completions", headers=auth) as r:
            assert r.status == 404
            assert "Invalid URL (GET /v1/chat/completions)" in await r.text()
        async with http.post("/v1/chat/completions", data=b"{nope", headers=auth) as r:
            assert r.status == 400
            assert "could not parse the JSON body" in await r.text()
    assert [r.path for r in fake_openai.requests][-1] == "/v1/chat/completions"
    assert fake_openai.requests[1].method == "POST"


def test_models_list_and_retrieve(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models] == fake_openai.models
    assert all(m.object == "model" and m.owned_by for m in models)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-99")


# ----------------------------------------------------------------- timing and hang-ups
def test_stall_and_client_timeout_counts_disconnect(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake_openai.enqueue(Stall(seconds=5))
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert fake_openai.wait_for_disconnect(timeout=1.0)
    assert time.perf_counter() - started < 0.6  # seen within ~100 ms of the hang-up
    assert fake_openai.disconnects == 1


async def test_stall_mid_stream_then_client_closes(
    fake_openai: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    fake_openai.enqueue(Stall(seconds=5, after_chunks=2))
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    got = [(await stream.__anext__()).choices[0].delta.content for _ in range(3)]
    assert got == ["", "Hell", "o fr"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.__anext__(), 0.1)  # nothing more arrives
    await stream.close()
    assert await fake_openai.wait_for_disconnect_async(timeout=1.0)


async def test_sync_wait_inside_event_loop_warns(fake_openai: FakeOpenAI) -> None:
    with pytest.warns(RuntimeWarning, match="wait_for_disconnect_async"):
        assert not fake_openai.wait_for_disconnect(timeout=0.01)


def test_short_stall_and_delay_then_answer(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=0.1), Reply(text="late", delay_s=0.1))
    started = time.perf_counter()
    first = client.chat.completions.create(model="gpt-4o", messages=MSGS)
    second = client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert time.perf_counter() - started >= 0.2
    assert first.choices[0].message.content == "Hello from the fake"
    assert second.choices[0].message.content == "late"
    assert fake_openai.disconnects == 0


# -------------------------------------------------------------------- scripting machinery
def test_queue_is_fifo_then_default_and_reset(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake_openai.enqueue(Reply(text="one"), Reply(text="two"))
    fake_openai.default = Reply(text="fallback")
    texts = [
        client.chat.completions.create(model="gpt-4o", messages=MSGS).choices[0].message.content
        for _ in range(3)
    ]
    assert texts == ["one", "two", "fallback"]
    assert len(fake_openai.requests) == 3
    fake_openai.enqueue(Fail("server"))
    fake_openai.reset()
    assert (fake_openai.pending, fake_openai.requests, fake_openai.disconnects) == (0, [], 0)
    assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content == (
        "Hello from the fake"
    )
    with pytest.raises(TypeError):
        fake_openai.enqueue("not a step")  # type: ignore[arg-type]


async def test_concurrent_async_requests(
    fake_openai: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    fake_openai.enqueue(*[Reply(text=f"r{i}", delay_s=0.05) for i in range(8)])

    async def one() -> str:
        done = await aclient.chat.completions.create(model="gpt-4o", messages=MSGS)
        return done.choices[0].message.content or ""

    started = time.perf_counter()
    texts = await asyncio.gather(*[one() for _ in range(8)])
    assert sorted(texts) == sorted(f"r{i}" for i in range(8))
    assert time.perf_counter() - started < 0.35  # served concurrently, not one by one


def test_start_is_fast_and_stop_is_clean() -> None:
    started = time.perf_counter()
    fake = FakeOpenAI(api_key="sk-test-other-key-000000").start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 0.2, elapsed  # typically ~2 ms
        assert fake.url.startswith("http://127.0.0.1:")
        fake.enqueue(Stall(seconds=30))
        body = json.dumps({"model": "gpt-4o", "messages": MSGS}).encode()
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            "Authorization: Bearer sk-test-other-key-000000\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
            sock.sendall(head.encode() + body)
            assert fake.wait_for_requests(1)
            started = time.perf_counter()
            fake.stop()  # a stalled request in flight must not hold the shutdown
            assert time.perf_counter() - started < 1.0
            assert sock.recv(100) == b""  # the fake closed the connection without answering
    finally:
        fake.stop()
    fake.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = fake.url


# --------------------------------------------------------------------------- choices and tools
def test_n_choices_and_logprobs(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(Reply(text="Hi there", chunk_size=3, completion_tokens=4))
    done = client.chat.completions.create(
        model="gpt-4o", messages=MSGS, n=2, logprobs=True, top_logprobs=2
    )
    assert [c.index for c in done.choices] == [0, 1]
    assert [c.message.content for c in done.choices] == ["Hi there", "Hi there #1"]
    first = done.choices[0].logprobs
    assert first is not None
    assert first.content is not None
    assert [t.token for t in first.content] == ["Hi ", "the", "re"]
    assert len(first.content[0].top_logprobs) == 2
    assert done.usage is not None
    assert done.usage.completion_tokens == 8
    assert done.system_fingerprint is not None
    assert done.system_fingerprint.startswith("fp_")


def test_streamed_logprobs(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(Reply(text="Hi there", chunk_size=4))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, logprobs=True, top_logprobs=1
    )
    tokens = [
        t.token
        for chunk in stream
        for choice in chunk.choices
        if choice.logprobs is not None
        for t in choice.logprobs.content or ()
    ]
    assert tokens == ["Hi t", "here"]


def test_strict_and_custom_tools(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="", tool_calls=[ToolCallSpec("shell", custom_input="ls -la")], finish="tool_calls"
        )
    )
    strict = {**TOOLS[0], "function": {**TOOLS[0]["function"], "strict": True}}
    custom = {"type": "custom", "custom": {"name": "shell", "format": {"type": "text"}}}
    done = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=[strict, custom])
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.type == "custom"
    assert (call.custom.name, call.custom.input) == ("shell", "ls -la")
    sent = fake_openai.last_request.json
    assert sent["tools"][0]["function"]["strict"] is True
    # The call goes back in the history as it came: the API takes it.
    history = [*MSGS, done.choices[0].message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": "two files"})
    fake_openai.enqueue(Reply(text="Two files."))
    again = client.chat.completions.create(model="gpt-4o", messages=history, tools=[custom])
    assert again.choices[0].message.content == "Two files."


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"n": 0}, "n"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0].custom.name"),
        ({"tools": [{"type": "hosted", "hosted": {"name": "x"}}]}, "tools[0].type"),
    ],
)
def test_bad_choices_and_tools_are_400(
    client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS, **fields)
    assert info.value.param == param
