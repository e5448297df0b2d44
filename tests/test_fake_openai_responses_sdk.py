"""The fake OpenAI's Responses API is faithful: the official ``openai`` SDK's
``responses.create`` and ``responses.stream`` (whose accumulator checks every item's identity
and order) read it like the real API. Then our ``OpenAIVendor(api="responses")`` against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmdispatcher import Config, Dispatcher, Request, RetryPolicy
from llmdispatcher.errors import (
    ConfigError,
    RateLimitError,
    StreamInterrupted,
    UnsupportedRequest,
    VendorUnavailable,
)
from tests.fakes.fixtures import FAKE_OPENAI_KEY as KEY
from tests.fakes.openai_fake import FakeOpenAI, adapter_for
from tests.fakes.script import Fail, MidStreamError, Reply, ToolCallSpec

TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
PARIS = ToolCallSpec("get_weather", {"city": "Paris"})


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{fake_openai.url}/v1", api_key=KEY, max_retries=0) as c:
        yield c


# --- the fake, read by the SDK ----------------------------------------------------------------
def test_sdk_create(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Hi there", cached_tokens=2, reasoning_tokens=3))
    response = client.responses.create(model="gpt-5", input="hi", instructions="Be brief.")
    assert response.output_text == "Hi there"
    assert response.status == "completed"
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert response.usage.output_tokens_details.reasoning_tokens == 3


def test_sdk_stream_text_and_calls(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Let me check.", tool_calls=[PARIS], finish="tool_calls"))
    with client.responses.stream(model="gpt-5", input="weather?", tools=[TOOL]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "Let me check."
    call = final.output[1]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.done" in kinds


def test_sdk_incomplete_answer(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Once upon", finish="length"))
    response = client.responses.create(model="gpt-5", input="story", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_sdk_sees_the_real_apis_refusals(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", input="hi", max_output_tokens=5)
    assert caught.value.param == "max_output_tokens"  # type: ignore[attr-defined]
    fake_openai.enqueue(Fail("rate_limit"))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-5", input="hi")


def test_sdk_mid_stream_error_event(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(MidStreamError(after_chunks=3))
    stream = client.responses.create(model="gpt-5", input="hi", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[-1] == "error"
    assert "response.completed" not in kinds


# --- OpenAIVendor(api="responses") against it -------------------------------------------------
@pytest.fixture
def dispatcher(fake_openai: FakeOpenAI) -> Dispatcher:
    config = Config(retry_policy=RetryPolicy(max_retries=0))
    return Dispatcher(config, vendors=[adapter_for(fake_openai, api="responses")])


async def test_vendor_send(dispatcher: Dispatcher, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="", tool_calls=[PARIS], finish="tool_calls"))
    request = Request(
        model="gpt-5",
        max_tokens=100,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"},
    )
    response = await dispatcher.send(request)
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].name == "get_weather"
    assert json.loads(response.tool_calls[0].arguments) == {"city": "Paris"}
    assert response.usage.total_tokens == 21
    sent = fake_openai.last_request
    assert sent.path == "/v1/responses"
    assert sent.json["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert sent.json["max_output_tokens"] == 100
    assert sent.json["store"] is False
    assert sent.json["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert sent.json["text"] == {"format": {"type": "json_object"}}
    await dispatcher.aclose()


async def test_vendor_stream_round_trip(dispatcher: Dispatcher, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Checking.", tool_calls=[PARIS], finish="tool_calls"))
    request = Request(
        model="gpt-5",
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )  # fmt: skip
    chunks = [chunk async for chunk in dispatcher.stream(request)]
    assert "".join(c.delta for c in chunks) == "Checking."
    pieces = [d for c in chunks for d in c.tool_call_deltas]
    assert pieces[0].name == "get_weather"
    assert json.loads("".join(d.arguments for d in pieces)) == {"city": "Paris"}
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert fake_openai.last_request.json["input"][1:] == [
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    await dispatcher.aclose()


async def test_vendor_errors(dispatcher: Dispatcher, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("rate_limit"), MidStreamError(after_chunks=3))
    request = Request(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(VendorUnavailable) as caught:
        await dispatcher.send(request)
    assert isinstance(caught.value.last_error, RateLimitError)
    with pytest.raises(StreamInterrupted):
        async for _ in dispatcher.stream(request):
            pass
    with pytest.raises(UnsupportedRequest, match="no stop sequences"):
        await dispatcher.send(Request(model="gpt-5", messages=request.messages, stop="END"))
    await dispatcher.aclose()


def test_api_is_chat_or_responses(fake_openai: FakeOpenAI) -> None:
    assert adapter_for(fake_openai).api == "chat"
    with pytest.raises(ConfigError, match="api must be chat or responses"):
        adapter_for(fake_openai, api="assistants")
