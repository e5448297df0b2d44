"""The fake Vertex AI server, proven with the official clients: google-genai with
``vertexai=True`` for Gemini models and anthropic's ``AnthropicVertex`` for Claude models. What
they send (paths, bearer tokens, bodies with ``anthropic_version``) the fake accepts; what it
answers they parse. google-auth's own user credentials refresh against the fake's token
endpoint."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.fakes.script import Fail, MidStreamError, Reply, ToolCallSpec
from tests.fakes.vertex_fake import FakeVertex, credentials_for

GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4-5@20250929"


def gemini_client(fake: FakeVertex, credentials: Any = None) -> genai.Client:
    from google.oauth2.credentials import Credentials

    return genai.Client(
        vertexai=True,
        project=fake.project,
        location=fake.location,
        credentials=credentials or Credentials(token=fake.issue_token()),
        http_options=types.HttpOptions(base_url=fake.url),
    )


def claude_client(fake: FakeVertex, **kwargs: Any) -> anthropic.AnthropicVertex:
    kwargs.setdefault("access_token", fake.issue_token())
    return anthropic.AnthropicVertex(
        region=fake.location,
        project_id=fake.project,
        base_url=f"{fake.url}/v1",
        max_retries=0,
        **kwargs,
    )


def test_gemini_generate_content(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="Hello from Vertex"))
    client = gemini_client(fake_vertex)  # held: a collected Client closes its connections
    out = client.models.generate_content(model=GEMINI, contents="hi")
    assert out.text == "Hello from Vertex"
    sent = fake_vertex.last_request
    assert sent.path == (
        f"/v1beta1/projects/{fake_vertex.project}/locations/{fake_vertex.location}"
        f"/publishers/google/models/{GEMINI}:generateContent"
    )
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-")


def test_gemini_stream_and_tools(fake_vertex: FakeVertex) -> None:
    spec = ToolCallSpec("get_weather", {"city": "Paris"})
    fake_vertex.enqueue(Reply(text="Str eam", chunk_size=3), Reply(text="", tool_calls=[spec]))
    client = gemini_client(fake_vertex)
    pieces = [c.text for c in client.models.generate_content_stream(model=GEMINI, contents="hi")]
    assert "".join(p or "" for p in pieces) == "Str eam"
    assert fake_vertex.last_request.query == {"alt": "sse"}
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                parameters_json_schema={
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                },
            )
        ]
    )
    out = client.models.generate_content(
        model=GEMINI, contents="weather?", config=types.GenerateContentConfig(tools=[tool])
    )
    assert out.function_calls is not None
    assert out.function_calls[0].args == {"city": "Paris"}


def test_gemini_refreshes_user_credentials_against_the_fake(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="one"), Reply(text="two"))
    client = gemini_client(fake_vertex, credentials=credentials_for(fake_vertex))
    assert client.models.generate_content(model=GEMINI, contents="a").text == "one"
    assert client.models.generate_content(model=GEMINI, contents="b").text == "two"
    assert fake_vertex.token_requests == 1  # refreshed once, not per request


def test_gemini_errors(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Fail("rate_limit", retry_after="7"))
    client = gemini_client(fake_vertex)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    from google.oauth2.credentials import Credentials

    unissued = gemini_client(fake_vertex, Credentials(token="ya29.not-issued"))
    with pytest.raises(genai_errors.ClientError) as caught:
        unissued.models.generate_content(model=GEMINI, contents="hi")
    assert caught.value.code == 401


def test_claude_raw_predict(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="Hi from Claude", prompt_tokens=12, cached_tokens=2))
    message = claude_client(fake_vertex).messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hi from Claude"  # type: ignore[union-attr]
    assert message.usage.input_tokens == 10
    sent = fake_vertex.last_request
    assert sent.path == (
        f"/v1/projects/{fake_vertex.project}/locations/{fake_vertex.location}"
        f"/publishers/anthropic/models/{CLAUDE}:rawPredict"
    )
    assert "model" not in sent.json
    assert sent.json["anthropic_version"] == "2026-10-21"
    assert "x-api-key" not in sent.headers


def test_claude_stream_raw_predict(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="Streamed Claude", chunk_size=4))
    client = claude_client(fake_vertex)
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streamed Claude"
    assert final.stop_reason == "end_turn"
    assert fake_vertex.last_request.path.endswith(":streamRawPredict")


def test_claude_errors_in_both_shapes(fake_vertex: FakeVertex) -> None:
    client = claude_client(fake_vertex)
    ask: Any = {"model": CLAUDE, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    fake_vertex.enqueue(Fail("overloaded"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**ask)
    assert caught.value.status_code == 529
    fake_vertex.enqueue(Fail("rate_limit"))
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(**ask)
    fake_vertex.enqueue(MidStreamError(after_chunks=1))
    with pytest.raises(anthropic.APIStatusError):
        "".join(client.messages.stream(**ask).__enter__().text_stream)
    with pytest.raises(anthropic.AuthenticationError):
        claude_client(fake_vertex, access_token="ya29.unknown").messages.create(**ask)


def test_claude_sampling_follows_the_anthropic_version(fake_vertex: FakeVertex) -> None:
    ask: Any = {"model": CLAUDE, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.BadRequestError):
        # SDK 2.17 has no temperature parameter: its API version took sampling away
        claude_client(fake_vertex).messages.create(**ask, extra_body={"temperature": 0.5})
    fake_vertex.enqueue(Reply(text="ok"))
    out = claude_client(fake_vertex).messages.create(
        **ask, extra_body={"temperature": 0.5, "anthropic_version": "vertex-2023-10-16"}
    )
    assert out.content[0].text == "ok"  # type: ignore[union-attr]


def test_gemini_lists_base_models_from_the_model_garden(fake_vertex: FakeVertex) -> None:
    client = gemini_client(fake_vertex)
    names = [m.name for m in client.models.list(config={"query_base": True})]
    assert names == [
        f"publishers/google/models/{m}" for m in ("gemini-2.5-flash", "gemini-2.5-pro")
    ]
    assert fake_vertex.last_request.path == "/v1beta1/publishers/google/models"
