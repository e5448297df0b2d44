"""The fakes' embeddings endpoints are faithful: each official SDK embeds through them as it
would through the vendor (openai incl. Azure and llama-server, google-genai, ollama)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types

from tests.fakes.azure_fake import FakeAzureOpenAI
from tests.fakes.embeddings_wire import fake_vector
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.fixtures_gemini import FAKE_GEMINI_KEY
from tests.fakes.fixtures_ollama import FAKE_OLLAMA_KEY
from tests.fakes.fixtures_openai_family import FAKE_LLAMACPP_KEY
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.llamacpp_fake import FakeLlamaServer
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail

TEXTS = ["the cat sat", "on the mat"]


def close(got: list[float], want: list[float]) -> bool:
    """Equal up to float32 rounding (base64 carries float32)."""
    return len(got) == len(want) and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want, strict=True)
    )


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=fake_openai.url + "/v1", api_key=FAKE_OPENAI_KEY, max_retries=0
    ) as c:
        yield c


# --- OpenAI ------------------------------------------------------------------------------------
def test_openai_sdk_defaults_ask_for_base64_and_decode_it(
    fake_openai: FakeOpenAI, client: openai.OpenAI
) -> None:
    done = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
    assert fake_openai.last_request.json["encoding_format"] == "base64"
    assert [d.index for d in done.data] == [0, 1]
    assert all(
        close(d.embedding, fake_vector(t, 1536)) for d, t in zip(done.data, TEXTS, strict=True)
    )
    assert (done.usage.prompt_tokens, done.usage.total_tokens) == (6, 6)
    assert done.model == "text-embedding-3-small"


def test_openai_sdk_floats_and_dimensions(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    done = client.embeddings.create(
        model="text-embedding-3-large", input="one text", encoding_format="float", dimensions=8
    )
    assert done.data[0].embedding == fake_vector("one text", 8)
    raw = httpx.post(
        fake_openai.url + "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "x"},
        headers={"Authorization": f"Bearer {FAKE_OPENAI_KEY}"},
    ).json()
    assert isinstance(raw["data"][0]["embedding"], list)  # no encoding_format: floats


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": "a", "dimensions": 8, "model": "text-embedding-ada-002"}, "dimensions"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_openai_sdk_sees_the_apis_refusals(
    client: openai.OpenAI, body: dict[str, object], param: str
) -> None:
    kwargs = {"model": "text-embedding-3-small", **body}
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(**kwargs)  # type: ignore[call-overload]
    assert caught.value.param == param


def test_openai_sdk_gets_scripted_failures(fake_openai: FakeOpenAI, client: openai.OpenAI) -> None:
    fake_openai.enqueue(Fail("rate_limit", retry_after="1"))
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert client.embeddings.create(model="text-embedding-3-small", input="x").data


def test_azure_sdk_embeds_through_a_deployment() -> None:
    deployments = {"embed-small": "text-embedding-3-small"}
    with (
        FakeAzureOpenAI(api_key="azure-key", deployments=deployments) as fake,
        openai.AzureOpenAI(
            azure_endpoint=fake.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
        ) as azure,
    ):
        done = azure.embeddings.create(model="embed-small", input=TEXTS)
        assert fake.last_request.path == "/openai/deployments/embed-small/embeddings"
        assert done.model == "text-embedding-3-small"
        assert close(done.data[1].embedding, fake_vector(TEXTS[1], 1536))
        with pytest.raises(openai.NotFoundError):
            azure.embeddings.create(model="no-such-deployment", input="x")


def test_llama_server_sdk_embeds_without_naming_the_model(
    fake_llamacpp: FakeLlamaServer,
) -> None:
    fake_llamacpp.embedding_dims = 16
    with openai.OpenAI(
        base_url=fake_llamacpp.url + "/v1", api_key=FAKE_LLAMACPP_KEY, max_retries=0
    ) as c:
        done = c.embeddings.create(model="", input=TEXTS, encoding_format="float")
    assert [d.embedding for d in done.data] == [fake_vector(t, 16) for t in TEXTS]


# --- Gemini ------------------------------------------------------------------------------------
def test_genai_sdk_embeds_in_one_batch(fake_gemini: FakeGemini) -> None:
    client = genai.Client(
        api_key=FAKE_GEMINI_KEY,
        http_options=types.HttpOptions(base_url=fake_gemini.url, api_version="v1beta"),
    )
    try:
        done = client.models.embed_content(
            model="gemini-embedding-001",
            contents=TEXTS,
            config=types.EmbedContentConfig(output_dimensionality=8),
        )
        with pytest.raises(genai.errors.ClientError) as caught:
            client.models.embed_content(model="no-such-model", contents="x")
    finally:
        client.close()
    assert fake_gemini.requests[0].path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert done.embeddings is not None
    assert [e.values for e in done.embeddings] == [fake_vector(t, 8) for t in TEXTS]
    assert caught.value.code == 404


def test_gemini_fake_answers_the_single_form_and_the_batch_limit(fake_gemini: FakeGemini) -> None:
    url = fake_gemini.url + "/v1beta/models/gemini-embedding-001"
    headers = {"x-goog-api-key": FAKE_GEMINI_KEY}
    single = httpx.post(
        url + ":embedContent", json={"content": {"parts": [{"text": "hi"}]}}, headers=headers
    )
    assert single.json()["embedding"]["values"] == fake_vector("hi", 3072)
    entry = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
    too_many = httpx.post(
        url + ":batchEmbedContents", json={"requests": [entry] * 101}, headers=headers
    )
    assert too_many.status_code == 400
    assert too_many.json()["error"]["status"] == "INVALID_ARGUMENT"


# --- Ollama ------------------------------------------------------------------------------------
def test_ollama_sdk_embeds(fake_ollama: FakeOllama) -> None:
    fake_ollama.models.append("all-minilm:latest")
    with ollama.Client(
        host=fake_ollama.url, headers={"Authorization": f"Bearer {FAKE_OLLAMA_KEY}"}
    ) as client:
        done = client.embed(model="all-minilm", input=TEXTS, dimensions=32)
        with pytest.raises(ollama.ResponseError) as caught:
            client.embed(model="not-pulled", input="x")
    assert [list(v) for v in done.embeddings] == [fake_vector(t, 32) for t in TEXTS]
    assert done.prompt_eval_count == 6
    assert done.model == "all-minilm:latest"
    assert caught.value.status_code == 404
