"""The fake llama-server is faithful: ``openai.OpenAI`` talks to it like to llama.cpp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.fixtures_openai_family import FAKE_LLAMACPP_KEY as KEY
from tests.fakes.llamacpp_fake import BUILD, DEFAULT_ALIAS, NO_MMPROJ, FakeLlamaServer
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
]


@pytest.fixture
def client(fake_llamacpp: FakeLlamaServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_llamacpp.url + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


def test_non_stream_echoes_the_model_and_adds_timings(
    fake_llamacpp: FakeLlamaServer, client: openai.OpenAI
) -> None:
    fake_llamacpp.enqueue(Reply(text="Hi", prompt_tokens=10, completion_tokens=4, cached_tokens=6))
    done = client.chat.completions.create(
        model="any-name", messages=MSGS, extra_body={"cache_prompt": True, "mirostat": 2}
    )
    assert (done.model, done.system_fingerprint) == ("any-name", BUILD)
    assert done.choices[0].message.content == "Hi"
    assert done.service_tier is None
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (10, 4)
    assert done.usage.prompt_tokens_details is None
    timings = (done.model_extra or {})["timings"]
    assert (timings["cache_n"], timings["prompt_n"], timings["predicted_n"]) == (6, 4, 4)
    assert fake_llamacpp.last_request.json["mirostat"] == 2  # unknown fields are accepted


def test_model_is_optional(fake_llamacpp: FakeLlamaServer) -> None:
    resp = httpx.post(
        fake_llamacpp.url + "/chat/completions",
        json={"messages": MSGS},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert resp.status_code == 200
    assert resp.json()["model"] == DEFAULT_ALIAS


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_shape(client: openai.OpenAI, include_usage: bool) -> None:
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MSGS, stream=True, stream_options=options
        )
    )
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", None)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake"
    last = chunks[-1]
    assert "timings" in (last.model_extra or {})
    assert all("timings" not in (c.model_extra or {}) for c in chunks[:-1])
    assert (last.usage is not None) is include_usage
    assert (last.choices == []) is include_usage


def test_tool_calls_stream_and_non_stream(
    fake_llamacpp: FakeLlamaServer, client: openai.OpenAI
) -> None:
    specs = [ToolCallSpec("f", {"x": 1}), ToolCallSpec("f", {"y": [2]})]
    fake_llamacpp.enqueue(
        Reply(text="", tool_calls=specs, finish="tool_calls"),
        Reply(text="", tool_calls=specs, finish="tool_calls", chunk_size=2),
    )
    done = client.chat.completions.create(model="m", messages=MSGS, tools=TOOLS)
    assert done.choices[0].finish_reason == "tool_calls"
    assert done.choices[0].message.content is None
    calls = done.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"x": 1}, {"y": [2]}]
    with client.chat.completions.stream(model="m", messages=MSGS, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in streamed] == [{"x": 1}, {"y": [2]}]


@pytest.mark.parametrize(
    ("kind", "exc", "status", "type_"),
    [
        ("context_length", openai.BadRequestError, 400, "exceed_context_size_error"),
        ("overloaded", openai.InternalServerError, 503, "unavailable_error"),
        ("server", openai.InternalServerError, 500, "server_error"),
        ("auth", openai.AuthenticationError, 401, "authentication_error"),
        ("not_found", openai.NotFoundError, 404, "not_found_error"),
        ("bad_request", openai.BadRequestError, 400, "invalid_request_error"),
    ],
)
def test_errors_have_numeric_codes(
    fake_llamacpp: FakeLlamaServer,
    client: openai.OpenAI,
    kind: str,
    exc: type[openai.APIStatusError],
    status: int,
    type_: str,
) -> None:
    fake_llamacpp.enqueue(Fail(kind))
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="m", messages=MSGS)
    assert type(info.value) is exc
    assert (info.value.status_code, info.value.type) == (status, type_)
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == status  # numeric on the wire; the SDK hands it over as
    assert info.value.code == str(status)  # a string


def test_context_error_carries_the_sizes(
    fake_llamacpp: FakeLlamaServer, client: openai.OpenAI
) -> None:
    fake_llamacpp.enqueue(Fail("context_length"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=MSGS)
    body = info.value.body
    assert isinstance(body, dict)
    assert (body["n_prompt_tokens"], body["n_ctx"]) == (5000, 4096)
    assert "exceeds the available context size" in info.value.message


def test_api_key_rules(fake_llamacpp: FakeLlamaServer) -> None:
    url = fake_llamacpp.url
    chat = {"messages": MSGS}
    missing = httpx.post(url + "/v1/chat/completions", json=chat)
    assert missing.status_code == 401
    assert missing.json() == {
        "error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}
    }
    assert httpx.post(
        url + "/v1/chat/completions", json=chat, headers={"X-Api-Key": KEY}
    ).is_success
    assert httpx.get(url + "/health").json() == {"status": "ok"}  # public
    assert httpx.get(url + "/v1/models").is_success  # public
    assert httpx.post(url + "/v1/nope", json={}).status_code == 401  # auth before routing
    fake_llamacpp.api_key = None  # a server started without --api-key
    assert httpx.post(url + "/v1/chat/completions", json=chat).is_success


def test_loading_server_answers_503_everywhere(fake_llamacpp: FakeLlamaServer) -> None:
    fake_llamacpp.loading = True
    for resp in (
        httpx.get(fake_llamacpp.url + "/health"),
        httpx.get(fake_llamacpp.url + "/v1/models"),
        httpx.post(fake_llamacpp.url + "/v1/chat/completions", json={"messages": MSGS}),
    ):
        assert resp.status_code == 503
        assert resp.json()["error"] == {
            "code": 503,
            "message": "Loading model",
            "type": "unavailable_error",
        }


@pytest.mark.parametrize(
    ("setup", "kwargs", "needle"),
    [
        ({}, {"n": 2}, "Only one completion choice is allowed"),
        ({"jinja": False}, {"tools": TOOLS}, "tools param requires --jinja flag"),
        (
            {"multimodal": False},
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
                        ],
                    }
                ]
            },
            NO_MMPROJ,
        ),
        ({}, {"response_format": {"type": "yaml"}}, "response_format type must be one of"),
    ],
)
def test_what_llama_server_refuses(
    fake_llamacpp: FakeLlamaServer,
    client: openai.OpenAI,
    setup: dict[str, bool],
    kwargs: dict[str, Any],
    needle: str,
) -> None:
    for name, value in setup.items():
        setattr(fake_llamacpp, name, value)
    fake_llamacpp.enqueue(Reply(text="never"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**{"model": "m", "messages": MSGS, **kwargs})
    assert needle in info.value.message
    assert fake_llamacpp.pending == 1
    for name in setup:
        setattr(fake_llamacpp, name, True)


def test_unknown_route_and_models(fake_llamacpp: FakeLlamaServer, client: openai.OpenAI) -> None:
    resp = httpx.get(fake_llamacpp.url + "/v1/nope", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "File Not Found"
    models = client.models.list()
    assert [m.id for m in models] == [DEFAULT_ALIAS]
    assert models.data[0].owned_by == "llamacpp"
    raw = httpx.get(fake_llamacpp.url + "/v1/models").json()
    assert raw["models"][0]["name"] == DEFAULT_ALIAS  # the Ollama-style listing too


def test_mid_stream_error_and_broken_stream(
    fake_llamacpp: FakeLlamaServer, client: openai.OpenAI
) -> None:
    fake_llamacpp.enqueue(
        MidStreamError(text="abcdefgh", after_chunks=1, kind="server"),
        BreakStream(text="abcdefgh", after_chunks=1),
    )
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="m", messages=MSGS, stream=True):
            got.extend(ch.delta.content or "" for ch in c.choices)
    assert not isinstance(info.value, openai.APIStatusError)
    assert "".join(got) == "abcd"
    with pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model="m", messages=MSGS, stream=True))
