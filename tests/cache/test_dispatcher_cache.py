"""The response cache in the request path, against the fake OpenAI server over real HTTP: the
fake's request log shows which requests went upstream."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmdispatcher import (
    Budget,
    Cache,
    CacheControl,
    Config,
    Dispatcher,
    FakeClock,
    Request,
    RetryPolicy,
    StreamChunk,
    Usage,
)
from llmdispatcher.errors import BudgetExceeded, StreamInterrupted, VendorUnavailable
from llmdispatcher.observability.events import CacheLookup, Event, RequestFinished
from llmdispatcher.streaming import MAX_KEPT_CHARS
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, Reply, Stall, ToolCallSpec
from tests.redis_fixtures import delete_prefix

KEY = "sk-test-fake-0123456789"
HI = [{"role": "user", "content": "Say hello"}]


def ask(**fields: object) -> Request:
    fields.setdefault("temperature", 0)
    return Request(model="gpt-4o-mini", messages=fields.pop("messages", HI), **fields)  # type: ignore[arg-type]


def cached(fake: FakeOpenAI, cache: Cache | None = None, **config: object) -> Dispatcher:
    vendor = OpenAIVendor(api_key=KEY, base_url=fake.url + "/v1", name="openai")
    return Dispatcher(
        Config(cache=cache or Cache(), retry_policy=RetryPolicy(max_retries=0), **config),  # type: ignore[arg-type]
        vendors=[vendor],
        clock=FakeClock(start=1_800_000_000.0),
        rng=random.Random(7),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


async def test_an_identical_request_is_answered_from_the_cache_for_free(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(Reply("Hello!", prompt_tokens=9, completion_tokens=3))
    async with cached(fake_openai) as d:
        first = await d.send(ask())
        second = await d.send(ask())
        stats = d.stats()
    assert len(fake_openai.requests) == 1
    assert (first.cache, second.cache) == ("miss", "hit")
    assert (second.content, second.finish_reason) == ("Hello!", "stop")
    assert second.usage == first.usage == Usage(9, 3, 12)
    assert second.cost_usd == 0.0
    assert first.cost_usd
    assert second.attempts == ()
    assert (stats.cache_hits, stats.tokens_saved) == (1, 12)
    assert stats.cost_saved_usd == pytest.approx(first.cost_usd)


async def test_a_stream_hits_an_entry_a_send_wrote_with_the_same_usage(
    fake_openai: FakeOpenAI,
) -> None:
    text = "A longer answer " * 10
    fake_openai.enqueue(Reply(text, prompt_tokens=9, completion_tokens=40))
    async with cached(fake_openai) as d:
        sent = await d.send(ask())
        chunks = await collect(d.stream(ask()))
    assert len(fake_openai.requests) == 1
    assert "".join(c.delta for c in chunks) == sent.content == text
    assert len(chunks) > 2  # streamed in pieces, not one blob
    final = chunks[-1]
    assert (final.finish_reason, final.usage, final.cost_usd) == ("stop", Usage(9, 40, 49), 0.0)


async def test_a_send_hits_an_entry_a_stream_wrote_tool_calls_included(
    fake_openai: FakeOpenAI,
) -> None:
    call = ToolCallSpec("get_weather", {"city": "Paris"})
    fake_openai.enqueue(Reply("", tool_calls=[call], finish="tool_calls"))
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    async with cached(fake_openai) as d:
        streamed = await collect(d.stream(ask(tools=tools)))
        sent = await d.send(ask(tools=tools))
        replayed = await collect(d.stream(ask(tools=tools)))
    assert len(fake_openai.requests) == 1
    assert (sent.cache, sent.finish_reason) == ("hit", "tool_calls")
    assert [(c.name, c.arguments) for c in sent.tool_calls] == [("get_weather", '{"city":"Paris"}')]
    deltas = [d for c in replayed for d in c.tool_call_deltas]
    assert [(d.name, d.arguments) for d in deltas] == [("get_weather", '{"city":"Paris"}')]
    assert replayed[-1].usage == streamed[-1].usage


async def test_what_decides_the_answer_is_in_the_key_and_nothing_else(
    fake_openai: FakeOpenAI,
) -> None:
    async with cached(fake_openai) as d:
        await d.send(ask())
        same = [
            await d.send(ask(user="someone-else", timeout=5.0)),
            await d.send(ask(metadata={"trace": "x"})),
        ]
        differ = [
            await d.send(ask(messages=[{"role": "user", "content": "Say bye"}])),
            await d.send(ask(max_tokens=5)),
            await d.send(ask(extra={"seed": 1})),
            await d.send(ask(top_p=0.5)),
        ]
    assert [r.cache for r in same] == ["hit", "hit"]
    assert [r.cache for r in differ] == ["miss"] * 4
    assert len(fake_openai.requests) == 5


async def test_entries_are_scoped_per_gateway_key_unless_shared(fake_openai: FakeOpenAI) -> None:
    alice, bob = {"api_key": "alice"}, {"api_key": "bob"}
    async with cached(fake_openai) as d:
        scoped = [(await d.send(ask(metadata=m))).cache for m in (alice, bob, alice)]
    async with cached(fake_openai, Cache(shared=True)) as d:
        shared = [(await d.send(ask(metadata=m))).cache for m in (alice, bob)]
    assert scoped == ["miss", "miss", "hit"]
    assert shared == ["miss", "hit"]


async def test_only_deterministic_requests_are_cached_unless_always(
    fake_openai: FakeOpenAI,
) -> None:
    async with cached(fake_openai) as d:
        sampled = [(await d.send(ask(temperature=0.7))).cache for _ in range(2)]
        seeded = [(await d.send(ask(temperature=0.7, extra={"seed": 3}))).cache for _ in range(2)]
    async with cached(fake_openai, Cache(when="always")) as d:
        always = [(await d.send(ask(temperature=0.7))).cache for _ in range(2)]
    assert sampled == ["bypass", "bypass"]
    assert seeded == ["miss", "hit"]
    assert always == ["miss", "hit"]


async def test_errors_and_broken_streams_are_never_cached(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"), BreakStream("Hello from", after_chunks=2))
    async with cached(fake_openai) as d:
        with pytest.raises(VendorUnavailable):
            await d.send(ask())
        with pytest.raises(StreamInterrupted):
            await collect(d.stream(ask()))
        after = await d.send(ask())
    assert after.cache == "miss"
    assert len(fake_openai.requests) == 3


async def test_a_stream_the_caller_abandons_is_closed_at_once_and_not_cached(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(Stall(30.0, after_chunks=1))
    events: list[Event] = []
    async with cached(fake_openai) as d:
        d.subscribe(events.append)
        stream = d.stream(ask())
        await anext(stream)
        await stream.aclose()
        # closed within aclose, not later by the garbage collector
        assert [e.error for e in events if isinstance(e, RequestFinished)] == ["cancelled"]
        assert await fake_openai.wait_for_disconnect_async()  # the vendor saw the hang-up
        fake_openai.reset()
        after = await d.send(ask())
    assert after.cache == "miss"


async def test_an_answer_cut_by_length_is_cached_only_when_asked(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply("cut", finish="length")
    async with cached(fake_openai) as d:
        plain = [(await d.send(ask())).cache for _ in range(2)]
    async with cached(fake_openai, Cache(store_truncated=True)) as d:
        asked = [(await d.send(ask())).cache for _ in range(2)]
    assert plain == ["miss", "miss"]
    assert asked == ["miss", "hit"]


async def test_cache_control_per_request(fake_openai: FakeOpenAI) -> None:
    async with cached(fake_openai) as d:
        not_stored = await d.send(ask(cache=CacheControl(no_store=True)))
        still_missing = await d.send(ask())
        refreshed = await d.send(ask(cache=CacheControl(no_cache=True)))
        hit = await d.send(ask())
    assert [r.cache for r in (not_stored, still_missing, refreshed, hit)] == [
        "miss", "miss", "bypass", "hit"
    ]  # fmt: skip
    assert len(fake_openai.requests) == 3


async def test_entries_expire_after_their_ttl(fake_openai: FakeOpenAI) -> None:
    async with cached(fake_openai, Cache(ttl_s=60)) as d:
        clock = d._clock
        assert isinstance(clock, FakeClock)
        await d.send(ask())
        await d.send(
            ask(messages=[{"role": "user", "content": "short"}], cache=CacheControl(ttl_s=5))
        )
        clock.advance(30)
        outcomes = [
            (await d.send(ask())).cache,
            (await d.send(ask(messages=[{"role": "user", "content": "short"}]))).cache,
        ]
        clock.advance(31)
        outcomes.append((await d.send(ask())).cache)
    assert outcomes == ["hit", "miss", "miss"]


async def test_concurrent_identical_misses_make_one_upstream_call(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply("shared", delay_s=0.2)
    async with cached(fake_openai) as d:
        answers = await asyncio.gather(*(d.send(ask()) for _ in range(5)))
        streamed = await asyncio.gather(*(collect(d.stream(ask(max_tokens=9))) for _ in range(3)))
    assert len(fake_openai.requests) == 2
    assert sorted(a.cache or "" for a in answers) == ["hit"] * 4 + ["miss"]
    assert {a.content for a in answers} == {"shared"}
    assert {"".join(c.delta for c in s) for s in streamed} == {"shared"}


async def test_waiters_go_upstream_themselves_when_the_leader_fails(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(Fail("server"))
    fake_openai.default = Reply("fine", delay_s=0.1)
    async with cached(fake_openai) as d:
        results = await asyncio.gather(*(d.send(ask()) for _ in range(3)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert [type(e) for e in errors] == [VendorUnavailable]
    assert {r.content for r in results if not isinstance(r, Exception)} == {"fine"}


async def test_a_hit_is_free_against_spend_budgets(fake_openai: FakeOpenAI) -> None:
    """The first answer spends most of the budget; another request would cross it, while
    the cached one still passes."""
    budget = Budget("global", "0.00002", "total")
    async with cached(fake_openai, budgets=(budget,)) as d:
        await d.send(ask(max_tokens=20))
        hit = await d.send(ask(max_tokens=20))
        with pytest.raises(BudgetExceeded):
            await d.send(ask(max_tokens=20, messages=[{"role": "user", "content": "other"}]))
    assert hit.cache == "hit"


async def test_a_hit_is_recorded_in_the_ledger_with_what_it_saved(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    events: list[Event] = []
    async with cached(fake_openai, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}") as d:
        d.subscribe(events.append)
        first = await d.send(ask())
        await d.send(ask())
        await collect(d.stream(ask()))
        stats = await d.ledger_stats()
    assert (stats.totals.requests, stats.totals.cache_hits) == (3, 2)
    assert stats.totals.tokens_saved == 2 * first.usage.total_tokens
    assert stats.totals.prompt_tokens == first.usage.prompt_tokens  # hits used none
    assert float(stats.totals.cost_saved_usd) == pytest.approx(2 * (first.cost_usd or 0))
    assert [e.outcome for e in events if isinstance(e, CacheLookup)] == ["miss", "hit", "hit"]
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert [(e.cache, e.usage is None) for e in finished] == [
        ("miss", False), ("hit", True), ("hit", True)
    ]  # fmt: skip


async def test_no_cache_configured_means_no_cache_outcome(fake_openai: FakeOpenAI) -> None:
    vendor = OpenAIVendor(api_key=KEY, base_url=fake_openai.url + "/v1")
    async with Dispatcher(vendors=[vendor]) as d:
        answers = [await d.send(ask()) for _ in range(2)]
    assert [a.cache for a in answers] == [None, None]
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_replicas_sharing_a_store_answer_each_others_requests(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, prefix = f"sqlite:///{tmp_path / 'cache.db'}", f"llmd-test-{uuid.uuid4().hex[:12]}:"
    if kind == "redis":  # keys under a prefix of this test's own, deleted after
        url = request.getfixturevalue("redis_url") + f"?prefix={prefix}"
    settings = Cache(url=url)
    try:
        async with cached(fake_openai, settings) as one, cached(fake_openai, settings) as two:
            first = await one.send(ask(messages=[{"role": "user", "content": kind}]))
            second = await two.send(ask(messages=[{"role": "user", "content": kind}]))
    finally:
        if kind == "redis":
            delete_prefix(request.getfixturevalue("redis_url"), prefix)
    assert (first.cache, second.cache) == ("miss", "hit")
    assert len(fake_openai.requests) == 1


async def test_requests_for_several_answers_or_logprobs_bypass_the_cache(
    fake_openai: FakeOpenAI,
) -> None:
    async with cached(fake_openai, Cache(when="always")) as d:
        several = [(await d.send(ask(n=2))).cache for _ in range(2)]
        logprobs = [(await d.send(ask(logprobs=True))).cache for _ in range(2)]
        tools = [{"type": "function", "function": {"name": "f"}}]
        parallel = [
            (await d.send(ask(tools=tools, parallel_tool_calls=p))).cache for p in (True, False)
        ]
    assert several == logprobs == ["bypass", "bypass"]
    assert parallel == ["miss", "miss"]  # part of the key


async def test_a_stream_too_long_to_keep_whole_is_not_cached(fake_openai: FakeOpenAI) -> None:
    piece = 1024 * 1024
    text = "y" * (MAX_KEPT_CHARS + piece)
    fake_openai.enqueue(Reply(text, chunk_size=piece), Reply("short"))
    async with cached(fake_openai) as d:
        first = await collect(d.stream(ask()))
        second = await collect(d.stream(ask()))
    assert sum(len(c.delta) for c in first) == len(text)
    assert "".join(c.delta for c in second) == "short"  # asked upstream again, not a hit
    assert len(fake_openai.requests) == 2
