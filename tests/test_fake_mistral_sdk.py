"""The fake Mistral server is faithful: the official ``mistralai`` SDK talks to it like to
Mistral. And what the SDK showed about the preset: the tool-call id rule, ``random_seed``,
``safe_prompt``, no ``stream_options``/``user``, usage on the last stream chunk, error bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import HTTPValidationError, SDKError

from llmdispatcher import Request
from llmdispatcher.errors import AuthenticationError, InvalidRequestError
from llmdispatcher.vendors.mistral import mistral_tool_id
from tests.fakes.fixtures_more_vendors import FAKE_MISTRAL_KEY as KEY
from tests.fakes.mistral_fake import FakeMistral, adapter_for
from tests.fakes.script import Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "mistral-small-latest"
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


def sdk(fake: FakeMistral, key: str = KEY) -> Mistral:
    return Mistral(api_key=key, server_url=fake.url)


def raw(fake: FakeMistral, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}"}
    return httpx.post(fake.url + "/v1/chat/completions", json=body, headers=headers)


def test_complete_with_mistral_knobs(fake_mistral: FakeMistral) -> None:
    fake_mistral.enqueue(Reply(text="Bonjour", prompt_tokens=4, completion_tokens=6))
    answer = sdk(fake_mistral).chat.complete(
        model=MODEL, messages=MSGS, random_seed=7, safe_prompt=True, temperature=0.2, max_tokens=50
    )
    assert answer.choices[0].message.content == "Bonjour"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 6)
    sent = fake_mistral.last_request.json
    assert (sent["random_seed"], sent["safe_prompt"]) == (7, True)
    assert fake_mistral.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_stream_has_usage_on_the_last_chunk_unasked(fake_mistral: FakeMistral) -> None:
    fake_mistral.enqueue(
        Reply(text="abcdefghij", chunk_size=3, prompt_tokens=2, completion_tokens=5)
    )
    events = list(sdk(fake_mistral).chat.stream(model=MODEL, messages=MSGS))
    chunks = [e.data for e in events]
    text = "".join(str(c.choices[0].delta.content or "") for c in chunks)
    assert text == "abcdefghij"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert "stream_options" not in fake_mistral.last_request.json


def test_tool_round_trip_with_9_character_ids(fake_mistral: FakeMistral) -> None:
    client = sdk(fake_mistral)
    fake_mistral.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            finish="tool_calls",
        ),
        Reply(text="18C"),
    )
    first = client.chat.complete(model=MODEL, messages=MSGS, tools=TOOLS, tool_choice="any")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = message.tool_calls or []
    assert len(call.id or "") == 9
    assert (call.id or "").isalnum()
    assert json.loads(str(call.function.arguments)) == {"city": "Paris"}
    follow = [
        *MSGS,
        message,
        {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "18C"},
    ]
    assert (
        client.chat.complete(model=MODEL, messages=follow, tools=TOOLS).choices[0].message.content
        == "18C"
    )
    sent = fake_mistral.last_request.json["messages"]
    assert sent[1]["prefix"] is False  # the SDK sends prefix on every assistant message
    assert sent[1]["tool_calls"][0]["index"] == 0


def test_an_openai_style_tool_call_id_is_refused(fake_mistral: FakeMistral) -> None:
    follow = [
        *MSGS,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "1"},
    ]
    with pytest.raises(SDKError) as caught:
        sdk(fake_mistral).chat.complete(model=MODEL, messages=follow)
    assert caught.value.status_code == 400
    assert "must be a-z, A-Z, 0-9, with a length of 9" in caught.value.body


def test_seed_and_stream_options_are_extra_inputs(fake_mistral: FakeMistral) -> None:
    for extra in ({"seed": 1}, {"stream_options": {"include_usage": True}}, {"user": "u1"}):
        resp = raw(fake_mistral, {"model": MODEL, "messages": MSGS, **extra})
        assert resp.status_code == 422
        (detail,) = resp.json()["detail"]
        assert (detail["type"], detail["loc"]) == ("extra_forbidden", ["body", next(iter(extra))])


def test_validation_error_is_the_sdks_typed_422(fake_mistral: FakeMistral) -> None:
    with pytest.raises(HTTPValidationError) as caught:
        sdk(fake_mistral).chat.complete(model=MODEL, messages=[])
    assert caught.value.data.detail is not None
    assert caught.value.data.detail[0].type == "too_short"


@pytest.mark.parametrize(
    ("kind", "status"), [("rate_limit", 429), ("server", 500), ("auth", 401), ("not_found", 400)]
)
def test_errors_are_sdk_errors_with_the_raw_body(
    fake_mistral: FakeMistral, kind: str, status: int
) -> None:
    fake_mistral.enqueue(Fail(kind))
    with pytest.raises(SDKError) as caught:
        sdk(fake_mistral).chat.complete(model=MODEL, messages=MSGS)
    assert caught.value.status_code == status
    assert "message" in json.loads(caught.value.body)


def test_mid_stream_error_is_an_error_finish_reason(fake_mistral: FakeMistral) -> None:
    fake_mistral.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    chunks = [e.data for e in sdk(fake_mistral).chat.stream(model=MODEL, messages=MSGS)]
    assert chunks[-1].choices[0].finish_reason == "error"


def test_models_list(fake_mistral: FakeMistral) -> None:
    listed = sdk(fake_mistral).models.list()
    assert [m.id for m in listed.data or []] == fake_mistral.models


# ----------------------------------------------------------------- what the adapter does about it
async def test_adapter_maps_foreign_tool_ids_seed_and_drops_user(fake_mistral: FakeMistral) -> None:
    vendor = adapter_for(fake_mistral)
    messages: list[Any] = [
        *MSGS,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_Xy12",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_Xy12", "content": "18C"},
    ]
    request = Request(
        model=MODEL,
        messages=messages,
        tools=TOOLS,
        user="alice",
        extra={"seed": 3, "safe_prompt": True},
    )
    try:
        answer = await vendor.send(request)
    finally:
        await vendor.aclose()
    assert answer.content == "Hello from the fake"
    sent = fake_mistral.last_request.json
    mapped = mistral_tool_id("call_Xy12")
    assert sent["messages"][1]["tool_calls"][0]["id"] == mapped
    assert sent["messages"][2]["tool_call_id"] == mapped
    assert (sent["random_seed"], sent["safe_prompt"]) == (3, True)
    assert "user" not in sent
    assert "seed" not in sent


def test_tool_ids_mistral_accepts_pass_unchanged() -> None:
    assert mistral_tool_id("D681PevKs") == "D681PevKs"
    assert mistral_tool_id("call_1") != mistral_tool_id("call_2")
    assert len(mistral_tool_id("get_weather_abc")) == 9


async def test_adapter_reads_mistral_error_bodies(fake_mistral: FakeMistral) -> None:
    vendor = adapter_for(fake_mistral)
    bad = Request(model=MODEL, messages=MSGS, extra={"bogus_knob": 1})
    fake_mistral.enqueue(Fail("auth"))
    try:
        with pytest.raises(AuthenticationError, match="Unauthorized"):
            await vendor.send(Request(model=MODEL, messages=MSGS))
        with pytest.raises(
            InvalidRequestError, match=r"body\.bogus_knob: Extra inputs are not permitted"
        ):
            await vendor.send(bad)
    finally:
        await vendor.aclose()


def test_a_prefill_needs_prefix_true(fake_mistral: FakeMistral) -> None:
    client = sdk(fake_mistral)
    prefill: list[Any] = [*MSGS, {"role": "assistant", "content": "Hel"}]
    with pytest.raises(SDKError) as caught:  # the SDK sends prefix: false by default
        client.chat.complete(model=MODEL, messages=prefill)
    assert "Assistant with prefix True" in caught.value.body
    prefill[-1]["prefix"] = True
    assert client.chat.complete(model=MODEL, messages=prefill).choices[0].message.content


async def test_adapter_marks_a_prefill(fake_mistral: FakeMistral) -> None:
    vendor = adapter_for(fake_mistral)
    prefill: list[Any] = [*MSGS, {"role": "assistant", "content": "Hel"}]
    try:
        await vendor.send(Request(model=MODEL, messages=prefill))
    finally:
        await vendor.aclose()
    assert fake_mistral.last_request.json["messages"][-1] == {
        "role": "assistant",
        "content": "Hel",
        "prefix": True,
    }


async def test_adapter_lists_models_and_checks_health(fake_mistral: FakeMistral) -> None:
    vendor = adapter_for(fake_mistral)
    try:
        assert await vendor.list_models() == sorted(fake_mistral.models)
        assert (await vendor.health()).ok
    finally:
        await vendor.aclose()
