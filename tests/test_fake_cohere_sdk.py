"""The fake Cohere server is faithful: the official ``cohere`` SDK's ``ClientV2`` talks to it
like to Cohere (chat, chat_stream, tools, images, JSON mode, errors, the model list)."""

from __future__ import annotations

import json
from typing import Any

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError

from tests.fakes.cohere_fake import FakeCohere
from tests.fakes.fixtures_more_vendors import FAKE_COHERE_KEY as KEY
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MODEL = "command-a-03-2025"
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


@pytest.fixture
def client(fake_cohere: FakeCohere) -> cohere.ClientV2:
    # max_retries=0: a scripted failure must surface, not be retried away
    return cohere.ClientV2(api_key=KEY, base_url=fake_cohere.url, max_retries=0)  # type: ignore[call-arg]


def raw(fake: FakeCohere, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}"}
    return httpx.post(fake.url + "/v2/chat", json=body, headers=headers)


def test_chat_text_and_usage(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    fake_cohere.enqueue(
        Reply(text="Bonjour", prompt_tokens=5, completion_tokens=7, cached_tokens=2)
    )
    answer = client.chat(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, *MSGS],
        temperature=0.3,
        p=0.9,
        k=40,
        seed=1,
        max_tokens=100,
        stop_sequences=["END"],
    )
    assert answer.finish_reason == "COMPLETE"
    assert answer.message.content is not None
    assert answer.message.content[0].text == "Bonjour"  # type: ignore[union-attr]
    assert answer.usage is not None
    assert answer.usage.billed_units is not None
    assert answer.usage.tokens is not None
    assert (answer.usage.billed_units.input_tokens, answer.usage.billed_units.output_tokens) == (
        5,
        7,
    )
    assert answer.usage.tokens.input_tokens is not None
    assert answer.usage.tokens.input_tokens > 5  # the prompt template is counted, not billed
    assert answer.usage.cached_tokens == 2
    sent = fake_cohere.last_request
    assert (sent.method, sent.path) == ("POST", "/v2/chat")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["stream"] is False
    assert sent.json["p"] == 0.9


def test_chat_stream_events(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    text = "The quick brown fox jumps"
    fake_cohere.enqueue(Reply(text=text, chunk_size=5, prompt_tokens=3, completion_tokens=6))
    events = list(client.chat_stream(model=MODEL, messages=MSGS))
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start"
    assert kinds[1] == "content-start"
    assert kinds[-2:] == ["content-end", "message-end"]
    assert kinds.count("content-delta") == 5
    pieces = [e.delta.message.content.text for e in events if e.type == "content-delta"]  # type: ignore[union-attr]
    assert "".join(pieces) == text
    end = events[-1]
    assert end.delta.finish_reason == "COMPLETE"  # type: ignore[union-attr]
    assert end.delta.usage.billed_units.output_tokens == 6  # type: ignore[union-attr]
    assert fake_cohere.last_request.json["stream"] is True


def test_tool_calls_round_trip(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    fake_cohere.enqueue(
        Reply(
            text="",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            finish="tool_calls",
        ),
        Reply(text="18C in Paris."),
    )
    first = client.chat(model=MODEL, messages=MSGS, tools=TOOLS, tool_choice="REQUIRED")
    assert first.finish_reason == "TOOL_CALL"
    assert first.message.tool_plan
    (call,) = first.message.tool_calls or []
    assert call.id is not None
    assert call.id.startswith("get_weather_")
    assert call.function is not None
    assert json.loads(call.function.arguments or "") == {"city": "Paris"}
    follow = [
        *MSGS,
        {"role": "assistant", "tool_plan": first.message.tool_plan, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call.id, "content": [{"type": "text", "text": "18C"}]},
    ]
    second = client.chat(model=MODEL, messages=follow, tools=TOOLS)
    assert second.message.content[0].text == "18C in Paris."  # type: ignore[index, union-attr]
    sent = fake_cohere.last_request.json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def test_streamed_tool_call_fragments(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    spec = ToolCallSpec("get_weather", {"city": "Paris", "unit": "celsius"})
    fake_cohere.enqueue(Reply(text="", tool_calls=[spec], finish="tool_calls", chunk_size=6))
    events = list(client.chat_stream(model=MODEL, messages=MSGS, tools=TOOLS))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["message-start", "tool-plan-delta", "tool-call-start"]
    assert kinds[-2:] == ["tool-call-end", "message-end"]
    start = events[2].delta.message.tool_calls  # type: ignore[union-attr]
    assert start.function.name == "get_weather"  # type: ignore[union-attr]
    fragments = [
        e.delta.message.tool_calls.function.arguments  # type: ignore[union-attr]
        for e in events
        if e.type == "tool-call-delta"
    ]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == spec.arguments
    assert events[-1].delta.finish_reason == "TOOL_CALL"  # type: ignore[union-attr]


def test_images_and_json_mode(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}
    assert client.chat(model="command-a-vision-07-2025", messages=[message]).message.content
    assert fake_cohere.last_request.json["messages"][0]["content"][1] == image
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_object", "json_schema": schema}
    client.chat(model=MODEL, messages=MSGS, response_format=fmt)  # type: ignore[arg-type]
    assert fake_cohere.last_request.json["response_format"] == fmt


def test_model_list(fake_cohere: FakeCohere, client: cohere.ClientV2) -> None:
    listed = client.models.list(endpoint="chat")
    assert [m.name for m in listed.models] == fake_cohere.models
    assert listed.models[0].context_length == 256000


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("rate_limit", cohere.TooManyRequestsError, 429),
        ("server", cohere.InternalServerError, 500),
        ("overloaded", cohere.ServiceUnavailableError, 503),
        ("auth", cohere.UnauthorizedError, 401),
        ("bad_request", cohere.BadRequestError, 400),
        ("not_found", cohere.NotFoundError, 404),
        ("timeout", cohere.GatewayTimeoutError, 504),
    ],
)
def test_errors_raise_the_sdk_class(
    fake_cohere: FakeCohere, client: cohere.ClientV2, kind: str, error: type[ApiError], status: int
) -> None:
    fake_cohere.enqueue(Fail(kind, retry_after="2"))
    with pytest.raises(error) as caught:
        client.chat(model=MODEL, messages=MSGS)
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"id", "message"}
    assert caught.value.headers is not None
    assert caught.value.headers["retry-after"] == "2"


def test_mid_stream_error_ends_with_error_finish(
    fake_cohere: FakeCohere, client: cohere.ClientV2
) -> None:
    fake_cohere.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    events = list(client.chat_stream(model=MODEL, messages=MSGS))
    assert events[-1].type == "message-end"
    assert events[-1].delta.finish_reason == "ERROR"  # type: ignore[union-attr]
    assert events[-1].delta.error  # type: ignore[union-attr]


def test_broken_stream_is_a_transport_error(
    fake_cohere: FakeCohere, client: cohere.ClientV2
) -> None:
    fake_cohere.enqueue(BreakStream(text="abcdefgh", after_chunks=1))
    with pytest.raises(httpx.RemoteProtocolError):
        list(client.chat_stream(model=MODEL, messages=MSGS))


def test_wrong_key_and_unknown_model(fake_cohere: FakeCohere) -> None:
    with pytest.raises(cohere.UnauthorizedError):
        cohere.ClientV2(api_key="wrong", base_url=fake_cohere.url).chat(model=MODEL, messages=MSGS)  # type: ignore[call-arg]
    client = cohere.ClientV2(api_key=KEY, base_url=fake_cohere.url)  # type: ignore[call-arg]
    with pytest.raises(cohere.NotFoundError):
        client.chat(model="command-nope", messages=MSGS)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": MODEL, "messages": MSGS, "top_p": 0.5}, "top_p is not a valid field"),
        ({"model": MODEL, "messages": MSGS, "p": 1.0}, "p must be between"),
        ({"model": MODEL, "messages": [{"role": "bot", "content": "x"}]}, "role must be one of"),
        (
            {
                "model": MODEL,
                "messages": [*MSGS, {"role": "tool", "tool_call_id": "x", "content": "1"}],
            },
            "does not match a tool call",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "a",
                                "type": "function",
                                "function": {"name": "f", "arguments": {}},
                            }
                        ],
                    }
                ],
            },
            "arguments must be a JSON string",
        ),
        ({"model": MODEL, "messages": MSGS, "tool_choice": "auto", "tools": TOOLS}, "tool_choice"),
        (
            {"model": MODEL, "messages": MSGS, "response_format": {"type": "json_schema"}},
            "response_format",
        ),
    ],
)
def test_strict_validation(fake_cohere: FakeCohere, body: Any, needle: str) -> None:
    fake_cohere.enqueue(Reply(text="must not be used"))
    resp = raw(fake_cohere, body)
    assert resp.status_code == 400
    assert needle in resp.json()["message"]
    assert fake_cohere.pending == 1
