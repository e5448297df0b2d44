"""The routing engine end to end: model groups, rules, strategies with live health, breakers,
retry budgets, context-window and content-filter fallbacks, hedging and explanations — against
fake OpenAI servers over real HTTP."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, Response, RetryPolicy, RoutingRule
from llmdispatcher.errors import (
    ContextLengthExceeded,
    StreamInterrupted,
    VendorServerError,
    VendorUnavailable,
)
from llmdispatcher.settings.resilience import CircuitBreaker, RetryBudget
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.settings.rules import RoutingCondition
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, Reply, Stall
from tests.unit.echo_vendor import EchoVendor

HI = [{"role": "user", "content": "hi"}]


def vendors(a: FakeOpenAI, b: FakeOpenAI) -> list[object]:
    from llmdispatcher.vendors import OpenAIVendor

    return [
        OpenAIVendor(name=name, api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1")
        for name, fake in (("a", a), ("b", b))
    ]


def dispatcher(
    a: FakeOpenAI, b: FakeOpenAI, *, clock: FakeClock | None = None, **config: object
) -> Dispatcher:
    config.setdefault("retry_policy", RetryPolicy(max_retries=0))
    return Dispatcher(
        Config(**config),
        vendors=vendors(a, b),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
        rng=random.Random(3),
    )


GROUP = ModelGroup("chat", (Deployment("a", "model-a"), Deployment("b", "model-b")))


async def test_a_model_group_sends_each_deployment_its_own_model_name(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("server"))
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(GROUP,)) as d:
        response = await d.send(Request(model="chat", messages=HI))
    assert fake_openai.requests[-1].json["model"] == "model-a"
    assert fake_openai_b.requests[-1].json["model"] == "model-b"
    assert (response.vendor, response.routing.group, response.routing.strategy) == (
        "b",
        "chat",
        "priority",
    )
    assert [a.status for a in response.routing.attempts] == ["VendorServerError", "ok"]
    assert [c.deployment.id for c in response.routing.candidates] == ["a/model-a", "b/model-b"]


async def test_groups_come_from_the_config_file(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"""
model_groups:
  - name: chat
    strategy: weighted
    deployments:
      - {{vendor: a, model: model-a, weight: 0}}
      - {{vendor: b, model: model-b, weight: 5}}
    fallbacks: [spare]
  - name: spare
    deployments: [{{vendor: a, model: spare-a}}]
circuit_breaker: {{failure_threshold: 2, cooldown_s: 5}}
retry_budget: {{ratio: 0.5}}
vendors:
  a: {{type: openai, api_key: {FAKE_OPENAI_KEY}, base_url: "{fake_openai.url}/v1"}}
  b: {{type: openai, api_key: {FAKE_OPENAI_KEY}, base_url: "{fake_openai_b.url}/v1"}}
""")
    config = Config.from_file(path)
    assert config.circuit_breaker.failure_threshold == 2
    assert config.retry_budget.ratio == 0.5
    async with Dispatcher(config) as d:
        decision = await d.explain(Request(model="chat", messages=HI))
    assert [c.deployment.id for c in decision.candidates] == ["b/model-b", "a/model-a", "a/spare-a"]
    assert decision.strategy == "weighted"


async def test_rules_target_groups_deployments_and_strategies(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    cheap = ModelGroup(
        "cheap",
        (
            Deployment("a", "x", input_price=5, output_price=5),
            Deployment("b", "y", input_price=1, output_price=1),
        ),
    )
    rules = (
        RoutingRule(
            RoutingCondition(metadata={"tier": "free"}),
            group="cheap",
            strategy="cost",
            name="free-tier",
        ),
        RoutingRule(RoutingCondition(users=("vip",)), deployment="a/x", name="vip"),
    )
    async with dispatcher(
        fake_openai, fake_openai_b, model_groups=(cheap,), routing_rules=rules
    ) as d:
        free = await d.explain(Request(model="gpt-4o", messages=HI, metadata={"tier": "free"}))
        vip = await d.explain(Request(model="gpt-4o", messages=HI, user="vip"))
    assert (free.rule.name, free.strategy) == ("free-tier", "cost")  # type: ignore[union-attr]
    assert [c.deployment.id for c in free.candidates] == ["b/y", "a/x"]
    assert free.candidates[0].score is not None
    assert free.candidates[0].score < free.candidates[1].score  # type: ignore[operator]
    assert [c.deployment.id for c in vip.candidates] == ["a/x"]


async def test_group_fallback_chains(fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> None:
    first = ModelGroup("first", (Deployment("a", "m1"),), fallbacks=("second",))
    second = ModelGroup("second", (Deployment("a", "m2"),), fallbacks=("third",))
    third = ModelGroup("third", (Deployment("b", "m3"),), fallbacks=("first",))  # a cycle
    fake_openai.enqueue(Fail("server"), Fail("overloaded"))
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(first, second, third)) as d:
        response = await d.send(Request(model="first", messages=HI))
        stats = d.stats()
    assert [a.model for a in response.attempts] == ["m1", "m2", "m3"]
    assert response.vendor == "b"
    assert stats.fallbacks == 2


async def test_context_window_fallback_before_sending(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    small = ModelGroup(
        "small", (Deployment("a", "tiny", context_window=60),), context_window_fallbacks=("large",)
    )
    large = ModelGroup("large", (Deployment("b", "huge", context_window=100_000),))
    request = Request(
        model="small",
        max_tokens=20,
        messages=[{"role": "user", "content": "summarise this please " * 40}],
    )
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(small, large)) as d:
        response = await d.send(request)
        alone = Dispatcher(
            Config(model_groups=(ModelGroup("small", small.deployments),)),
            vendors=vendors(fake_openai, fake_openai_b),
        )
        with pytest.raises(ContextLengthExceeded, match="context window too small"):
            await alone.send(request)
    assert response.vendor == "b"
    assert "context window too small" in response.routing.excluded["a/tiny"]
    assert fake_openai.requests == []


async def test_context_window_fallback_after_the_vendor_refuses(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    small = ModelGroup("small", (Deployment("a", "tiny"),), context_window_fallbacks=("large",))
    large = ModelGroup("large", (Deployment("b", "huge"),))
    fake_openai.enqueue(Fail("context_length"))
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(small, large)) as d:
        response = await d.send(Request(model="small", messages=HI))
    assert [(a.model, a.status) for a in response.attempts] == [
        ("tiny", "ContextLengthExceeded"),
        ("huge", "ok"),
    ]


async def test_content_filter_fallback(fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> None:
    strict = ModelGroup("strict", (Deployment("a", "m"),), content_filter_fallbacks=("lenient",))
    lenient = ModelGroup("lenient", (Deployment("b", "m"),))
    fake_openai.enqueue(Reply(text="", finish="content_filter"))
    fake_openai_b.enqueue(Reply(text="an answer"))
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(strict, lenient)) as d:
        response = await d.send(Request(model="strict", messages=HI))
    assert (response.vendor, response.content) == ("b", "an answer")
    assert response.attempts[0].status == "InvalidRequestError"
    assert "content filter" in (response.attempts[0].error or "")


async def test_the_breaker_opens_excludes_then_probes_and_closes(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    clock = FakeClock()
    fake_openai.enqueue(*[Fail("server")] * 2)
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        clock=clock,
        model_groups=(GROUP,),
        circuit_breaker=CircuitBreaker(failure_threshold=2, cooldown_s=30),
    ) as d:
        for _ in range(2):
            assert (await d.send(Request(model="chat", messages=HI))).vendor == "b"
        assert d.breaker_state("a/model-a") == "open"
        blocked = await d.send(Request(model="chat", messages=HI))
        assert len(fake_openai.requests) == 2  # the open breaker kept the third one away
        assert "circuit breaker open" in blocked.routing.excluded["a/model-a"]
        clock.advance(31)
        assert d.breaker_state("a") == "half_open"
        probe = await d.send(Request(model="chat", messages=HI))
        assert probe.vendor == "a"
        assert d.breaker_state("a/model-a") == "closed"


async def test_with_every_breaker_open_one_request_goes_through_as_the_probe(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("server"))
    fake_openai_b.enqueue(Fail("server"))
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        model_groups=(GROUP,),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=10),
    ) as d:
        with pytest.raises(VendorUnavailable):
            await d.send(Request(model="chat", messages=HI))
        assert (d.breaker_state("a"), d.breaker_state("b")) == ("open", "open")
        decision = await d.explain(Request(model="chat", messages=HI))
        response = await d.send(Request(model="chat", messages=HI))  # the probe, not a 503
        assert d.breaker_state("a") == "closed"  # the probe succeeded: closed again
    assert (
        decision.excluded["a/model-a"] == "circuit breaker open for 10.0s more (VendorServerError)"
    )
    assert [c.deployment.id for c in decision.candidates] == ["a/model-a"]
    assert decision.candidates[0].probe
    assert response.vendor == "a"


async def test_a_429_pauses_its_deployment_without_opening_the_breaker(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    """``b`` asks for a 90 s pause while ``a``'s breaker is open: the pause is honoured (``b``
    gets nothing more) and ``a`` is probed instead of refusing every request for 90 s."""
    fake_openai.enqueue(Fail("server"), Fail("server"))
    fake_openai_b.enqueue(Fail("rate_limit", retry_after="90"))
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        model_groups=(GROUP,),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=10, probe_every_s=0),
    ) as d:
        with pytest.raises(VendorUnavailable):
            await d.send(Request(model="chat", messages=HI))
        assert d.breaker_state("b") == "closed"  # the vendor asked us to slow down: no fault
        decision = await d.explain(Request(model="chat", messages=HI))
        with pytest.raises(VendorUnavailable, match="a HTTP 500"):
            await d.send(Request(model="chat", messages=HI))  # b skipped, a probed: 500
        response = await d.send(Request(model="chat", messages=HI))  # the next probe: ok
    assert [(c.deployment.id, c.probe) for c in decision.candidates] == [
        ("b/model-b", False),  # paused: skipped (it comes first in case its pause ends)
        ("a/model-a", True),
    ]
    assert response.vendor == "a"
    assert len(fake_openai.requests) == 3
    assert len(fake_openai_b.requests) == 1  # nothing more was sent to the paused vendor


async def test_caller_errors_do_not_trip_the_breaker(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[Fail("bad_request")] * 3)
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        model_groups=(GROUP,),
        circuit_breaker=CircuitBreaker(failure_threshold=2),
    ) as d:
        for _ in range(3):
            with pytest.raises(Exception, match="invalid_request_error"):
                await d.send(Request(model="chat", messages=HI))
        assert d.breaker_state("a/model-a") == "closed"


async def test_the_retry_budget_turns_retries_into_fallbacks(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[Fail("server")] * 4)
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window_s=10)  # one retry per window
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        model_groups=(GROUP,),
        retry_policy=RetryPolicy(max_retries=3),
        retry_budget=budget,
    ) as d:
        first = await d.send(Request(model="chat", messages=HI))
        second = await d.send(Request(model="chat", messages=HI))
    assert [a.vendor for a in first.attempts] == ["a", "a", "b"]  # one retry, then budget spent
    assert [a.vendor for a in second.attempts] == ["a", "b"]  # no retry left in the window


async def test_hedging_starts_the_next_deployment_and_cancels_the_loser(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    hedged = ModelGroup("hedged", GROUP.deployments, hedge_after_s=0.1)
    fake_openai.enqueue(Stall(seconds=10))
    fake_openai_b.enqueue(Reply(text="the fast one"))
    async with Dispatcher(
        Config(model_groups=(hedged,)), vendors=vendors(fake_openai, fake_openai_b)
    ) as d:
        response = await d.send(Request(model="hedged", messages=HI))
        assert await fake_openai.wait_for_disconnect_async(2.0)  # the loser was hung up on
    assert (response.vendor, response.content) == ("b", "the fast one")
    assert [(a.vendor, a.status) for a in response.attempts] == [("a", "cancelled"), ("b", "ok")]


async def test_hedged_streams_race_to_the_first_token(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    hedged = ModelGroup("hedged", GROUP.deployments, hedge_after_s=0.1)
    fake_openai.enqueue(Stall(seconds=10))
    fake_openai_b.enqueue(Reply(text="streamed fast"))
    async with Dispatcher(
        Config(model_groups=(hedged,)), vendors=vendors(fake_openai, fake_openai_b)
    ) as d:
        chunks = [c async for c in d.stream(Request(model="hedged", messages=HI))]
        assert await fake_openai.wait_for_disconnect_async(2.0)
    assert "".join(c.delta for c in chunks) == "streamed fast"
    assert chunks[-1].routing.attempts[-1].vendor == "b"


async def test_no_hedge_when_the_first_answers_in_time(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    hedged = ModelGroup("hedged", GROUP.deployments, hedge_after_s=5.0)
    async with Dispatcher(
        Config(model_groups=(hedged,)), vendors=vendors(fake_openai, fake_openai_b)
    ) as d:
        response = await d.send(Request(model="hedged", messages=HI))
    assert response.vendor == "a"
    assert fake_openai_b.requests == []


async def test_explain_sends_nothing_and_says_why(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    group = ModelGroup(
        "chat",
        (Deployment("a", "m", context_window=10), Deployment("b", "m")),
        strategy="least_busy",
    )
    async with dispatcher(fake_openai, fake_openai_b, model_groups=(group,)) as d:
        decision = await d.explain(Request(model="chat", messages=HI, max_tokens=50))
    assert fake_openai.requests == fake_openai_b.requests == []
    assert decision.strategy == "least_busy"
    assert [c.deployment.id for c in decision.candidates] == ["b/m"]
    assert decision.excluded["a/m"].startswith("context window too small for a/m (")
    assert decision.reason == "model group 'chat'"


async def test_latency_routing_follows_the_fast_deployment_and_comes_back(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    group = ModelGroup("chat", GROUP.deployments, strategy="latency", exploration=0.25)
    async with Dispatcher(
        Config(model_groups=(group,)),
        vendors=vendors(fake_openai, fake_openai_b),
        rng=random.Random(1),
    ) as d:

        async def route(n: int) -> list[str]:
            return [(await d.send(Request(model="chat", messages=HI))).vendor for _ in range(n)]

        fake_openai.default = Reply(delay_s=0.05)  # "a" is slow, "b" fast
        first = await route(12)
        fake_openai.default = Reply()  # "a" recovers, and exploration lets it be seen ...
        fake_openai_b.default = Reply(delay_s=0.05)  # ... while "b" slows down
        later = await route(25)
    assert first[:2] == ["a", "b"]  # both unmeasured: each is measured once first
    assert first[2:].count("b") >= 8  # then the fast one takes the traffic
    assert later[-8:].count("a") >= 6  # and it comes back to "a" once "a" is fast again


class Scripted(EchoVendor):
    """An in-process vendor whose answers are scripted: (seconds to wait, error or None)."""

    def __init__(self, name: str, script: list[tuple[float, Exception | None]]) -> None:
        super().__init__(name)
        self.script = script

    async def send(self, request: Request) -> Response:
        wait, error = self.script.pop(0) if self.script else (0.0, None)
        await asyncio.sleep(wait)
        if error is not None:
            self.calls.append(request.model)
            raise error
        return await super().send(request)


def fault(vendor: str) -> VendorServerError:
    return VendorServerError("boom", vendor=vendor, status=500)


async def test_a_first_failure_before_the_hedge_delay_is_retried_normally() -> None:
    a = Scripted("a", [(0.0, fault("a")), (0.0, None)])
    b = Scripted("b", [])
    group = ModelGroup("g", (Deployment("a", "m"), Deployment("b", "m")), hedge_after_s=1.0)
    config = Config(model_groups=(group,), retry_policy=RetryPolicy(max_retries=2))
    async with Dispatcher(config, vendors=[a, b], clock=FakeClock()) as d:
        response = await d.send(Request(model="g", messages=HI))
    assert [(x.vendor, x.status) for x in response.attempts] == [
        ("a", "VendorServerError"),
        ("a", "ok"),
    ]
    assert b.calls == []


async def test_a_racer_that_fails_before_the_winner_is_recorded_and_frees_its_probe() -> None:
    a = Scripted("a", [(0.0, fault("a")), (0.3, fault("a"))])
    b = Scripted("b", [(0.0, None), (0.6, None)])
    group = ModelGroup("g", (Deployment("a", "m"), Deployment("b", "m")), hedge_after_s=0.1)
    clock = FakeClock()
    config = Config(
        model_groups=(group,),
        retry_policy=RetryPolicy(max_retries=0),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=5),
    )
    async with Dispatcher(config, vendors=[a, b], clock=clock) as d:
        await d.send(Request(model="g", messages=HI))  # a fails: its breaker opens
        clock.advance(6)  # half-open: the next request's try at "a" is the probe
        response = await d.send(Request(model="g", messages=HI))
        assert d.breaker_state("a/m") == "open"  # the failed probe reopened it, not stuck
    assert [(x.vendor, x.status) for x in response.attempts] == [
        ("a", "VendorServerError"),
        ("b", "ok"),
    ]
    assert d.stats().vendor_stats["a"].failures == 2


async def test_stopping_at_the_final_chunk_is_a_success(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    async with dispatcher(fake_openai, fake_openai_b) as d:
        stream = d.stream(Request(model="m", messages=HI))
        async for chunk in stream:
            if chunk.finish_reason:
                break
        await stream.aclose()  # type: ignore[attr-defined]  # what `break` leads to, at once
        stats = d.stats()
    assert (stats.successful_requests, stats.failed_requests) == (1, 0)
    assert stats.vendor_stats["a"].failures == 0


async def test_streams_breaking_after_their_first_token_trip_the_breaker(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(*[BreakStream(after_chunks=1)] * 2)
    async with dispatcher(
        fake_openai,
        fake_openai_b,
        model_groups=(GROUP,),
        circuit_breaker=CircuitBreaker(failure_threshold=2),
    ) as d:
        for _ in range(2):
            with pytest.raises(StreamInterrupted):
                async for _chunk in d.stream(Request(model="chat", messages=HI)):
                    pass
        assert d.breaker_state("a/model-a") == "open"


async def test_p90_hedging_of_sends_uses_whole_answer_times_not_first_tokens() -> None:
    a = Scripted("a", [(0.05, None)] * 12)
    b = Scripted("b", [])
    group = ModelGroup("g", (Deployment("a", "m"), Deployment("b", "m")), hedge_after_s="p90")
    async with Dispatcher(Config(model_groups=(group,)), vendors=[a, b]) as d:
        async for _chunk in d.stream(Request(model="g", messages=HI)):  # a fast first token
            pass
        for _ in range(10):
            await d.send(Request(model="g", messages=HI))
    assert b.calls == []  # no send was hedged against the stream's tiny time to first token


async def test_the_cost_strategy_reads_the_price_table() -> None:
    """Deployments without prices of their own are ranked by the shipped price table: the
    cheaper model first, whatever the listed order (before, both counted as unpriced)."""
    group = ModelGroup(
        "chat",
        (Deployment("a", "gpt-4o"), Deployment("b", "gpt-4o-mini"), Deployment("a", "no-such")),
        strategy="cost",
    )
    vendors = [OpenAIVendor(name=n, api_key="sk-test-0123456789") for n in ("a", "b")]
    async with Dispatcher(Config(model_groups=(group,)), vendors=vendors) as d:
        decision = await d.explain(Request(model="chat", messages=HI, max_tokens=100))
    assert [c.deployment.id for c in decision.candidates] == [
        "b/gpt-4o-mini", "a/gpt-4o", "a/no-such",
    ]  # fmt: skip
    cheap, dear, unknown = (c.score for c in decision.candidates)
    assert cheap is not None
    assert dear is not None
    assert 0 < cheap < dear / 10  # gpt-4o-mini is about 16x cheaper per token
    assert unknown is None  # no row: after every priced one
