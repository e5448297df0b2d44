"""An in-process gateway in front of the fake OpenAI, Anthropic, Gemini and Ollama servers:
``claude-*`` goes to Anthropic, ``gemini-*`` to Gemini, ``llama*`` to Ollama, the rest to
OpenAI. For the drop-in fidelity tests (the official SDKs and the frameworks on top of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from llmdispatcher import Config, Dispatcher, RoutingCondition, RoutingRule
from llmdispatcher.gateway.app import create_app
from tests.fakes import anthropic_fake, gemini_fake, ollama_fake, openai_fake
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import FakeOpenAI


def _rule(vendor: str, pattern: str) -> RoutingRule:
    return RoutingRule(vendor=vendor, condition=RoutingCondition(model_pattern=pattern))


@pytest.fixture
async def mixed_gateway(
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    fake_ollama: FakeOllama,
) -> AsyncIterator[str]:
    """The gateway's base URL (no key needed)."""
    config = Config(
        default_vendor="openai",
        routing_rules=(
            _rule("anthropic", "claude-*"),
            _rule("google", "gemini-*"),
            _rule("ollama", "llama*"),
        ),
    )
    vendors = [
        openai_fake.adapter_for(fake_openai, name="openai"),
        anthropic_fake.adapter_for(fake_anthropic, name="anthropic"),
        gemini_fake.adapter_for(fake_gemini, name="google"),
        ollama_fake.adapter_for(fake_ollama, name="ollama"),
    ]
    dispatcher = Dispatcher(config, vendors=vendors)
    server = TestServer(create_app(dispatcher), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await dispatcher.aclose()
