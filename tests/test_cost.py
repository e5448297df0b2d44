"""Cost on every answer: Response.cost_usd and the last StreamChunk.cost_usd, from the shipped
price table (or a config override, or a deployment's own prices), cached tokens included."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from llmdispatcher import Config, Dispatcher, Request, Usage
from llmdispatcher.errors import ConfigError
from llmdispatcher.pricing import cost_for
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply

USAGE = Reply(prompt_tokens=1000, completion_tokens=500, cached_tokens=200, reasoning_tokens=0)


def openai(fake: FakeOpenAI) -> OpenAIVendor:
    return OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1")


def ask(model: str) -> Request:
    return Request(model=model, messages=[{"role": "user", "content": "hi"}])


async def test_send_and_stream_carry_the_table_cost(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(USAGE, USAGE)
    expected = cost_for("openai", "gpt-4o-mini", Usage(1000, 500, 1500, cached_tokens=200))
    assert expected is not None
    assert expected > 0
    async with Dispatcher(vendors=[openai(fake_openai)]) as d:
        sent = await d.send(ask("gpt-4o-mini"))
        chunks = [c async for c in d.stream(ask("gpt-4o-mini"))]
    assert sent.cost_usd == float(expected)
    assert chunks[-1].cost_usd == float(expected)
    assert all(c.cost_usd is None for c in chunks[:-1])
    # cached tokens are cheaper than fresh ones: the same usage without a cache costs more
    uncached = cost_for("openai", "gpt-4o-mini", Usage(1000, 500, 1500))
    assert uncached is not None
    assert uncached > expected


async def test_an_unknown_model_costs_none_and_warns_once(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmdispatcher")
    async with Dispatcher(vendors=[openai(fake_openai)]) as d:
        first = await d.send(ask("my-own-finetune"))
        second = await d.send(ask("my-own-finetune"))
    assert first.cost_usd is None
    assert second.cost_usd is None
    warnings = [r for r in caplog.records if "my-own-finetune" in r.getMessage()]
    assert len(warnings) == 1


async def test_config_prices_override_the_table(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(USAGE)
    config = Config(
        prices={
            "openai": {
                "my-own-finetune": {
                    "input": 2.0,
                    "output": 10.0,
                    "cached_input": 1.0,
                    "as_of": "2026-11-01",
                }
            }
        }
    )
    async with Dispatcher(config, vendors=[openai(fake_openai)]) as d:
        response = await d.send(ask("my-own-finetune"))
    assert response.cost_usd == float(
        (Decimal(800) * 2 + Decimal(200) * 1 + Decimal(500) * 10) / 1_000_000
    )


def test_a_bad_price_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"prices\.openai\.x"):
        Dispatcher(Config(prices={"openai": {"x": {"input": "cheap"}}}))


async def test_a_deployment_price_wins(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(USAGE)
    group = ModelGroup(
        "g", (Deployment("openai", "gpt-4o-mini", input_price=1.0, output_price=3.0),)
    )
    async with Dispatcher(Config(model_groups=(group,)), vendors=[openai(fake_openai)]) as d:
        response = await d.send(ask("g"))
    assert response.cost_usd == (1000 * 1.0 + 500 * 3.0) / 1_000_000
