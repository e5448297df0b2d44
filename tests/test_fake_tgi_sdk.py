"""The fake TGI server is faithful: ``huggingface_hub.InferenceClient`` (the official client of
text-generation-inference) talks to it like to TGI. And the native routes our
examples/http/tgi.yaml uses answer in the same shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    IncompleteGenerationError,
    OverloadedError,
    ValidationError,
)

from tests.fakes.fixtures_more_vendors import FAKE_TGI_KEY as KEY
from tests.fakes.script import Fail, MidStreamError, Reply
from tests.fakes.tgi_fake import FakeTGI


def client(fake: FakeTGI, token: str = KEY) -> InferenceClient:
    return InferenceClient(model=fake.url, token=token)


def post(fake: FakeTGI, path: str, body: Any) -> httpx.Response:
    return httpx.post(fake.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"})


def test_text_generation_with_details(fake_tgi: FakeTGI) -> None:
    fake_tgi.enqueue(Reply(text=" world", finish="length", completion_tokens=2))
    out = client(fake_tgi).text_generation("Hello", max_new_tokens=2, details=True, temperature=0.5)
    assert out.generated_text == " world"
    assert out.details is not None
    assert (out.details.finish_reason, out.details.generated_tokens) == ("length", 2)
    sent = fake_tgi.last_request
    assert sent.path == "/"  # the SDK posts to the compat route
    assert sent.json["inputs"] == "Hello"
    assert sent.json["parameters"]["max_new_tokens"] == 2
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_text_generation_plain(fake_tgi: FakeTGI) -> None:
    fake_tgi.enqueue(Reply(text="Paris."))
    assert client(fake_tgi).text_generation("Capital of France?") == "Paris."


def test_stream_tokens_end_with_a_special_eos(fake_tgi: FakeTGI) -> None:
    fake_tgi.enqueue(Reply(text="abcdefgh", chunk_size=3, prompt_tokens=4, completion_tokens=3))
    events = list(client(fake_tgi).text_generation("x", stream=True, details=True))
    assert [e.token.text for e in events] == ["abc", "def", "gh", "</s>"]
    assert [e.token.special for e in events] == [False, False, False, True]
    assert all(e.generated_text is None for e in events[:-1])
    last = events[-1]
    assert last.generated_text == "abcdefgh"
    assert last.details is not None
    assert (last.details.finish_reason, last.details.generated_tokens) == ("eos_token", 3)
    assert fake_tgi.last_request.json["stream"] is True
    # without details the SDK yields every token's text, the special </s> too: which is why
    # examples/http/tgi.yaml skips tokens marked special
    fake_tgi.enqueue(Reply(text="abcdefgh", chunk_size=3))
    assert "".join(client(fake_tgi).text_generation("x", stream=True)) == "abcdefgh</s>"


def test_native_routes_and_usage_headers(fake_tgi: FakeTGI) -> None:
    fake_tgi.enqueue(Reply(text="hi", prompt_tokens=7, completion_tokens=1))
    resp = post(fake_tgi, "/generate", {"inputs": "Hey", "parameters": {"details": True}})
    assert resp.status_code == 200
    assert resp.json()["generated_text"] == "hi"  # an object, not the compat route's list
    assert (resp.headers["x-prompt-tokens"], resp.headers["x-generated-tokens"]) == ("7", "1")
    fake_tgi.enqueue(Reply(text="hello", chunk_size=5, finish="length"))
    resp = post(fake_tgi, "/generate_stream", {"inputs": "Hey", "parameters": {"details": True}})
    assert resp.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in resp.text.split("\n") if line]
    assert all(line.startswith("data:{") for line in lines)  # axum: no space, no [DONE]
    assert '"input_length"' in lines[-1]
    assert httpx.get(fake_tgi.url + "/health").status_code == 200
    assert httpx.get(fake_tgi.url + "/info").json()["max_stop_sequences"] == 4


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limit", OverloadedError),
        ("server", IncompleteGenerationError),
        ("bad_request", ValidationError),
    ],
)
def test_errors_become_the_sdks_classes(
    fake_tgi: FakeTGI, kind: str, error: type[Exception]
) -> None:
    fake_tgi.enqueue(Fail(kind))
    with pytest.raises(error):
        client(fake_tgi).text_generation("x")


def test_mid_stream_error_is_a_generation_error(fake_tgi: FakeTGI) -> None:
    fake_tgi.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    got: list[str] = []
    with pytest.raises(GenerationError):
        got.extend(client(fake_tgi).text_generation("x", stream=True))
    assert got == ["abcd"]


def test_api_key_is_required_when_set(fake_tgi: FakeTGI) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        client(fake_tgi, token="hf_wrong").text_generation("x")
    assert caught.value.response is not None
    assert caught.value.response.status_code == 401


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"inputs": ""}, "`inputs` cannot be empty"),
        (
            {"inputs": "x", "parameters": {"temperature": 0}},
            "`temperature` must be strictly positive",
        ),
        ({"inputs": "x", "parameters": {"top_p": 1.0}}, "`top_p` must be > 0.0 and < 1.0"),
        ({"inputs": "x", "parameters": {"max_tokens": 5}}, "unknown field `max_tokens`"),
        ({"inputs": "x", "parameters": {"stop": ["a", "b", "c", "d", "e"]}}, "up to 4 stop"),
    ],
)
def test_validation(fake_tgi: FakeTGI, body: Any, needle: str) -> None:
    fake_tgi.enqueue(Reply(text="must not be used"))
    resp = post(fake_tgi, "/generate", body)
    assert resp.status_code == 422
    assert needle in resp.json()["error"]
    assert resp.json()["error_type"] == "validation"
    assert fake_tgi.pending == 1
