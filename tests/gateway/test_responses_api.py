"""``/v1/responses`` with the official openai SDK as the client and a fake Anthropic and a fake
Gemini behind an in-process gateway: answers, typed event streams, function calling,
``previous_response_id`` chains, JSON schema, an upstream failure, stored responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher, RetryPolicy
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.gateway.app import create_app
from tests.fakes import anthropic_fake, gemini_fake
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.script import Fail, Reply, ToolCallSpec

KEY, OTHER_KEY = "rsp-test-key-one-0123456789", "rsp-test-key-two-0123456789"
CLAUDE, GEMINI = "claude-haiku-4-5", "gemini-2.5-flash"
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def gateway(fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini) -> AsyncIterator[str]:
    """An in-process gateway (two keys) in front of the fakes; its base URL."""
    vendors = [anthropic_fake.adapter_for(fake_anthropic), gemini_fake.adapter_for(fake_gemini)]
    config = Config(retry_policy=RetryPolicy(max_retries=0))
    dispatcher = Dispatcher(config, vendors=vendors, clock=FakeClock())
    keys = (ApiKeyConfig(name="one", key=KEY), ApiKeyConfig(name="two", key=OTHER_KEY))
    client = TestClient(TestServer(create_app(dispatcher, GatewayConfig(api_keys=keys))))
    await client.start_server()
    yield str(client.make_url("/v1"))
    await client.close()
    await dispatcher.aclose()


@pytest.fixture
async def sdk(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway, api_key=KEY, max_retries=0) as client:
        yield client


async def test_create_with_fake_anthropic(
    sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply(text="Bonjour!", prompt_tokens=11, completion_tokens=3))
    response = await sdk.responses.create(
        model=CLAUDE, input="Say hello in French.", instructions="Be brief.", max_output_tokens=50
    )
    assert response.output_text == "Bonjour!"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.completed_at is not None
    assert response.completed_at >= response.created_at
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)
    assert response.usage.total_tokens == 14
    assert response.usage.model_extra is not None
    assert response.usage.model_extra["cost_usd"] > 0  # from the price table
    sent = fake_anthropic.last_request.json
    assert sent["system"] == "Be brief."
    assert sent["max_tokens"] == 50
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello in French."}]}
    ]


async def test_stream_with_fake_gemini(sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Reply(text="Hello from Gemini", chunk_size=5, cached_tokens=4))
    async with sdk.responses.stream(model=GEMINI, input="hi") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Hello from Gemini"
    assert final.usage is not None
    assert final.usage.input_tokens_details.cached_tokens == 4
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds.count("response.output_text.delta") == 4  # "Hello from Gemini" in 5s
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_stream_events_are_numbered_in_order(gateway: str) -> None:
    """The raw SSE: every event names its type twice (``event:`` and ``type``) and counts."""
    async with openai.AsyncOpenAI(base_url=gateway, api_key=KEY, max_retries=0) as client:
        raw = await client.responses.with_raw_response.create(model=GEMINI, input="hi", stream=True)
        body = (await raw.http_response.aread()).decode()
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    numbers = []
    for kind_line, data_line in events:
        data = json.loads(data_line.removeprefix("data: "))
        assert kind_line == f"event: {data['type']}"
        numbers.append(data["sequence_number"])
    assert numbers == list(range(len(events)))


async def test_function_calling_round_trip(
    sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            finish="tool_calls",
        ),
        Reply(text="It is sunny in Paris."),
    )
    first = await sdk.responses.create(
        model=CLAUDE, input="Weather in Paris?", tools=[WEATHER_TOOL]
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = await sdk.responses.create(
        model=CLAUDE,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "It is sunny in Paris."
    turns = fake_anthropic.last_request.json["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0]["type"] == "tool_use"
    assert turns[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.call_id,
        "content": [{"type": "text", "text": "sunny"}],
    }


async def test_streamed_function_call(
    sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply(
            text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Rome"})], finish="tool_calls"
        )
    )
    async with sdk.responses.stream(model=CLAUDE, input="Weather?", tools=[WEATHER_TOOL]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    (call,) = final.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Rome"}
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_previous_response_id_chains_turns(
    sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    first = await sdk.responses.create(
        model=GEMINI, input="My name is Ada.", instructions="Be kind."
    )
    second = await sdk.responses.create(
        model=GEMINI, input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    contents = fake_gemini.last_request.json["contents"]
    texts = [(c["role"], c["parts"][0]["text"]) for c in contents]
    assert texts == [
        ("user", "My name is Ada."),
        ("model", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    # instructions are not carried over to the next turn, as OpenAI has it
    assert "systemInstruction" not in fake_gemini.last_request.json


async def test_streamed_answer_is_stored_before_it_completes(
    sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(Reply(text="first"), Reply(text="second"))
    async with sdk.responses.stream(model=GEMINI, input="one") as stream:
        first = await stream.get_final_response()
    second = await sdk.responses.create(model=GEMINI, input="two", previous_response_id=first.id)
    assert second.output_text == "second"
    got = await sdk.responses.retrieve(first.id)
    assert got.output_text == "first"
    # stored as streamed: the same item, closed
    assert [(i.id, i.status) for i in got.output] == [(i.id, "completed") for i in first.output]
    assert got.usage == first.usage


async def test_json_schema_answer(sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    fake_gemini.enqueue(Reply(text='{"city": "Paris"}'))
    response = await sdk.responses.create(
        model=GEMINI,
        input="Capital of France, as JSON.",
        text={
            "format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": True}
        },
    )
    assert json.loads(response.output_text) == {"city": "Paris"}
    config = fake_gemini.last_request.json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_upstream_failure_before_first_token_is_an_http_error(
    sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fail("overloaded"))
    with pytest.raises(openai.APIStatusError) as caught:
        async with sdk.responses.stream(model=CLAUDE, input="hi") as stream:
            async for _ in stream:
                pass
    assert caught.value.status_code == 503
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "vendor_overloaded"


async def test_retrieve_delete_and_input_items(
    sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(Reply(text="ok"))
    made = await sdk.responses.create(
        model=GEMINI,
        input=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": [{"type": "input_text", "text": "three"}]},
        ],
        metadata={"ticket": "42"},
    )
    got = await sdk.responses.retrieve(made.id)
    assert got.output_text == "ok"
    assert got.metadata == {"ticket": "42"}
    items = await sdk.responses.input_items.list(made.id)
    texts = [item.content[0].text for item in items.data]  # type: ignore[union-attr]
    assert texts == ["three", "two", "one"]  # newest first, as OpenAI lists them
    page = await sdk.responses.input_items.list(made.id, order="asc", limit=1)
    assert [i.content[0].text for i in page.data] == ["one"]
    assert page.has_more
    await sdk.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(made.id)


async def test_store_false_keeps_nothing(sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(Reply(text="ok"))
    made = await sdk.responses.create(model=GEMINI, input="hi", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(made.id)


async def test_another_keys_response_is_not_found(
    gateway: str, sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(Reply(text="mine"))
    made = await sdk.responses.create(model=GEMINI, input="hi")
    async with openai.AsyncOpenAI(base_url=gateway, api_key=OTHER_KEY, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await other.responses.create(model=GEMINI, input="hi", previous_response_id=made.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(made.id)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "previous_response_id"
    assert (await sdk.responses.retrieve(made.id)).output_text == "mine"


PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


async def test_image_input_and_named_tool_choice(
    sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply(text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Oslo"})], finish="stop")
    )
    response = await sdk.responses.create(
        model=CLAUDE,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Where is this? Then the weather."},
                    {"type": "input_image", "image_url": PIXEL, "detail": "low"},
                ],
            }
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        user="user-7",
    )
    assert response.output[0].type == "function_call"
    sent = fake_anthropic.last_request.json
    blocks = sent["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "image"]
    assert blocks[1]["source"]["media_type"] == "image/png"
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert sent["metadata"] == {"user_id": "user-7"}


async def test_a_cut_answer_is_incomplete(sdk: openai.AsyncOpenAI, fake_gemini: FakeGemini) -> None:
    fake_gemini.enqueue(
        Reply(text="Once upon a", finish="length"), Reply(text="Once", finish="length")
    )
    response = await sdk.responses.create(model=GEMINI, input="story", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    stream = await sdk.responses.create(model=GEMINI, input="story", stream=True)
    last = [event async for event in stream][-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
