"""``/v1/chat/completions`` and ``/v1/models`` with the official openai SDK as the client: sync,
async, streaming (and its exact wire format), tools, the response headers, what reaches the
vendor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply, ToolCallSpec
from tests.gateway import AUTH, KEY, call

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
WEATHER = Reply(
    text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})], finish="tool_calls"
)


@pytest.fixture
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as c:
        yield c


def test_sync_completion_with_headers(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the fake"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 21
    assert raw.headers["x-llmdispatcher-vendor"] == "openai"
    assert raw.headers["x-llmdispatcher-model"] == "gpt-4o"
    assert raw.headers["x-llmdispatcher-attempts"] == "1"
    assert 0 <= float(raw.headers["x-llmdispatcher-overhead-ms"]) < 1000
    assert len(raw.headers["x-request-id"]) >= 16
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"


async def test_async_completion(gateway: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as c:
        completion = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert completion.choices[0].message.content == "Hello from the fake"


def test_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12


def test_stream_wire_format_is_openais(gateway: str) -> None:
    body = {
        "model": "gpt-4o",
        "messages": MSGS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = call("POST", f"{gateway}/v1/chat/completions", body, AUTH)
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.headers["x-llmdispatcher-attempts"] == "1"
    frames = reply.body.decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    events = [json.loads(f.removeprefix("data: ")) for f in frames[:-2]]
    assert all(f.startswith("data: {") for f in frames[:-2])
    first, usage = events[0], events[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [e["object"] for e in events] == ["chat.completion.chunk"] * len(events)
    assert len({e["id"] for e in events}) == 1
    assert all(e["usage"] is None for e in events[:-1])
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == 21
    assert events[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_stream_without_usage_has_no_usage_key(gateway: str) -> None:
    body = {"model": "gpt-4o", "messages": MSGS, "stream": True}
    frames = call("POST", f"{gateway}/v1/chat/completions", body, AUTH).body.decode().split("\n\n")
    events = [json.loads(f.removeprefix("data: ")) for f in frames[:-2]]
    assert all("usage" not in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_tools(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(WEATHER)
    completion = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call_ = choice.message.tool_calls[0]
    assert call_.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call_.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = fake_openai.last_request.json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    follow_up = [
        *MSGS,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call_.id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=follow_up, tools=TOOLS)
    assert answer.choices[0].message.content == "Hello from the fake"
    assert fake_openai.last_request.json["messages"][-1]["tool_call_id"] == call_.id


def test_streamed_tools(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(WEATHER)
    stream = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=TOOLS, stream=True)
    pieces = [d for c in stream if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert pieces[0].id
    assert pieces[0].function
    assert pieces[0].function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert json.loads(arguments) == {"city": "Paris"}


def test_fallback_shows_in_headers(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"), Fail("server"))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    assert raw.headers["x-llmdispatcher-vendor"] == "backup"
    assert raw.headers["x-llmdispatcher-attempts"] == "3"


def test_clients_cannot_pick_upstreams_or_credentials(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    body = {
        "model": "gpt-4o",
        "messages": MSGS,
        "api_key": "sk-attacker",
        "api_base": "http://evil.example",
        "base_url": "http://evil.example",
        "extra_headers": {"Authorization": "Bearer sk-attacker"},
        "seed": 7,
    }
    headers = {**AUTH, "OpenAI-Organization": "org-attacker", "x-api-key": "sk-attacker"}
    assert call("POST", f"{gateway}/v1/chat/completions", body, headers).status == 200
    sent = fake_openai.last_request
    assert sent.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"
    assert "openai-organization" not in sent.headers
    assert "x-api-key" not in sent.headers
    assert set(sent.json) == {"model", "messages", "seed"}  # seed: a documented passthrough


def test_models_lists_every_vendor(client: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["gpt-4o"] == "openai"  # served by openai and backup: listed once
    assert any(owner == "anthropic" for owner in models.values())
