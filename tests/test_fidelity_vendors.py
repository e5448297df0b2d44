"""What of a request each vendor carries, translates or refuses by name (library side, fakes
over HTTP); ``n`` answers asked n times where the API has no ``n``; named stop sequences."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llmdispatcher import Dispatcher, Request
from llmdispatcher.errors import UnsupportedRequest, VendorUnavailable
from llmdispatcher.types import Tool, ToolCall
from tests.fakes import anthropic_fake, llamacpp_fake, ollama_fake
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.llamacpp_fake import FakeLlamaServer
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.script import Fail, Reply

MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
CLAUDE = "claude-sonnet-4-5"


# --- the request's vocabulary ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"n": 0}, "request.n"),
        ({"n": 129}, "request.n"),
        ({"top_logprobs": 3}, "request.top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "request.top_logprobs"),
        ({"parallel_tool_calls": False}, "request.parallel_tool_calls"),
        ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "strict"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "request.tools[0].custom"),
    ],
)
def test_bad_options_name_the_field(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError, match=re.escape(where)):
        Request(model="m", messages=MSGS, **fields)


def test_strict_and_custom_tools_survive_the_round_trip() -> None:
    strict = {"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}
    custom = {"type": "custom", "custom": {"name": "sh", "format": {"type": "text"}}}
    request = Request(model="m", messages=MSGS, tools=[strict, custom])
    assert [t.to_openai() for t in request.tool_list] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        },
        custom,
    ]
    assert request.tool_list[1] == Tool("sh", kind="custom", format={"type": "text"})
    call = {"id": "c1", "type": "custom", "custom": {"name": "sh", "input": "ls"}}
    message = Request(
        model="m", messages=[{"role": "assistant", "content": None, "tool_calls": [call]}]
    ).message_list[0]
    assert message.tool_calls == (ToolCall("c1", "sh", "ls", kind="custom"),)


# --- n ------------------------------------------------------------------------------------------
async def test_n_asks_anthropic_n_times_and_sums_usage_and_cost(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue(
        Reply(text="solo", prompt_tokens=10, completion_tokens=5),
        Reply(text="one", prompt_tokens=10, completion_tokens=5),
        Reply(text="two", prompt_tokens=10, completion_tokens=5),
    )
    async with Dispatcher(vendors=[anthropic_fake.adapter_for(fake_anthropic)]) as dispatcher:
        single = await dispatcher.send(Request(model=CLAUDE, messages=MSGS))
        double = await dispatcher.send(Request(model=CLAUDE, messages=MSGS, n=2))
    assert len(fake_anthropic.requests) == 3
    assert all("n" not in r.json for r in fake_anthropic.requests)
    assert sorted(c.content for c in double.choices) == ["one", "two"]
    assert [c.index for c in double.choices] == [0, 1]
    assert (double.usage.prompt_tokens, double.usage.completion_tokens) == (20, 10)
    assert single.cost_usd is not None
    assert double.cost_usd is not None
    assert double.cost_usd == pytest.approx(2 * single.cost_usd)
    assert len(double.attempts) == 1  # one try of the dispatcher


async def test_one_failed_call_fails_the_whole_n(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Reply(text="one"), Fail("bad_request"))
    async with Dispatcher(vendors=[anthropic_fake.adapter_for(fake_anthropic)]) as dispatcher:
        with pytest.raises(Exception, match="invalid_request_error"):
            await dispatcher.send(Request(model=CLAUDE, messages=MSGS, n=2))


async def test_llama_server_is_asked_n_times(fake_llamacpp: FakeLlamaServer) -> None:
    """llama-server refuses ``n`` > 1 ("Only one completion choice is allowed")."""
    vendor = llamacpp_fake.adapter_for(fake_llamacpp)
    async with Dispatcher(vendors=[vendor]) as dispatcher:
        done = await dispatcher.send(Request(model=fake_llamacpp.alias, messages=MSGS, n=2))
    assert len(done.choices) == 2
    assert len(fake_llamacpp.requests) == 2


async def test_n_is_not_streamed(fake_anthropic: FakeAnthropic) -> None:
    async with Dispatcher(vendors=[anthropic_fake.adapter_for(fake_anthropic)]) as dispatcher:
        with pytest.raises((UnsupportedRequest, VendorUnavailable)) as info:
            async for _ in dispatcher.stream(Request(model=CLAUDE, messages=MSGS, n=2)):
                pass
    assert "request.n" in str(info.value)
    assert fake_anthropic.requests == []


# --- stop sequences, token counts --------------------------------------------------------------
async def test_anthropic_names_the_stop_sequence(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Reply(text="a", stop_sequence="END"), Reply(stop_sequence="END"))
    request = Request(model=CLAUDE, messages=MSGS, stop="END")
    async with Dispatcher(vendors=[anthropic_fake.adapter_for(fake_anthropic)]) as dispatcher:
        sent = await dispatcher.send(request)
        chunks = [chunk async for chunk in dispatcher.stream(request)]
    assert (sent.finish_reason, sent.stop_sequence) == ("stop", "END")
    assert (chunks[-1].finish_reason, chunks[-1].stop_sequence) == ("stop", "END")


async def test_anthropic_counts_tokens(fake_anthropic: FakeAnthropic) -> None:
    vendor = anthropic_fake.adapter_for(fake_anthropic)
    try:
        counted = await vendor.count_tokens(Request(model=CLAUDE, messages=MSGS, stop="X"))
    finally:
        await vendor.aclose()
    assert counted > 0
    assert set(fake_anthropic.last_request.json) == {"model", "messages"}


# --- Ollama: translated or refused -------------------------------------------------------------
async def test_ollama_translates_seed_and_logprobs_and_refuses_store(
    fake_ollama: FakeOllama,
) -> None:
    request = Request(
        model="llama3.2", messages=MSGS, extra={"seed": 7}, logprobs=True, top_logprobs=1
    )
    async with Dispatcher(vendors=[ollama_fake.adapter_for(fake_ollama)]) as dispatcher:
        done = await dispatcher.send(request)
        sent = fake_ollama.last_request.json
        chunks = [chunk async for chunk in dispatcher.stream(request)]
        with pytest.raises((UnsupportedRequest, VendorUnavailable)) as info:
            await dispatcher.send(Request(model="llama3.2", messages=MSGS, extra={"store": True}))
    assert (sent["options"]["seed"], sent["logprobs"], sent["top_logprobs"]) == (7, True, 1)
    tokens = done.logprobs["content"]
    assert "".join(t["token"] for t in tokens) == done.content
    assert tokens[0]["bytes"] == list(tokens[0]["token"].encode())
    assert len(tokens[0]["top_logprobs"]) == 1
    assert "".join(t["token"] for c in chunks for t in c.logprobs) == done.content
    assert "request.store" in str(info.value)
