"""``/v1/responses`` in front of OpenAI: hosted tools reach an OpenAI vendor on the Responses
API and are refused for one on Chat Completions; and the whole API on ``llmdispatcher serve``
(a real process, its key store database holding the conversations)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher
from llmdispatcher.clock import FakeClock
from llmdispatcher.gateway.app import create_app
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.openai_fake import FakeOpenAI, adapter_for
from tests.fakes.script import Reply, ToolCallSpec
from tests.gateway import KEY

SEARCH: Any = {"type": "web_search"}


async def sdk_for(api: str, fake: FakeOpenAI) -> tuple[TestClient[Any, Any], openai.AsyncOpenAI]:
    dispatcher = Dispatcher(vendors=[adapter_for(fake, api=api)], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher)))
    await client.start_server()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="-", max_retries=0)
    return client, sdk


@pytest.fixture
async def on_responses(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client, sdk = await sdk_for("responses", fake_openai)
    yield sdk
    await sdk.close()
    await client.close()


async def test_hosted_tools_reach_openais_responses_api(
    on_responses: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="It rained.", reasoning_tokens=5, cached_tokens=2))
    response = await on_responses.responses.create(
        model="gpt-5",
        input="Weather news?",
        tools=[SEARCH, {"type": "function", "name": "f", "parameters": {"type": "object"}}],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert response.output_text == "It rained."
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 5
    assert response.usage.input_tokens_details.cached_tokens == 2
    sent = fake_openai.last_request.json
    assert sent["tools"][1] == SEARCH
    assert sent["tools"][0]["name"] == "f"
    assert sent["parallel_tool_calls"] is False
    assert sent["tool_choice"] == "required"


async def test_tool_choice_with_hosted_tools_only(
    on_responses: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="ok"), Reply(text="ok"))
    await on_responses.responses.create(
        model="gpt-5", input="news?", tools=[SEARCH], tool_choice="required"
    )
    assert fake_openai.last_request.json["tool_choice"] == "required"
    await on_responses.responses.create(
        model="gpt-5", input="news?", tools=[SEARCH], tool_choice={"type": "web_search"}
    )
    assert fake_openai.last_request.json["tool_choice"] == {"type": "web_search"}


async def test_hosted_tools_refused_on_chat_completions(fake_openai: FakeOpenAI) -> None:
    client, sdk = await sdk_for("chat", fake_openai)
    try:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model="gpt-5", input="hi", tools=[SEARCH])
    finally:
        await sdk.close()
        await client.close()
    assert caught.value.param == "tools[0]"  # type: ignore[attr-defined]
    assert not fake_openai.requests


# --- llmdispatcher serve ----------------------------------------------------------------------
@pytest.fixture
def served(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as client:
        yield client


def test_served_chain_over_openai_and_anthropic(
    served: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """One conversation, two vendors: the second turn goes to Anthropic with the first turn's
    tool call and its answer, as stored by the gateway process."""
    fake_openai.enqueue(
        Reply(text="", tool_calls=[ToolCallSpec("lookup", {"q": "x"})], finish="tool_calls")
    )
    fake_anthropic.enqueue(Reply(text="Found it."))
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    first = served.responses.create(model="gpt-4o", input="Find x", tools=[tool])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call"
    with served.responses.stream(
        model="claude-haiku-4-5",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "x=1"}],
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        second = stream.get_final_response()
    assert second.output_text == "Found it."
    turns = fake_anthropic.last_request.json["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"][0]["tool_use_id"] == call.call_id
    assert served.responses.retrieve(second.id).previous_response_id == first.id


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_strict_function_tools_reach_openai(api: str, fake_openai: FakeOpenAI) -> None:
    """``strict`` on a Responses function tool is kept, on either OpenAI upstream API."""
    client, sdk = await sdk_for(api, fake_openai)
    fake_openai.enqueue(Reply(text="ok"), Reply(text="ok"))
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
              "additionalProperties": False}  # fmt: skip
    try:
        for strict in (True, False):
            await sdk.responses.create(
                model="gpt-5",
                input="search",
                tools=[{"type": "function", "name": "f", "parameters": schema, "strict": strict}],
            )
            sent = fake_openai.last_request.json["tools"][0]
            assert (sent["function"] if api == "chat" else sent)["strict"] is strict
    finally:
        await sdk.close()
        await client.close()


async def test_custom_tools_reach_openais_responses_api(
    on_responses: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="ok"))
    custom = {"type": "custom", "name": "sql", "description": "a query",
              "format": {"type": "text"}}  # fmt: skip
    await on_responses.chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "count the users"}],
        tools=[{"type": "custom", "custom": {k: v for k, v in custom.items() if k != "type"}}],
    )
    assert fake_openai.last_request.json["tools"] == [custom]
