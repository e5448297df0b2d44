"""The fake Anthropic server is faithful: the official ``anthropic`` SDK (2.14) talks to it like
to the API (sync and async, streams, tools, errors, retry headers, strict validation)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.fixtures_anthropic import FAKE_ANTHROPIC_KEY as KEY
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "claude-sonnet-4-6"
MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "get_time", "input_schema": {"type": "object"}},
]
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def client(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake_anthropic.url, api_key=KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def old_client(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """A client pinned to API version 2023-06-01 (sampling parameters allowed)."""
    with anthropic.Anthropic(
        base_url=fake_anthropic.url,
        api_key=KEY,
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    ) as c:
        yield c


@pytest.fixture
async def aclient(fake_anthropic: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=KEY, max_retries=0
    ) as c:
        yield c


def create(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": MSGS} | kwargs
    return client.messages.create(**args)


# --------------------------------------------------------------------------- success paths
def test_non_stream_text(fake_anthropic: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake_anthropic.enqueue(
        Reply(
            text="Bonjour",
            prompt_tokens=9,
            completion_tokens=7,
            cached_tokens=4,
            reasoning_tokens=3,
            headers={"x-extra": "yes"},
        )
    )
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MSGS)
    done = raw.parse()
    assert done.id.startswith("msg_01")
    assert (done.type, done.role, done.model) == ("message", "assistant", MODEL)
    assert [(b.type, getattr(b, "text", None)) for b in done.content] == [("text", "Bonjour")]
    assert (done.stop_reason, done.stop_sequence) == ("end_turn", None)
    usage = done.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (5, 4)  # input excludes cache
    assert (usage.cache_creation_input_tokens, usage.output_tokens) == (0, 7)
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == 3
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert raw.headers["anthropic-ratelimit-input-tokens-limit"] == "80000"
    assert raw.headers["x-extra"] == "yes"
    sent = fake_anthropic.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the SDK's auth
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.json == {"model": MODEL, "max_tokens": 100, "messages": MSGS}


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic, finish: str, stop_reason: str
) -> None:
    fake_anthropic.enqueue(Reply(finish=finish), Reply(finish=finish))
    assert create(client).stop_reason == stop_reason
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MSGS) as stream:
        assert stream.get_final_message().stop_reason == stop_reason


def test_stream_events_and_usage(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    fake_anthropic.enqueue(
        Reply(text=text, chunk_size=5, prompt_tokens=11, completion_tokens=9, cached_tokens=2)
    )
    events = list(create(client, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 9  # 43 chars / 5 per delta
    start = events[0].message
    assert (start.usage.input_tokens, start.usage.output_tokens) == (9, 1)  # 1 = placeholder
    assert start.stop_reason is None
    assert start.content == []
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert "".join(deltas) == text
    final = events[-2]
    assert (final.delta.stop_reason, final.usage.output_tokens) == ("end_turn", 9)
    assert final.usage.cache_read_input_tokens == 2


def test_stream_helper_accumulates(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.enqueue(Reply(text="Streaming via the helper.", chunk_size=3))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MSGS) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Streaming via the helper."
    assert len(pieces) == 9
    assert final.content[0].type == "text"
    assert final.content[0].text == "Streaming via the helper."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 12)


def test_stream_wire_format(client: anthropic.Anthropic) -> None:
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=100, messages=MSGS, stream=True
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert len(names) == len(datas) == len(lines) // 2
    assert names == [d["type"] for d in datas]  # the event name repeats the data's type
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    assert "ping" in names
    assert "data: [DONE]" not in lines


def test_tool_calls_non_stream_and_continued(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    specs = [
        ToolCallSpec("get_weather", {"city": "Paris"}),
        ToolCallSpec("get_time", {"tz": "Europe/Paris", "fmt": {"h24": True}}),
    ]
    fake_anthropic.enqueue(Reply(text="Checking.", tool_calls=specs, finish="tool_calls"))
    done = create(client, tools=TOOLS)
    assert done.stop_reason == "tool_use"
    assert done.content[0].type == "text"
    uses = [b for b in done.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [(s.name, s.arguments) for s in specs]
    assert all(u.id.startswith("toolu_01") for u in uses)
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]
    follow = [*MSGS, done.to_param(), {"role": "user", "content": results}]
    assert create(client, messages=follow, tools=TOOLS).stop_reason == "end_turn"


def test_tool_calls_stream_helper(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_time")]
    fake_anthropic.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls", chunk_size=3))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MSGS, tools=TOOLS) as s:
        kinds = {event.type for event in s}
        final = s.get_final_message()
    assert "input_json" in kinds
    assert [(b.type, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "get_weather", {"city": "Paris"}),
        ("tool_use", "get_time", {}),
    ]
    assert final.stop_reason == "tool_use"


async def test_tool_calls_stream_manual_join(
    fake_anthropic: FakeAnthropic, aclient: anthropic.AsyncAnthropic
) -> None:
    specs = [ToolCallSpec("a", {"x": 1, "long": "y" * 30}), ToolCallSpec("b", {"z": [1, 2]})]
    fake_anthropic.enqueue(Reply(text="Hm.", tool_calls=specs, finish="tool_calls", chunk_size=3))
    stream = await aclient.messages.create(
        model=MODEL, max_tokens=100, messages=MSGS, tools=TOOLS, stream=True
    )
    blocks: dict[int, dict[str, Any]] = {}
    async for event in stream:
        if event.type == "content_block_start":
            blocks[event.index] = {"block": event.content_block, "json": ""}
        elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
            blocks[event.index]["json"] += event.delta.partial_json
    assert blocks[0]["block"].type == "text"
    tools = [blocks[i] for i in (1, 2)]
    assert [(t["block"].name, json.loads(t["json"])) for t in tools] == [
        (s.name, s.arguments) for s in specs
    ]
    assert all(t["block"].input == {} for t in tools)  # input arrives only as partial JSON


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "exc", "status", "type_"),
    [
        ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("quota", anthropic.PaymentRequiredError, 402, "billing_error"),
        ("server", anthropic.InternalServerError, 500, "api_error"),
        ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
        ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
        ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("not_found", anthropic.NotFoundError, 404, "not_found_error"),
        ("context_length", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("timeout", anthropic.RequestTimeoutError, 408, "timeout_error"),
        ("conflict", anthropic.ConflictError, 409, "conflict_error"),
    ],
)
def test_fail_kinds_raise_sdk_classes(
    fake_anthropic: FakeAnthropic,
    client: anthropic.Anthropic,
    kind: str,
    exc: type[anthropic.APIStatusError],
    status: int,
    type_: str,
) -> None:
    fake_anthropic.enqueue(Fail(kind))
    with pytest.raises(exc) as info:
        create(client)
    err = info.value
    assert type(err) is exc
    assert (err.status_code, err.type) == (status, type_)
    assert isinstance(err.body, dict)
    assert set(err.body) == {"type", "error", "request_id"}
    assert err.body["type"] == "error"
    assert err.request_id is not None
    assert err.request_id == err.body["request_id"]
    assert KEY not in str(err)
    if kind == "context_length":
        assert err.api_message is not None
        assert err.api_message.startswith("prompt is too long: ")
    if kind == "not_found":
        assert err.api_message == f"model: {MODEL}"


def test_retry_headers_and_overrides(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake_anthropic.enqueue(
        Fail("rate_limit", retry_after="7", retry_after_ms="6500"),
        Fail("server", status=503, message="upstream exploded"),
    )
    with pytest.raises(anthropic.RateLimitError) as info:
        create(client)
    headers = info.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("7", "6500")
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-tokens-reset"].endswith("Z")
    with pytest.raises(anthropic.ServiceUnavailableError) as info2:
        create(client)
    assert info2.value.api_message == "upstream exploded"
    assert "retry-after" not in info2.value.response.headers


def test_sdk_retries_after_the_hint(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fail("overloaded", retry_after_ms="10"), Reply(text="second"))
    with anthropic.Anthropic(base_url=fake_anthropic.url, api_key=KEY, max_retries=1) as c:
        done = create(c)
    assert done.content[0].text == "second"  # type: ignore[union-attr]
    retries = [r.headers["x-stainless-retry-count"] for r in fake_anthropic.requests]
    assert retries == ["0", "1"]


@pytest.mark.parametrize(
    ("kind", "type_"),
    [
        ("overloaded", "overloaded_error"),
        ("server", "overloaded_error"),
        ("rate_limit", "rate_limit_error"),
    ],
)
def test_mid_stream_error_event(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic, kind: str, type_: str
) -> None:
    fake_anthropic.enqueue(MidStreamError(text="abcdefghijkl", after_chunks=2, kind=kind))
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in create(client, stream=True):
            if event.type == "content_block_delta":
                got.append(event.delta.text)
    assert "".join(got) == "abcdefgh"
    assert info.value.status_code == 200  # the SDK keeps the stream's status, not 529
    assert info.value.type == type_
    assert info.value.request_id is not None


def test_break_stream_raises(fake_anthropic: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake_anthropic.enqueue(BreakStream(text="abcdefghijkl", after_chunks=1), BreakStream())
    got: list[str] = []
    # the SDK lets the transport error through (vendors.md §8.10)
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        for event in create(client, stream=True):
            if event.type == "content_block_delta":
                got.append(event.delta.text)
    assert "".join(got) == "abcd"
    with pytest.raises(anthropic.APIConnectionError):  # non-stream: dropped before any byte
        create(client)


def test_scripted_fail_wins_over_auth_and_validation(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Fail("overloaded"), Fail("rate_limit"), Reply(text="never"))
    with anthropic.Anthropic(base_url=fake_anthropic.url, api_key="sk-bad", max_retries=0) as c:
        with pytest.raises(anthropic.OverloadedError):
            create(c)
        with pytest.raises(anthropic.RateLimitError):
            create(c, extra_body={"bogus": 1})
        with pytest.raises(anthropic.AuthenticationError):  # a Reply needs an acceptable request
            create(c)
    assert fake_anthropic.pending == 1


# ---------------------------------------------------------------------- auth and versions
def _raw_post(fake: FakeAnthropic, headers: dict[str, str], body: Any = None) -> httpx2.Response:
    body = {"model": MODEL, "max_tokens": 10, "messages": MSGS} if body is None else body
    return httpx2.post(f"{fake.url}/v1/messages", json=body, headers=headers)


@pytest.mark.parametrize(
    ("headers", "status", "needle"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "x-api-key header is required"),
        ({"x-api-key": "sk-nope", "anthropic-version": "2023-06-01"}, 401, "invalid x-api-key"),
        ({"x-api-key": KEY}, 400, "anthropic-version: header is required"),
        ({"x-api-key": KEY, "anthropic-version": "2099-01-01"}, 400, "anthropic-version"),
        # both sent: x-api-key wins, whatever the Bearer token says
        (
            {
                "x-api-key": "sk-nope",
                "authorization": f"Bearer {KEY}",
                "anthropic-version": "2023-06-01",
            },
            401,
            "invalid x-api-key",
        ),
        (
            {
                "x-api-key": KEY,
                "authorization": "Bearer sk-nope",
                "anthropic-version": "2023-06-01",
            },
            200,
            "",
        ),
    ],
)
def test_auth_headers_and_version(
    fake_anthropic: FakeAnthropic, headers: dict[str, str], status: int, needle: str
) -> None:
    resp = _raw_post(fake_anthropic, headers)
    assert resp.status_code == status
    if needle:
        assert needle in resp.json()["error"]["message"]
        assert resp.headers["request-id"] == resp.json()["request_id"]


def test_sampling_parameters_depend_on_the_version(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic, old_client: anthropic.Anthropic
) -> None:
    for field in ("temperature", "top_p", "top_k"):
        with pytest.raises(anthropic.BadRequestError) as info:
            create(client, extra_body={field: 1 if field == "top_k" else 0.5})
        assert info.value.api_message == f"{field}: Extra inputs are not permitted"
    done = create(old_client, extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 5})
    assert done.stop_reason == "end_turn"
    assert fake_anthropic.last_request.headers["anthropic-version"] == "2023-06-01"
    with pytest.raises(anthropic.BadRequestError, match="less than or equal to 1"):
        create(old_client, extra_body={"temperature": 1.5})


def test_system_role_depends_on_the_version(
    client: anthropic.Anthropic, old_client: anthropic.Anthropic
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *MSGS]
    with pytest.raises(anthropic.BadRequestError, match='Unexpected role "system"'):
        create(old_client, messages=messages)
    assert create(client, messages=messages).stop_reason == "end_turn"  # SystemMessageParam


# ------------------------------------------------------------------------ strict validation
@pytest.mark.parametrize("field", ["model", "messages", "max_tokens"])
def test_required_fields(fake_anthropic: FakeAnthropic, field: str) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": MSGS}
    del body[field]
    headers = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
    resp = _raw_post(fake_anthropic, headers, body)
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"{field}: Field required",
    }


def _assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def _use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "get_time", "input": {}}


def _result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "ok"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"extra_body": {"temprature": 0.5}}, "temprature: Extra inputs are not permitted"),
        ({"max_tokens": 0, "extra_headers": {"anthropic-version": "2023-06-01"}}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty content"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "text content blocks must be non-empty",
        ),
        (
            {"messages": [*MSGS, _assistant(_use("toolu_9"))]},
            "without `tool_result` blocks immediately after: toolu_9",
        ),
        (
            {"messages": [*MSGS, _assistant(_use("toolu_9")), {"role": "user", "content": "and?"}]},
            "toolu_9",
        ),
        (
            {
                "messages": [
                    *MSGS,
                    _assistant(_use("toolu_9")),
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "first"}, _result("toolu_9")],
                    },
                ]
            },
            "immediately after",
        ),
        (
            {"messages": [{"role": "user", "content": [_result("toolu_7")]}]},
            "unexpected `tool_use_id`",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": PNG,
                                },
                            }
                        ],
                    }
                ]
            },
            "media_type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": f"data:image/png;base64,{PNG}",
                                },
                            }
                        ],
                    }
                ]
            },
            "base64",
        ),
        (
            {"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]},
            "String should match pattern",
        ),
        ({"tools": [{"name": "f"}]}, "input_schema: Field required"),
        (
            {"tool_choice": {"type": "any"}},
            "tool_choice may only be specified while providing tools",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}}, "not found"),
        (
            {
                "output_config": {
                    "format": {
                        "type": "json_schema",
                        "schema": {"type": "object", "properties": {}},
                    }
                }
            },
            "'additionalProperties' must be explicitly set to false",
        ),
        ({"metadata": {"user_id": "u", "session": "s"}}, "metadata.session: Extra inputs"),
    ],
)
def test_strict_validation_rejects(
    fake_anthropic: FakeAnthropic, client: anthropic.Anthropic, kwargs: dict[str, Any], needle: str
) -> None:
    fake_anthropic.enqueue(Reply(text="must not be used"))
    with pytest.raises(anthropic.BadRequestError) as info:
        create(client, **kwargs)
    assert needle in str(info.value.api_message)
    assert info.value.type == "invalid_request_error"
    assert fake_anthropic.pending == 1  # a rejected request consumes no scripted step


def test_valid_optional_fields_are_accepted(client: anthropic.Anthropic) -> None:
    closed = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": False,
    }
    done = create(
        client,
        system=[{"type": "text", "text": "Answer in JSON."}],
        messages=[
            {"role": "user", "content": "one"},
            {
                "role": "user",
                "content": [  # consecutive same-role turns are merged
                    {"type": "text", "text": "two"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                ],
            },
            _assistant({"type": "text", "text": "Checking."}, _use("toolu_1"), _use("toolu_2")),
            {
                "role": "user",
                "content": [
                    _result("toolu_1"),
                    _result("toolu_2"),
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
        stop_sequences=["END"],
        metadata={"user_id": "user-1"},
        tools=TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        output_config={"format": {"type": "json_schema", "schema": closed}, "effort": "low"},
    )
    assert done.stop_reason == "end_turn"


# ------------------------------------------------------------------------------ models
def test_models_list_pages_and_retrieve() -> None:
    names = [f"claude-model-{i:02d}" for i in range(25)]
    with (
        FakeAnthropic(api_key=KEY, models=names) as fake,
        anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0) as c,
    ):
        page = c.models.list()
        assert (page.has_more, page.first_id, page.last_id) == (True, names[0], names[19])
        assert [m.id for m in c.models.list()] == names  # auto-pagination via after_id
        before = c.models.list(before_id=names[20], limit=5)
        assert ([m.id for m in before.data], before.has_more) == (names[15:20], True)
        with pytest.raises(anthropic.BadRequestError, match="limit"):
            c.models.list(limit=0)
        info = c.models.retrieve(names[3])
        assert (info.type, info.id, info.lifecycle) == ("model", names[3], "active")
        with pytest.raises(anthropic.NotFoundError, match="model: nope"):
            c.models.retrieve("nope")
        with pytest.raises(anthropic.NotFoundError):
            c.get("/v1/nowhere", cast_to=object)


# --------------------------------------------------------------------------- fidelity
def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-5", messages=MSGS, system="Be brief.", tools=TOOLS
    )
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs"):
        client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=MSGS, extra_body={"max_tokens": 5}
        )


def test_stop_sequence_is_named(fake_anthropic: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake_anthropic.enqueue(Reply(text="one two", stop_sequence="THREE"), Reply(stop_sequence="X"))
    done = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stop_sequences=["THREE"]
    )
    assert (done.stop_reason, done.stop_sequence) == ("stop_sequence", "THREE")
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stop_sequences=["X"]
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "X")


def test_strict_tools_and_disable_parallel_tool_use(client: anthropic.Anthropic) -> None:
    tools: Any = [{**TOOLS[0], "strict": True}]
    done = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=MSGS,
        tools=tools,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert done.stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError, match="Extra inputs"):
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=MSGS,
            tools=tools,
            tool_choice={"type": "none", "disable_parallel_tool_use": True},  # type: ignore[typeddict-unknown-key]
        )
