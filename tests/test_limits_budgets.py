"""Rate limits and budgets through the dispatcher: reserve the worst case, settle the real
usage, skip to the next candidate or wait, honour the vendor's own headers, share state."""

from __future__ import annotations

import asyncio

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Limits, Request, RetryPolicy
from llmdispatcher.budgets import Budget
from llmdispatcher.errors import BudgetExceeded, RateLimitError
from llmdispatcher.limits import MAX_VENDOR_DELAY_S
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.vendors import AnthropicVendor, OpenAIVendor, Vendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.fixtures_anthropic import FAKE_ANTHROPIC_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, Stall
from tests.fakes.server import FakeServer

HI = [{"role": "user", "content": "hi"}]


def vendor(fake: FakeOpenAI, name: str = "a", **limits: int) -> OpenAIVendor:
    return OpenAIVendor(
        name=name, api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1", limits=Limits(**limits)
    )


def ask(max_tokens: int = 20, **kwargs: object) -> Request:
    return Request(model="gpt-4o-mini", messages=HI, max_tokens=max_tokens, **kwargs)  # type: ignore[arg-type]


def config(**kwargs: object) -> Config:
    kwargs.setdefault("retry_policy", RetryPolicy(max_retries=0))
    return Config(**kwargs)  # type: ignore[arg-type]


async def test_rpm_refuses_locally_and_says_which_limit(fake_openai: FakeOpenAI) -> None:
    async with Dispatcher(config(), vendors=[vendor(fake_openai, rpm=2)], clock=FakeClock()) as d:
        await d.send(ask())
        await d.send(ask())
        with pytest.raises(RateLimitError) as caught:
            await d.send(ask())
    assert len(fake_openai.requests) == 2  # the third never left
    assert caught.value.error_type == "local_rate_limit"
    assert caught.value.error_code == "rpm"
    assert "rpm of vendor:a" in str(caught.value)
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


async def test_over_a_limit_the_next_candidate_takes_it(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    vendors = [vendor(fake_openai, rpm=1), vendor(fake_openai_b, "b")]
    async with Dispatcher(config(fallback_vendors=("b",)), vendors=vendors, clock=FakeClock()) as d:
        first = await d.send(ask())
        second = await d.send(ask())
        stats = d.stats()
    assert (first.vendor, second.vendor) == ("a", "b")
    assert second.attempts[0].status == "LocalRateLimited"
    assert stats.vendor_stats["a"].failures == 1


async def test_tokens_reserve_the_worst_case_then_settle_the_real_usage(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(*[Reply(prompt_tokens=9, completion_tokens=12)] * 3)
    async with Dispatcher(config(), vendors=[vendor(fake_openai, tpm=450)], clock=FakeClock()) as d:
        await d.send(ask(max_tokens=400))  # reserves ~410, settles 21
        await d.send(ask(max_tokens=400))  # so this one fits: 21 + ~410 <= 450
        both = await asyncio.gather(
            d.send(ask(max_tokens=400)), d.send(ask(max_tokens=400)), return_exceptions=True
        )
    refused = [r for r in both if isinstance(r, RateLimitError)]
    assert len(refused) == 1  # two worst cases at once do not fit
    assert "tpm" in str(refused[0])
    assert len(fake_openai.requests) == 3


async def test_waits_for_the_window_when_allowed(fake_openai: FakeOpenAI) -> None:
    clock = FakeClock(wall_start=1_750_000_000.0)  # 40 s into a minute: 20 s before the next
    async with Dispatcher(
        config(rate_limit_wait_s=120, timeout=300),
        vendors=[vendor(fake_openai, rpm=1)],
        clock=clock,
    ) as d:
        await d.send(ask())
        second = await d.send(ask())
    assert second.vendor == "a"
    assert clock.sleeps == [pytest.approx(20.0, abs=0.5)]
    assert len(fake_openai.requests) == 2


async def test_max_concurrency_counts_requests_in_flight(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=0.3), Reply())
    async with Dispatcher(config(), vendors=[vendor(fake_openai, max_concurrency=1)]) as d:
        slow = asyncio.create_task(d.send(ask()))
        assert await asyncio.to_thread(fake_openai.wait_for_requests, 1)  # the slow one is in
        with pytest.raises(RateLimitError, match="max_concurrency"):
            await d.send(ask())
        await slow
        assert (await d.send(ask())).vendor == "a"  # the slot came back


async def test_deployment_limits_in_a_group(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    group = ModelGroup("chat", (Deployment("a", "m", rpm=1), Deployment("b", "m")))
    async with Dispatcher(
        config(model_groups=(group,)),
        vendors=[vendor(fake_openai), vendor(fake_openai_b, "b")],
        clock=FakeClock(),
    ) as d:
        answers = [(await d.send(Request(model="chat", messages=HI))).vendor for _ in range(3)]
    assert answers == ["a", "b", "b"]


async def test_the_vendors_own_headers_slow_us_down_before_a_429(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"})
    )
    async with Dispatcher(
        config(), vendors=[vendor(fake_openai, rpm=1000)], clock=FakeClock()
    ) as d:
        await d.send(ask())
        with pytest.raises(RateLimitError, match="vendor"):
            await d.send(ask())
    assert len(fake_openai.requests) == 1


def anthropic(fake: FakeServer) -> Vendor:
    return AnthropicVendor(api_key=FAKE_ANTHROPIC_KEY, base_url=fake.url, limits=Limits(rpm=1000))


# "None left until the end of time", as each vendor writes it.
ENDLESS_RESETS = {
    "openai": (
        "fake_openai",
        lambda fake: vendor(fake, rpm=1000),
        "gpt-4o",
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "999999999h"},
    ),
    "anthropic": (
        "fake_anthropic",
        anthropic,
        "claude-sonnet-4-6",
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "9999-12-31T23:59:59Z",
        },
    ),
}


@pytest.mark.parametrize("which", list(ENDLESS_RESETS))
async def test_a_vendors_reset_header_shuts_us_out_for_an_hour_at_most(
    which: str, request: pytest.FixtureRequest
) -> None:
    fixture, build, model, headers = ENDLESS_RESETS[which]
    fake: FakeServer = request.getfixturevalue(fixture)
    fake.enqueue(Reply(headers=headers), Reply(text="open again"))
    clock, hi = FakeClock(), Request(model=model, messages=HI, max_tokens=20)
    async with Dispatcher(config(), vendors=[build(fake)], clock=clock) as d:
        await d.send(hi)
        with pytest.raises(RateLimitError, match="vendor"):
            await d.send(hi)
        clock.advance(MAX_VENDOR_DELAY_S)
        assert (await d.send(hi)).content == "open again"
    assert len(fake.requests) == 2


async def test_a_budget_refuses_before_sending(fake_openai: FakeOpenAI) -> None:
    budgets = (Budget("user:alice", "0.001", "day"),)
    async with Dispatcher(
        config(budgets=budgets), vendors=[vendor(fake_openai)], clock=FakeClock()
    ) as d:
        await d.send(ask(user="bob", max_tokens=4000))  # bob has no budget
        with pytest.raises(BudgetExceeded) as caught:
            await d.send(ask(user="alice", max_tokens=4000))  # worst case > $0.001
    assert len(fake_openai.requests) == 1
    error = caught.value
    assert error.remaining == error.budget.limit_usd  # type: ignore[attr-defined]
    assert error.requested > error.remaining
    assert "user:alice" in str(error)
    assert "remaining $0.001" in str(error)


async def test_budgets_count_the_real_cost_afterwards(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(*[Reply(prompt_tokens=10_000, completion_tokens=10_000)] * 5)
    budgets = (Budget("global", "0.02", "total"),)  # gpt-4o-mini: ~$0.0075 per request here
    async with Dispatcher(config(budgets=budgets), vendors=[vendor(fake_openai)]) as d:
        answered = 0
        with pytest.raises(BudgetExceeded):
            for _ in range(5):
                await d.send(ask(max_tokens=10))
                answered += 1
    # The third fit by its worst case (a short prompt, max_tokens 10); the fake billed it far
    # more, so spend passed $0.02 and the fourth was refused before it was sent.
    assert answered == 3
    assert len(fake_openai.requests) == 3


async def test_two_dispatchers_share_limits_through_redis(
    fake_openai: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    url = f"{redis_url}?prefix={redis_prefix}"
    first = Dispatcher(config(state_url=url), vendors=[vendor(fake_openai, rpm=3)])
    second = Dispatcher(config(state_url=url), vendors=[vendor(fake_openai, rpm=3)])
    try:
        results = await asyncio.gather(
            *(d.send(ask()) for d in (first, second) * 3), return_exceptions=True
        )
    finally:
        await first.aclose()
        await second.aclose()
    refused = [r for r in results if isinstance(r, RateLimitError)]
    assert len(results) - len(refused) == 3  # the two replicas together admitted exactly 3
    assert len(fake_openai.requests) == 3


async def test_three_replicas_on_redis_stay_within_a_tpm_limit_and_a_budget(
    fake_openai: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    """Three dispatchers, one Redis, 90 concurrent requests: admitted tokens and spend stay
    within the limits exactly, because every reservation is an atomic check-and-add of the worst
    case and the vendor's real usage (21 tokens) is never above it (tolerance: zero)."""
    fake_openai.default = Reply(prompt_tokens=9, completion_tokens=12)
    url = f"{redis_url}?prefix={redis_prefix}"
    tpm, budget_usd = 2_000, "0.0004"
    clock = FakeClock()  # one minute window for the whole run
    replicas = [
        Dispatcher(
            config(state_url=url, budgets=(Budget("global", budget_usd, "day"),)),
            vendors=[vendor(fake_openai, tpm=tpm)],
            clock=clock,
        )
        for _ in range(3)
    ]
    try:
        results = await asyncio.gather(
            *(d.send(ask(max_tokens=100)) for d in replicas * 30), return_exceptions=True
        )
    finally:
        for d in replicas:
            await d.aclose()
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimitError | BudgetExceeded)]
    assert len(answered) + len(refused) == 90
    assert answered  # a good share got through ...
    assert refused  # ... and the limits did bite
    assert sum(r.usage.total_tokens for r in answered) <= tpm
    assert sum(r.cost_usd or 0 for r in answered) <= float(budget_usd)
    assert len(fake_openai.requests) == len(answered)
