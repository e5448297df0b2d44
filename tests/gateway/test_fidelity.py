"""Drop-in fidelity: what the official SDKs send reaches the vendor (forwarded, translated, or
refused with a 400 naming the field), and what the vendor says comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, ToolCallSpec
from tests.gateway.fidelity import mixed_gateway

__all__ = ["mixed_gateway"]  # the fixture, used by name

MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
STRICT: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": SCHEMA, "strict": True},
}
CUSTOM: Any = {"type": "custom", "custom": {"name": "shell", "format": {"type": "text"}}}
OPENAI_ONLY: dict[str, Any] = {
    "store": True,
    "service_tier": "flex",
    "logit_bias": {"50256": -100},
    "prediction": {"type": "content", "content": "Hello"},
    "verbosity": "low",
    "prompt_cache_key": "user-7",
}


@pytest.fixture
async def client(mixed_gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{mixed_gateway}/v1", api_key="unused", max_retries=0
    ) as c:
        yield c


@pytest.fixture
async def claude(mixed_gateway: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=mixed_gateway, api_key="unused", max_retries=0
    ) as c:
        yield c


# --- OpenAI family: forwarded, and returned ----------------------------------------------------
async def test_openai_fields_reach_openai(
    client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    done = await client.chat.completions.create(
        model="gpt-4o",
        messages=MSGS,
        tools=[STRICT],
        parallel_tool_calls=False,
        logprobs=True,
        top_logprobs=2,
        **OPENAI_ONLY,
    )
    sent = fake_openai.last_request.json
    assert sent["tools"][0]["function"]["strict"] is True
    assert (sent["logprobs"], sent["top_logprobs"], sent["parallel_tool_calls"]) == (True, 2, False)
    assert {k: sent[k] for k in OPENAI_ONLY} == OPENAI_ONLY
    assert done.system_fingerprint is not None
    assert done.system_fingerprint.startswith("fp_")
    logprobs = done.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == "Hello from the fake"
    assert len(logprobs.content[0].top_logprobs) == 2


async def test_n_is_forwarded_to_openai(
    client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    done = await client.chat.completions.create(model="gpt-4o", messages=MSGS, n=3)
    assert fake_openai.last_request.json["n"] == 3
    assert len(fake_openai.requests) == 1
    assert [c.message.content for c in done.choices] == [
        "Hello from the fake",
        "Hello from the fake #1",
        "Hello from the fake #2",
    ]
    assert [c.index for c in done.choices] == [0, 1, 2]


async def test_streamed_logprobs_and_fingerprint(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, logprobs=True
    )
    chunks = [chunk async for chunk in stream]
    tokens = [
        t.token
        for chunk in chunks
        for choice in chunk.choices
        if choice.logprobs is not None
        for t in choice.logprobs.content or ()
    ]
    assert "".join(tokens) == "Hello from the fake"
    assert chunks[-1].system_fingerprint is not None


async def test_custom_tools_round_trip_on_openai(
    client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(
        Reply(text="", tool_calls=[ToolCallSpec("shell", custom_input="ls")], finish="tool_calls")
    )
    done = await client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=[CUSTOM])
    assert fake_openai.last_request.json["tools"] == [CUSTOM]
    call = (done.choices[0].message.tool_calls or [])[0]
    assert call.type == "custom"
    assert (call.custom.name, call.custom.input) == ("shell", "ls")
    history = [*MSGS, done.choices[0].message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": "a.txt"})
    again = await client.chat.completions.create(model="gpt-4o", messages=history, tools=[CUSTOM])
    assert again.choices[0].message.content == "Hello from the fake"
    assert fake_openai.last_request.json["messages"][1]["tool_calls"][0]["custom"]["input"] == "ls"


async def test_upstream_errors_keep_their_param(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:  # OpenAI takes at most 4 stop strings
        await client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stop=["a", "b", "c", "d", "e"]
        )
    assert info.value.param == "stop"


@pytest.mark.parametrize("model", ["llama3.2", "gemini-2.5-flash"])
async def test_logprobs_translated(client: openai.AsyncOpenAI, model: str) -> None:
    done = await client.chat.completions.create(
        model=model, messages=MSGS, logprobs=True, top_logprobs=1
    )
    logprobs = done.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == done.choices[0].message.content
    assert len(logprobs.content[0].top_logprobs) == 1


async def test_get_model(client: openai.AsyncOpenAI) -> None:
    model = await client.models.retrieve("gpt-4o")
    assert (model.id, model.owned_by) == ("gpt-4o", "openai")
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


# --- other vendors: translated, fanned out, or refused naming the field -------------------------
async def test_n_fans_out_where_the_api_has_no_n(
    client: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply(text="one", completion_tokens=3), Reply(text="two"))
    done = await client.chat.completions.create(model="claude-sonnet-4-5", messages=MSGS, n=2)
    assert len(fake_anthropic.requests) == 2
    assert sorted(c.message.content or "" for c in done.choices) == ["one", "two"]
    assert [c.index for c in done.choices] == [0, 1]
    assert done.usage is not None
    assert done.usage.completion_tokens == 3 + 12


async def test_n_cannot_be_streamed(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=MSGS, n=2, stream=True)
    assert info.value.param == "n"


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("claude-sonnet-4-5", {"logprobs": True}, "logprobs"),
        ("claude-sonnet-4-5", {"seed": 3}, "seed"),
        ("claude-sonnet-4-5", {"store": True}, "store"),
        ("claude-sonnet-4-5", {"service_tier": "flex"}, "service_tier"),
        ("claude-sonnet-4-5", {"tools": [CUSTOM]}, "tools[0]"),
        ("gemini-2.5-flash", {"logit_bias": {"1": 1}}, "logit_bias"),
        (
            "gemini-2.5-flash",
            {"tools": [STRICT], "parallel_tool_calls": False},
            "parallel_tool_calls",
        ),
        ("llama3.2", {"tools": [STRICT]}, "tools[0].strict"),
        ("llama3.2", {"prompt_cache_key": "k"}, "prompt_cache_key"),
    ],
)
async def test_what_a_vendor_cannot_carry_is_refused_by_name(
    client: openai.AsyncOpenAI, model: str, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=model, messages=MSGS, **fields)
    assert info.value.param == param
    assert param.split(".", maxsplit=1)[0].split("[", maxsplit=1)[0] in str(info.value.message)


async def test_strict_and_serial_tools_translate_for_anthropic(
    client: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    await client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=MSGS,
        tools=[STRICT],
        parallel_tool_calls=False,
        service_tier="default",
    )
    sent = fake_anthropic.last_request.json
    assert sent["tools"][0]["strict"] is True
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert sent["service_tier"] == "standard_only"


async def test_strict_tools_and_seed_translate_for_gemini(
    client: openai.AsyncOpenAI, fake_gemini: FakeGemini
) -> None:
    await client.chat.completions.create(
        model="gemini-2.5-flash", messages=MSGS, tools=[STRICT], seed=7, presence_penalty=0.5
    )
    sent = fake_gemini.last_request.json
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}
    assert (sent["generationConfig"]["seed"], sent["generationConfig"]["presencePenalty"]) == (
        7,
        0.5,
    )


# --- the Anthropic side -------------------------------------------------------------------------
async def test_count_tokens_by_anthropic_or_estimated(
    mixed_gateway: str, claude: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    raw = await claude.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-5", messages=MSGS, system="Be brief."
    )
    assert raw.headers["x-llmdispatcher-token-count"] == "vendor"
    assert fake_anthropic.last_request.path == "/v1/messages/count_tokens"
    assert (await raw.parse()).input_tokens > 0
    raw = await claude.messages.with_raw_response.count_tokens(model="gpt-4o", messages=MSGS)
    assert raw.headers["x-llmdispatcher-token-count"] == "estimate"
    assert 0 < (await raw.parse()).input_tokens < 50
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await claude.messages.count_tokens(
            model="gpt-4o", messages=MSGS, extra_body={"max_tokens": 5}
        )


async def test_unknown_messages_paths_answer_in_anthropics_shape(
    claude: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await claude.messages.batches.retrieve("msgbatch_1")
    body: Any = info.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"


async def test_disable_parallel_tool_use_is_parallel_tool_calls_false(
    claude: anthropic.AsyncAnthropic, fake_openai: FakeOpenAI
) -> None:
    await claude.messages.create(
        model="gpt-4o",
        max_tokens=50,
        messages=MSGS,
        tools=[{"name": "get_weather", "input_schema": SCHEMA, "strict": True}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    sent = fake_openai.last_request.json
    assert sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["strict"] is True


async def test_a_matched_stop_sequence_is_named(
    claude: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply(text="one two", stop_sequence="END"), Reply(stop_sequence="END"))
    done = await claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stop_sequences=["END"]
    )
    assert (done.stop_reason, done.stop_sequence) == ("stop_sequence", "END")
    async with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stop_sequences=["END"]
    ) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
