"""The OpenAI Agents SDK (``openai-agents``) on the gateway's Responses API, a fake Anthropic
behind: the agent calls its function tool, gets the result back and answers, two turns the
gateway translates to Anthropic's Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher
from llmdispatcher.clock import FakeClock
from llmdispatcher.gateway.app import create_app
from tests.fakes.anthropic_fake import FakeAnthropic, adapter_for
from tests.fakes.script import Reply, ToolCallSpec


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.fixture
async def base_url(fake_anthropic: FakeAnthropic) -> AsyncIterator[str]:
    dispatcher = Dispatcher(vendors=[adapter_for(fake_anthropic)], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher)))
    await client.start_server()
    yield str(client.make_url("/v1"))
    await client.close()
    await dispatcher.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_agent_runs_a_tool_round_trip(
    base_url: str, fake_anthropic: FakeAnthropic, streamed: bool
) -> None:
    set_tracing_disabled(True)  # the SDK would upload traces to OpenAI otherwise
    fake_anthropic.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            finish="tool_calls",
        ),
        Reply(text="It is sunny in Paris."),
    )
    async with openai.AsyncOpenAI(base_url=base_url, api_key="-", max_retries=0) as client:
        model = OpenAIResponsesModel(model="claude-haiku-4-5", openai_client=client)
        agent = Agent(name="weather", instructions="Use tools.", tools=[get_weather], model=model)
        if streamed:
            run = Runner.run_streamed(agent, "Weather in Paris?")
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            output = (await Runner.run(agent, "Weather in Paris?")).final_output
    assert output == "It is sunny in Paris."
    turns = fake_anthropic.last_request.json["messages"]
    assert turns[-1]["content"][0]["type"] == "tool_result"
    assert turns[-1]["content"][0]["content"] == [{"type": "text", "text": "sunny in Paris"}]
    assert fake_anthropic.last_request.json["system"] == "Use tools."
