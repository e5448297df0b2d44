"""The Responses API with no key at all: the gateway in front of ``Dispatcher.from_env()``,
which answers with the built-in local model (SmolLM2-135M, in-process), the official openai
SDK as the client."""

from __future__ import annotations

import os

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher
from llmdispatcher.gateway.app import create_app
from llmdispatcher.local_models import smollm2_path

pytestmark = pytest.mark.skipif(
    smollm2_path() is None and not os.environ.get("CI"), reason="local model package not installed"
)
QUESTION = "What is the capital of France? Answer in one sentence."


async def test_local_model_answers_and_streams_with_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in list(os.environ):
        if var.startswith(("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA")):
            monkeypatch.delenv(var)
    async with Dispatcher.from_env() as dispatcher:
        assert list(dispatcher.vendors) == ["llamacpp", "local-embed"]  # the built-in models
        client = TestClient(TestServer(create_app(dispatcher)))
        await client.start_server()
        base = str(client.make_url("/v1"))
        try:
            async with openai.AsyncOpenAI(base_url=base, api_key="-", max_retries=0) as sdk:
                first = await sdk.responses.create(
                    model="local", input=QUESTION, max_output_tokens=30, temperature=0
                )
                async with sdk.responses.stream(
                    model="local",
                    input="And of Italy?",
                    previous_response_id=first.id,
                    max_output_tokens=30,
                    temperature=0,
                ) as stream:
                    second = await stream.get_final_response()
        finally:
            await client.close()
    assert "Paris" in first.output_text
    assert first.usage is not None
    assert first.usage.output_tokens > 0
    assert second.output_text
    assert second.status in ("completed", "incomplete")
