"""Dispatcher.embed over real HTTP against the fakes: every vendor's wire format, batches split
to each vendor's limit and reassembled in order, a failed batch retried or failed over, and
routing, capabilities, limits, cost, stats and the ledger applied as to any request."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from llmdispatcher import (
    Config,
    Dispatcher,
    EmbeddingRequest,
    FakeClock,
    Limits,
    Request,
    RetryPolicy,
    RoutingCondition,
    RoutingRule,
)
from llmdispatcher.budgets import Budget
from llmdispatcher.errors import (
    BudgetExceeded,
    RateLimitError,
    UnsupportedRequest,
    VendorUnavailable,
)
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.vendors import AnthropicVendor, OpenAICompatibleVendor, OpenAIVendor, Vendor
from tests.fakes import azure_fake, gemini_fake, llamacpp_fake, ollama_fake, openai_fake
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.azure_fake import FakeAzureOpenAI
from tests.fakes.embeddings_wire import fake_vector
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.llamacpp_fake import FakeLlamaServer
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply

TEXTS = ["the cat sat", "on the mat", "and purred"]
SMALL = "text-embedding-3-small"


def dispatcher(*vendors: Vendor, **config: object) -> Dispatcher:
    config.setdefault("retry_policy", RetryPolicy(max_retries=1, jitter=False))
    return Dispatcher(Config(**config), vendors=vendors, clock=FakeClock())  # type: ignore[arg-type]


def compatible(fake: FakeOpenAI, name: str = "compat") -> OpenAICompatibleVendor:
    return OpenAICompatibleVendor(name=name, base_url=fake.url + "/v1", api_key=FAKE_OPENAI_KEY)


# --- every vendor ------------------------------------------------------------------------------
async def test_openai_embeds_in_input_order_with_usage_and_cost(fake_openai: FakeOpenAI) -> None:
    async with dispatcher(openai_fake.adapter_for(fake_openai)) as d:
        done = await d.embed(EmbeddingRequest(model=SMALL, input=TEXTS, dimensions=8, user="u1"))
    sent = fake_openai.last_request
    assert sent.path == "/v1/embeddings"
    assert sent.json == {
        "model": SMALL,
        "input": TEXTS,
        "encoding_format": "float",
        "dimensions": 8,
        "user": "u1",
    }
    assert done.vectors == [fake_vector(t, 8) for t in TEXTS]
    assert (done.vendor, done.model) == ("openai", SMALL)
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (8, 0)
    assert done.cost_usd == pytest.approx(8 * 0.02 / 1e6)
    assert [a.status for a in done.attempts] == ["ok"]
    assert done.routing.candidates[0].deployment.id == f"openai/{SMALL}"


def test_a_single_text_and_the_sync_facade(fake_openai: FakeOpenAI) -> None:
    with dispatcher(openai_fake.adapter_for(fake_openai)) as d:
        done = d.embed_sync(EmbeddingRequest(model=SMALL, input="one text"))
    assert done.vectors == [fake_vector("one text", 1536)]


async def test_azure_embeds_through_the_deployment() -> None:
    deployments = {"embed-small": SMALL}
    with FakeAzureOpenAI(api_key="azure-key", deployments=deployments) as fake:
        async with dispatcher(azure_fake.adapter_for(fake)) as d:
            done = await d.embed(EmbeddingRequest(model="embed-small", input=TEXTS))
        assert fake.last_request.path == "/openai/deployments/embed-small/embeddings"
        assert fake.last_request.query == {"api-version": "2024-10-21"}
    assert done.model == SMALL  # what Azure answers: the model behind the deployment
    assert done.vectors[2] == fake_vector(TEXTS[2], 1536)


async def test_gemini_embeds_with_batch_requests_and_an_estimated_usage(
    fake_gemini: FakeGemini,
) -> None:
    async with dispatcher(gemini_fake.adapter_for(fake_gemini)) as d:
        done = await d.embed(
            EmbeddingRequest(model="gemini-embedding-001", input=TEXTS, dimensions=16)
        )
    body = fake_gemini.last_request.json
    assert fake_gemini.last_request.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert body["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"role": "user", "parts": [{"text": TEXTS[0]}]},
        "outputDimensionality": 16,
    }
    assert done.vectors == [fake_vector(t, 16) for t in TEXTS]
    assert done.usage.prompt_tokens > 0  # Gemini counts none: estimated
    assert done.cost_usd is not None


async def test_ollama_embeds_with_api_embed(fake_ollama: FakeOllama) -> None:
    fake_ollama.models.append("all-minilm:latest")
    async with dispatcher(ollama_fake.adapter_for(fake_ollama)) as d:
        done = await d.embed(EmbeddingRequest(model="all-minilm", input=TEXTS))
    assert fake_ollama.last_request.path == "/api/embed"
    assert fake_ollama.last_request.json == {"model": "all-minilm", "input": TEXTS}
    assert done.vectors == [fake_vector(t, 384) for t in TEXTS]
    assert (done.usage.prompt_tokens, done.cost_usd) == (8, 0.0)


async def test_llama_server_and_openai_compatible_use_v1_embeddings(
    fake_llamacpp: FakeLlamaServer, fake_openai: FakeOpenAI
) -> None:
    fake_llamacpp.embedding_dims = 4
    async with dispatcher(llamacpp_fake.adapter_for(fake_llamacpp), compatible(fake_openai)) as d:
        local = await d.embed(EmbeddingRequest(model="any", input=TEXTS, vendor="llamacpp"))
        hosted = await d.embed(EmbeddingRequest(model=SMALL, input=TEXTS, vendor="compat"))
    assert fake_llamacpp.last_request.path == "/v1/embeddings"
    assert local.vectors == [fake_vector(t, 4) for t in TEXTS]
    assert hosted.vectors == [fake_vector(t, 1536) for t in TEXTS]


# --- batches -----------------------------------------------------------------------------------
async def test_long_lists_go_in_batches_of_the_vendors_limit_in_order(
    fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_gemini.embedding_dims = 2
    texts = [f"text {i}" for i in range(2100)]
    async with dispatcher(
        openai_fake.adapter_for(fake_openai), gemini_fake.adapter_for(fake_gemini)
    ) as d:
        openai_done = await d.embed(EmbeddingRequest(model=SMALL, input=texts, dimensions=2))
        gemini_done = await d.embed(
            EmbeddingRequest(model="gemini-embedding-001", input=texts[:250], vendor="google")
        )
    assert [len(r.json["input"]) for r in fake_openai.requests] == [2048, 52]
    assert openai_done.vectors == [fake_vector(t, 2) for t in texts]
    assert openai_done.usage.prompt_tokens == 4200
    assert [len(r.json["requests"]) for r in fake_gemini.requests] == [100, 100, 50]
    assert gemini_done.vectors == [fake_vector(t, 2) for t in texts[:250]]


async def test_a_failed_batch_is_retried_alone(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(), Fail("server"))
    texts = [f"t{i}" for i in range(2050)]
    async with dispatcher(openai_fake.adapter_for(fake_openai)) as d:
        done = await d.embed(EmbeddingRequest(model=SMALL, input=texts, dimensions=2))
    # the first batch was answered, the second failed, and only the second went again
    assert [len(r.json["input"]) for r in fake_openai.requests] == [2048, 2, 2]
    assert [a.status for a in done.attempts] == ["VendorServerError", "ok"]
    assert done.vectors == [fake_vector(t, 2) for t in texts]
    assert done.usage.prompt_tokens == 2050  # every batch once


async def test_a_failing_vendor_fails_over_with_every_batch(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("server"), Fail("server"))
    vendors = (
        openai_fake.adapter_for(fake_openai),
        openai_fake.adapter_for(fake_openai_b, name="b"),
    )
    async with dispatcher(*vendors, fallback_vendors=("b",)) as d:
        done = await d.embed(EmbeddingRequest(model=SMALL, input=TEXTS))
        stats = d.stats()
    assert done.vendor == "b"
    assert [a.vendor for a in done.attempts] == ["openai", "openai", "b"]
    assert fake_openai_b.last_request.json["input"] == TEXTS
    assert stats.fallbacks == 1


# --- routing and capabilities ------------------------------------------------------------------
async def test_routing_skips_vendors_without_embeddings(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    claude = AnthropicVendor(api_key="sk-ant-x", base_url=fake_anthropic.url)
    async with dispatcher(claude, openai_fake.adapter_for(fake_openai)) as d:
        done = await d.embed(EmbeddingRequest(model=SMALL, input="x"))
        with pytest.raises(UnsupportedRequest, match="cannot take embedding requests"):
            await d.embed(EmbeddingRequest(model=SMALL, input="x", vendor="anthropic"))
    assert done.vendor == "openai"  # the first registered vendor that can embed
    assert fake_anthropic.requests == []


async def test_rules_with_request_type_embedding(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    rules = (
        RoutingRule(RoutingCondition(request_types=("embedding",)), vendor="b", priority=1),
        RoutingRule(vendor="anthropic", priority=2),
    )
    claude = AnthropicVendor(api_key="sk-ant-x", base_url=fake_anthropic.url)
    b = openai_fake.adapter_for(fake_openai_b, name="b")
    async with dispatcher(
        claude, openai_fake.adapter_for(fake_openai), b, routing_rules=rules
    ) as d:
        done = await d.embed(EmbeddingRequest(model=SMALL, input="x"))
        chat = d.plan(
            Request(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
        )
    assert done.vendor == "b"
    assert done.routing.rule is rules[0]
    assert chat.candidates[0].deployment.vendor == "anthropic"  # chats do not match the rule


async def test_a_rule_to_a_vendor_without_embeddings_is_refused_with_the_fix(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    claude = AnthropicVendor(api_key="sk-ant-x", base_url=fake_anthropic.url)
    rules = (RoutingRule(vendor="anthropic"),)
    async with dispatcher(claude, openai_fake.adapter_for(fake_openai), routing_rules=rules) as d:
        with pytest.raises(UnsupportedRequest, match=r"request_types: \[embedding\]"):
            await d.embed(EmbeddingRequest(model=SMALL, input="x"))


# --- limits, ledger, stats ---------------------------------------------------------------------
async def test_tpm_counts_the_input_tokens(fake_openai: FakeOpenAI) -> None:
    # Each request reserves its estimated input (no output is reserved for an embedding) and
    # settles the 15 tokens the vendor counted: 15 + 15 + the third's estimate cross 45.
    limited = openai_fake.adapter_for(fake_openai, limits=Limits(tpm=45))
    async with dispatcher(limited, retry_policy=RetryPolicy(max_retries=0)) as d:
        await d.embed(EmbeddingRequest(model=SMALL, input=["word " * 15]))
        await d.embed(EmbeddingRequest(model=SMALL, input=["word " * 15]))
        with pytest.raises((RateLimitError, VendorUnavailable)) as caught:
            await d.embed(EmbeddingRequest(model=SMALL, input=["word " * 15]))
    assert "tpm" in str(caught.value)
    assert len(fake_openai.requests) == 2  # the third never left


async def test_the_ledger_and_stats_record_embeddings(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    async with dispatcher(openai_fake.adapter_for(fake_openai), ledger_url=url) as d:
        await d.embed(EmbeddingRequest(model=SMALL, input=TEXTS, metadata={"team": "search"}))
        stats = d.stats()
        ledger = await d.ledger_stats()
    assert stats.vendor_stats["openai"].prompt_tokens == 8
    assert stats.vendor_stats["openai"].completion_tokens == 0
    assert ledger.by_model[SMALL].requests == 1
    assert ledger.by_model[SMALL].prompt_tokens == 8
    assert ledger.by_model[SMALL].cost_usd == Decimal("0.00000016")  # 8 x $0.02 per million


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input": []}, "request.input"),
        ({"input": ["a", ""]}, r"request.input\[1\]"),
        ({"input": "a", "dimensions": 0}, "request.dimensions"),
        ({"input": "a", "model": ""}, "request.model"),
    ],
)
def test_bad_requests_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        EmbeddingRequest(**{"model": SMALL, **kwargs})  # type: ignore[arg-type]


def test_openai_vendor_reads_base64_answers_too() -> None:
    from llmdispatcher.vendors.openai_embeddings import base64_vector, vector_from

    assert vector_from("AACAPwAAAEA=") == [1.0, 2.0]
    assert vector_from(base64_vector([0.5, -0.25])) == [0.5, -0.25]


def test_hosts_without_embeddings_say_so() -> None:
    groq = OpenAICompatibleVendor(name="g", preset="groq", api_key="gsk-x")
    assert not groq.accepts_kind("embedding")
    assert OpenAIVendor(api_key="sk-x").accepts_kind("embedding")


def test_a_config_file_says_a_compatible_host_has_no_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "vendors:\n"
        '  chat-only: {type: openai_compatible, base_url: "http://127.0.0.1:9/v1",'
        " embeddings: false}\n"
    )
    with Dispatcher(Config.from_file(path)) as d:
        assert not d.vendors["chat-only"].accepts_kind("embedding")
        with pytest.raises(UnsupportedRequest, match="cannot take embedding requests"):
            d.embed_sync(EmbeddingRequest(model="any", input="x"))


async def test_budgets_reserve_and_settle_the_input_cost(fake_openai: FakeOpenAI) -> None:
    budgets = (Budget("user:alice", "0.00025", "day"),)  # 2.5 of these $0.0001 requests
    text = "word " * 5000  # 5,000 tokens at $0.02 per million
    async with dispatcher(openai_fake.adapter_for(fake_openai), budgets=budgets) as d:
        for _ in range(2):
            done = await d.embed(EmbeddingRequest(model=SMALL, input=text, user="alice"))
            assert done.cost_usd == pytest.approx(0.0001)
        with pytest.raises(BudgetExceeded, match="user:alice"):
            await d.embed(EmbeddingRequest(model=SMALL, input=text, user="alice"))
    assert len(fake_openai.requests) == 2  # the third never left


async def test_a_model_group_of_embedding_deployments(
    fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    group = ModelGroup(
        "embed",
        (Deployment("google", "gemini-embedding-001"), Deployment("openai", SMALL)),
        strategy="priority",
    )
    fake_gemini.enqueue(Fail("overloaded"), Fail("overloaded"))
    vendors = (gemini_fake.adapter_for(fake_gemini), openai_fake.adapter_for(fake_openai))
    async with dispatcher(*vendors, model_groups=(group,)) as d:
        done = await d.embed(EmbeddingRequest(model="embed", input=TEXTS, dimensions=8))
    assert (done.vendor, done.model) == ("openai", SMALL)
    assert [a.vendor for a in done.attempts] == ["google", "google", "openai"]
    assert done.routing.group == "embed"
    assert done.vectors == [fake_vector(t, 8) for t in TEXTS]
