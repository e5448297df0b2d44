"""``/v1/messages`` with the official anthropic SDK as the client: to the Anthropic fake and,
translated, to an OpenAI vendor; streaming, tools, ``x-api-key``, errors in Anthropic's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.fixtures_anthropic import FAKE_ANTHROPIC_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply, ToolCallSpec
from tests.gateway import AUTH, KEY, call

MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
WEATHER = Reply(
    text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})], finish="tool_calls"
)


@pytest.fixture
def client(gateway: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway, api_key=KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(
    ("model", "vendor"), [("claude-sonnet-4-6", "anthropic"), ("gpt-4o", "openai")]
)
def test_messages_reach_any_vendor(client: anthropic.Anthropic, model: str, vendor: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=100, system="Be brief.", messages=MSGS
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 12)
    assert raw.headers["x-llmdispatcher-vendor"] == vendor


def test_system_and_key_reach_the_vendor_translated(
    client: anthropic.Anthropic, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    client.messages.create(model="gpt-4o", max_tokens=50, system="Be brief.", messages=MSGS)
    assert fake_openai.last_request.json["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    client.messages.create(
        model="claude-sonnet-4-6", max_tokens=50, system="Be brief.", messages=MSGS
    )
    sent = fake_anthropic.last_request
    assert sent.json["system"] == "Be brief."
    assert sent.json["max_tokens"] == 50
    assert sent.headers["x-api-key"] == FAKE_ANTHROPIC_KEY


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o"])
def test_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100, messages=MSGS) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 12)


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-4o"])
def test_tools(
    client: anthropic.Anthropic, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    fake_openai.enqueue(WEATHER)
    fake_anthropic.enqueue(WEATHER)
    message = client.messages.create(model=model, max_tokens=100, messages=MSGS, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    use = message.content[-1]
    assert use.type == "tool_use"
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    history: list[Any] = [
        *MSGS,
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in message.content],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    answer = client.messages.create(model=model, max_tokens=100, messages=history, tools=TOOLS)
    assert answer.content[0].type == "text"


def test_streamed_tools(client: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(WEATHER)
    with client.messages.stream(
        model="gpt-4o", max_tokens=100, messages=MSGS, tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    use = final.content[0]
    assert use.type == "tool_use"
    assert use.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_x_api_key_is_accepted_here(gateway: str) -> None:
    body = {"model": "gpt-4o", "max_tokens": 10, "messages": MSGS}
    assert call("POST", f"{gateway}/v1/messages", body, {"x-api-key": KEY}).status == 200


def test_errors_have_anthropics_shape(client: anthropic.Anthropic, gateway: str) -> None:
    reply = call("POST", f"{gateway}/v1/messages", {"model": "gpt-4o", "messages": MSGS}, AUTH)
    assert reply.status == 400
    body = reply.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert body["request_id"] == reply.headers["x-request-id"]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway, api_key="wrong-key-0123456789", max_retries=0
        ).messages.create(model="gpt-4o", max_tokens=10, messages=MSGS)


def test_rate_limit_maps_to_429(
    client: anthropic.Anthropic, fake_anthropic: FakeAnthropic, fake_openai_b: FakeOpenAI
) -> None:
    fake_anthropic.enqueue(*[Fail("rate_limit", retry_after="0")] * 2)
    fake_openai_b.enqueue(*[Fail("rate_limit", retry_after="0")] * 2)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MSGS)
    assert caught.value.response.headers["x-llmdispatcher-attempts"] == "4"
    assert json.loads(caught.value.response.text)["error"]["type"] == "rate_limit_error"
