"""Frameworks built on the official SDKs, pointed at the gateway with fake vendors behind: the
OpenAI Agents SDK (chat completions), LangChain's ``ChatOpenAI`` and pydantic-ai. Each test
asserts on what the framework got back, and on what reached the vendor."""

from __future__ import annotations

from typing import Any

import agents
import langchain_openai
import openai
import pydantic_ai
import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, ToolCallSpec
from tests.gateway.fidelity import mixed_gateway

__all__ = ["mixed_gateway"]  # the fixture, used by name

WEATHER_CALL = Reply(
    text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})], finish="tool_calls"
)


class Weather(BaseModel):
    city: str
    sunny: bool


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    """The Agents SDK would export traces to OpenAI: never from a test."""
    agents.set_tracing_disabled(True)


def _fake_for(
    model: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> FakeOpenAI | FakeAnthropic | FakeGemini:
    if model.startswith("claude-"):
        return fake_anthropic
    return fake_gemini if model.startswith("gemini-") else fake_openai


# --- OpenAI Agents SDK --------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"])
async def test_agents_sdk_runs_a_tool_loop(
    mixed_gateway: str,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
) -> None:
    fake = _fake_for(model, fake_openai, fake_anthropic, fake_gemini)
    fake.enqueue(WEATHER_CALL, Reply(text="It is sunny in Paris."))
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"Sunny in {city}"

    client = openai.AsyncOpenAI(base_url=f"{mixed_gateway}/v1", api_key="unused", max_retries=0)
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the weather.",
        model=agents.OpenAIChatCompletionsModel(model=model, openai_client=client),
        tools=[get_weather],
    )
    result = await agents.Runner.run(agent, "Weather in Paris?")
    await client.close()
    assert result.final_output == "It is sunny in Paris."
    assert seen == ["Paris"]
    first, second = fake.requests[-2].json, fake.requests[-1].json
    assert "Sunny in Paris" in str(second)  # the tool's output went back to the model
    if model == "gpt-4o":  # strict, as the Agents SDK sends it, reached the vendor
        assert first["tools"][0]["function"]["strict"] is True
    elif model.startswith("claude-"):
        assert first["tools"][0]["strict"] is True
    else:
        assert first["toolConfig"]["functionCallingConfig"]["mode"] == "VALIDATED"


async def test_agents_sdk_streams(mixed_gateway: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Bonjour tout le monde"))
    client = openai.AsyncOpenAI(base_url=f"{mixed_gateway}/v1", api_key="unused", max_retries=0)
    agent = agents.Agent(
        name="greeter",
        model=agents.OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
    )
    run = agents.Runner.run_streamed(agent, "Say hello in French")
    deltas = [
        event.data.delta
        async for event in run.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    await client.close()
    assert "".join(deltas) == "Bonjour tout le monde"
    assert run.final_output == "Bonjour tout le monde"


# --- LangChain ----------------------------------------------------------------------------------
def _chat(gateway: str, model: str = "gpt-4o", **kwargs: Any) -> Any:
    return langchain_openai.ChatOpenAI(
        model=model, base_url=f"{gateway}/v1", api_key="unused", max_retries=0, **kwargs
    )


async def test_langchain_invoke_stream_and_logprobs(
    mixed_gateway: str, fake_openai: FakeOpenAI
) -> None:
    answer = await _chat(mixed_gateway, logprobs=True).ainvoke("Say hi")
    assert answer.content == "Hello from the fake"
    tokens = answer.response_metadata["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == "Hello from the fake"
    assert answer.response_metadata["system_fingerprint"].startswith("fp_")
    pieces = [chunk.content async for chunk in _chat(mixed_gateway).astream("Say hi")]
    assert "".join(pieces) == "Hello from the fake"


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5"])
async def test_langchain_strict_structured_output(
    mixed_gateway: str,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    model: str,
) -> None:
    fake = _fake_for(model, fake_openai, fake_anthropic, fake_gemini)
    fake.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("Weather", {"city": "Paris", "sunny": True})],
            finish="tool_calls",
        )
    )
    structured = _chat(mixed_gateway, model).with_structured_output(
        Weather, method="function_calling", strict=True
    )
    assert await structured.ainvoke("Weather in Paris?") == Weather(city="Paris", sunny=True)
    tools = fake.last_request.json["tools"]
    strict = tools[0]["function"]["strict"] if model == "gpt-4o" else tools[0]["strict"]
    assert strict is True


async def test_langchain_n_answers_from_a_vendor_without_n(
    mixed_gateway: str, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply(text="one"), Reply(text="two"))
    chat = _chat(mixed_gateway, "claude-sonnet-4-5", n=2)
    result = await chat.agenerate([[HumanMessage("Say hi")]])
    assert sorted(g.text for g in result.generations[0]) == ["one", "two"]


# --- pydantic-ai --------------------------------------------------------------------------------
async def test_pydantic_ai_structured_output(mixed_gateway: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("final_result", {"city": "Paris", "sunny": True})],
            finish="tool_calls",
        )
    )
    provider = OpenAIProvider(base_url=f"{mixed_gateway}/v1", api_key="unused")
    agent = pydantic_ai.Agent(OpenAIChatModel("gpt-4o", provider=provider), output_type=Weather)
    result = await agent.run("Weather in Paris?")
    assert result.output == Weather(city="Paris", sunny=True)
    assert fake_openai.last_request.json["tools"][0]["function"]["name"] == "final_result"
