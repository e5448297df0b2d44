"""``POST /v1/embeddings`` on a running gateway with the official openai SDK as the client: its
default base64 encoding and floats, failover, the key's allow-list, bad input, and the built-in
model with no key and no config."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import openai
import pytest

from llmdispatcher import local_models
from tests.fakes.embeddings_wire import fake_vector
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail
from tests.gateway import AUTH, KEY, MINI_AUTH, GatewayProcess, call

SMALL = "text-embedding-3-small"
TEXTS = ["the cat sat", "on the mat"]


@pytest.fixture
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as c:
        yield c


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want, strict=True)
    )


def test_the_sdk_defaults_to_base64_and_gets_the_vectors(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    raw = client.embeddings.with_raw_response.create(model=SMALL, input=TEXTS, dimensions=8)
    done = raw.parse()
    assert b'"encoding_format":"base64"' in (raw.http_request.content or b"")
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)  # base64 on the wire
    assert [d.index for d in done.data] == [0, 1]
    assert all(close(d.embedding, fake_vector(t, 8)) for d, t in zip(done.data, TEXTS, strict=True))
    assert done.model == SMALL
    assert (done.usage.prompt_tokens, done.usage.total_tokens) == (6, 6)
    assert raw.headers["x-llmdispatcher-vendor"] == "openai"
    assert fake_openai.last_request.json["encoding_format"] == "float"  # what we ask upstream


def test_floats_when_asked(client: openai.OpenAI) -> None:
    done = client.embeddings.create(model=SMALL, input="one text", encoding_format="float")
    assert done.data[0].embedding == fake_vector("one text", 1536)


def test_a_failing_vendor_fails_over(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"), Fail("server"))
    raw = client.embeddings.with_raw_response.create(model=SMALL, input=TEXTS)
    assert raw.headers["x-llmdispatcher-vendor"] == "backup"
    assert raw.headers["x-llmdispatcher-attempts"] == "3"
    assert len(raw.parse().data) == 2


def test_an_upstream_refusal_is_the_clients_error(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("bad_request"))
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=SMALL, input="x")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": SMALL}, "input"),
        ({"model": SMALL, "input": []}, "input"),
        ({"model": SMALL, "input": ["a", ""]}, "input[1]"),
        ({"model": SMALL, "input": [[15339, 1917]]}, "input"),
        ({"model": SMALL, "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": SMALL, "input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a"}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gateway: str, body: dict[str, object], param: str
) -> None:
    answer = call("POST", f"{gateway}/v1/embeddings", body, AUTH)
    assert answer.status == 400
    assert answer.json()["error"]["param"] == param


def test_the_keys_allow_list_applies(gateway: str, fake_openai: FakeOpenAI) -> None:
    answer = call("POST", f"{gateway}/v1/embeddings", {"model": SMALL, "input": "x"}, MINI_AUTH)
    assert answer.status == 403
    assert fake_openai.requests == []


@pytest.mark.skipif(
    local_models.smollm2_path() is None
    or not local_models.runtime_available()
    or local_models.embedded_embedder() is None,
    reason="the local model extras are not installed",
)
def test_without_config_local_embed_answers_with_no_key() -> None:
    server = GatewayProcess()
    try:
        url = server.wait_listening(timeout=60)
        assert "local-embed" in server.lines[0]
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as c:
            done = c.embeddings.create(model="local-embed", input=["cat", "kitten"])
            models = {m.id for m in c.models.list()}
    finally:
        assert server.stop() == 0
    assert [len(d.embedding) for d in done.data] == [384, 384]
    assert {"local", "local-embed"} <= models


def test_the_openapi_document_describes_it(gateway: str) -> None:
    doc = call("GET", f"{gateway}/openapi.json").json()
    operation = doc["paths"]["/v1/embeddings"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EmbeddingRequest"
    }


def test_metrics_name_the_operation_embeddings(client: openai.OpenAI, gateway: str) -> None:
    client.embeddings.create(model=SMALL, input="x")
    text = call("GET", f"{gateway}/metrics", headers=AUTH).body.decode()
    usage = r'gen_ai_client_token_usage_count\{{gen_ai_operation_name="embeddings"[^}}]*type="{}"'
    assert re.search(usage.format("input"), text)
    assert not re.search(usage.format("output"), text)  # an embedding writes no tokens
