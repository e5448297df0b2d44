"""The fake's ``/api/generate`` is faithful: the official ``ollama`` SDK's ``generate`` talks to
it like to Ollama (plain, streamed, options, system, errors)."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from tests.fakes.fixtures_more_vendors import FAKE_OLLAMA_GENERATE_KEY as KEY
from tests.fakes.ollama_generate_fake import FakeOllamaGenerate
from tests.fakes.script import Fail, MidStreamError, Reply

MODEL = "llama3.2"


@pytest.fixture
def client(fake_ollama_generate: FakeOllamaGenerate) -> Iterator[ollama.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with ollama.Client(host=fake_ollama_generate.url, headers=headers) as c:
        yield c


def test_generate(fake_ollama_generate: FakeOllamaGenerate, client: ollama.Client) -> None:
    fake_ollama_generate.enqueue(Reply(text="Bonjour", prompt_tokens=3, completion_tokens=2))
    done = client.generate(
        model=MODEL, prompt="Hi", system="Be brief.", options={"temperature": 0.1, "num_predict": 9}
    )
    assert (done.response, done.done, done.done_reason) == ("Bonjour", True, "stop")
    assert (done.prompt_eval_count, done.eval_count) == (3, 2)
    assert done.context
    sent = fake_ollama_generate.last_request.json
    assert (sent["prompt"], sent["system"], sent["stream"]) == ("Hi", "Be brief.", False)
    assert sent["options"] == {"temperature": 0.1, "num_predict": 9}


def test_generate_stream(fake_ollama_generate: FakeOllamaGenerate, client: ollama.Client) -> None:
    fake_ollama_generate.enqueue(Reply(text="abcdefg", chunk_size=3, finish="length"))
    parts = list(client.generate(model=MODEL, prompt="Hi", stream=True))
    assert "".join(p.response for p in parts) == "abcdefg"
    assert [p.done for p in parts] == [False, False, False, True]
    assert parts[-1].done_reason == "length"
    assert parts[-1].eval_count == 12


def test_errors(fake_ollama_generate: FakeOllamaGenerate, client: ollama.Client) -> None:
    fake_ollama_generate.enqueue(Fail("overloaded"))
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model=MODEL, prompt="Hi")
    assert caught.value.status_code == 503
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="not-pulled", prompt="Hi")
    assert caught.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model=MODEL, prompt="Hi", options={"temprature": 1})
    assert caught.value.status_code == 400


def test_mid_stream_error(fake_ollama_generate: FakeOllamaGenerate, client: ollama.Client) -> None:
    fake_ollama_generate.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    got: list[str] = []
    with pytest.raises(ollama.ResponseError) as caught:
        got.extend(p.response for p in client.generate(model=MODEL, prompt="Hi", stream=True))
    assert got == ["abcd"]
    assert "llama runner process has terminated" in caught.value.error


def test_chat_still_served(fake_ollama_generate: FakeOllamaGenerate, client: ollama.Client) -> None:
    fake_ollama_generate.enqueue(Reply(text="chat"))
    assert client.chat(model=MODEL, messages=[{"role": "user", "content": "x"}]).message.content
