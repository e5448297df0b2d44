"""OpenTelemetry spans with the SDK's in-memory exporter, against the fake OpenAI servers over
real HTTP: the span tree and its attributes, across a fallback and a hedge, the context on the
vendor request, and a client's ``traceparent`` continued through the gateway."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llmdispatcher import (
    Cache,
    Config,
    Deployment,
    Dispatcher,
    ModelGroup,
    Request,
    RetryPolicy,
)
from llmdispatcher.gateway.app import create_app
from llmdispatcher.settings.tracing import Tracing
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply, Stall

HI = [{"role": "user", "content": "Say hello"}]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.clear()


def traced(
    exporter: InMemorySpanExporter, *fakes: FakeOpenAI, log_content: bool = False, **config: Any
) -> Dispatcher:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    vendors = [
        OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1", name=name)
        for fake, name in zip(fakes, ("a", "b"), strict=False)
    ]
    config.setdefault("retry_policy", RetryPolicy(max_retries=0))
    return Dispatcher(
        Config(tracing=Tracing(tracer_provider=provider), log_content=log_content, **config),
        vendors=vendors,
        rng=random.Random(3),
    )


def tree(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The request span and its tries, in start order."""
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    roots = [s for s in spans if s.attributes and "llmdispatcher.attempts" in s.attributes]
    assert len(roots) == 1, [s.name for s in spans]
    root = roots[0]
    tries = [s for s in spans if s is not root]
    for child in tries:
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    return root, tries


async def test_a_request_span_with_one_try_and_the_genai_attributes(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply("Hello!", prompt_tokens=9, completion_tokens=3))
    async with traced(exporter, fake_openai) as d:
        response = await d.send(Request(model="gpt-4o-mini", messages=HI, temperature=0))
    root, tries = tree(exporter)
    assert root.name == "chat gpt-4o-mini"
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "a"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == response.model
    assert attrs["gen_ai.request.temperature"] == 0
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (9, 3)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["llmdispatcher.routing.strategy"] == "priority"
    assert attrs["llmdispatcher.routing.deployment"] == "a/gpt-4o-mini"
    assert attrs["llmdispatcher.cost_usd"] == pytest.approx(response.cost_usd)
    assert "gen_ai.input.messages" not in attrs  # content logging is off
    [one] = tries
    assert one.name == "chat gpt-4o-mini"
    assert dict(one.attributes or {})["llmdispatcher.attempt.status"] == "ok"


async def test_the_vendor_request_carries_the_try_span_context(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    async with traced(exporter, fake_openai) as d:
        await d.send(Request(model="gpt-4o-mini", messages=HI))
    _, [one] = tree(exporter)
    sent = fake_openai.requests[-1].headers["traceparent"]
    assert sent.startswith(f"00-{one.context.trace_id:032x}-{one.context.span_id:016x}-")


async def test_a_fallback_is_two_tries_under_one_request(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("server"))
    async with traced(exporter, fake_openai, fake_openai_b, fallback_vendors=("b",)) as d:
        await d.send(Request(model="gpt-4o-mini", messages=HI))
    root, tries = tree(exporter)
    assert [dict(t.attributes or {})["gen_ai.system"] for t in tries] == ["a", "b"]
    failed, ok = tries
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "VendorServerError"
    assert ok.status.status_code is StatusCode.UNSET
    assert dict(root.attributes or {})["gen_ai.system"] == "b"
    assert [r.headers["traceparent"].split("-")[2] for r in (
        fake_openai.requests[-1], fake_openai_b.requests[-1]
    )] == [f"{t.context.span_id:016x}" for t in tries]  # fmt: skip


async def test_a_hedge_is_two_tries_under_one_request_the_loser_cancelled(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Stall(5.0))
    group = ModelGroup(
        "g", (Deployment("a", "gpt-4o-mini"), Deployment("b", "gpt-4o-mini")), hedge_after_s=0.05
    )
    async with traced(exporter, fake_openai, fake_openai_b, model_groups=(group,)) as d:
        await d.send(Request(model="g", messages=HI))
    root, tries = tree(exporter)
    status = {
        dict(t.attributes or {})["gen_ai.system"]: dict(t.attributes or {})[
            "llmdispatcher.attempt.status"
        ]
        for t in tries
    }
    assert status == {"a": "cancelled", "b": "ok"}
    assert root.name == "chat g"
    assert dict(root.attributes or {})["llmdispatcher.routing.group"] == "g"


async def test_a_failed_request_has_its_error_type(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("auth"))
    async with traced(exporter, fake_openai) as d:
        with pytest.raises(Exception, match="401"):
            await d.send(Request(model="gpt-4o-mini", messages=HI))
    root, _ = tree(exporter)
    assert root.status.status_code is StatusCode.ERROR
    assert dict(root.attributes or {})["error.type"] == "AuthenticationError"


async def test_content_only_with_content_logging_and_cache_hits_marked(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply("Hello!"))
    async with traced(exporter, fake_openai, log_content=True, cache=Cache()) as d:
        for _ in range(2):
            chunks = [c async for c in d.stream(Request("gpt-4o-mini", HI, temperature=0))]
            assert chunks[-1].finish_reason == "stop"
    spans = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    roots = [
        dict(s.attributes or {}) for s in spans if "llmdispatcher.attempts" in (s.attributes or {})
    ]
    assert [r["llmdispatcher.cache"] for r in roots] == ["miss", "hit"]
    assert '"Say hello"' in str(roots[1]["gen_ai.input.messages"])
    assert '"Hello!"' in str(roots[1]["gen_ai.output.messages"])
    assert len(spans) == 3  # two requests, one try: the hit went nowhere


async def test_the_gateway_continues_the_clients_trace(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    dispatcher = traced(exporter, fake_openai)
    client = TestClient(TestServer(create_app(dispatcher)))
    await client.start_server()
    try:
        body = {"model": "gpt-4o-mini", "messages": HI}
        reply = await client.post(
            "/v1/chat/completions", json=body, headers={"traceparent": TRACEPARENT}
        )
        assert reply.status == 200
    finally:
        await client.close()
    root, [_] = tree(exporter)
    assert f"{root.context.trace_id:032x}" == CLIENT_TRACE
    assert root.parent is not None
    assert f"{root.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert fake_openai.requests[-1].headers["traceparent"].split("-")[1] == CLIENT_TRACE


async def test_an_embedding_request_is_an_embeddings_span(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAI
) -> None:
    from llmdispatcher import EmbeddingRequest

    async with traced(exporter, fake_openai) as d:
        await d.embed(EmbeddingRequest(model="text-embedding-3-small", input=["a", "b"]))
    root, [one] = tree(exporter)
    assert root.name == one.name == "embeddings text-embedding-3-small"
    assert dict(root.attributes or {})["gen_ai.operation.name"] == "embeddings"
    assert dict(root.attributes or {})["gen_ai.usage.input_tokens"] > 0
