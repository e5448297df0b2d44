"""llama.cpp's server (``LlamaCppVendor``) and ``OpenAICompatibleVendor`` presets, through the
Dispatcher, against the fake llama-server and the fake OpenAI server (as a generic host)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmdispatcher import (
    CircuitBreaker,
    Config,
    Dispatcher,
    FakeClock,
    Request,
    RetryPolicy,
    StreamChunk,
    Usage,
)
from llmdispatcher.config_file import load_config
from llmdispatcher.errors import (
    AuthenticationError,
    ConfigError,
    ContextLengthExceeded,
    DispatcherError,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    StreamInterrupted,
    VendorError,
    VendorServerError,
    VendorTimeout,
)
from llmdispatcher.limits import MAX_VENDOR_DELAY_S
from llmdispatcher.vendors import OpenAIVendor, Vendor, vendor_class
from llmdispatcher.vendors.llamacpp import LlamaCppVendor, LlamaServerVendor
from llmdispatcher.vendors.openai_compatible import PRESETS, OpenAICompatibleVendor, Preset
from tests.fakes.fixtures_openai_family import FAKE_LLAMACPP_KEY as KEY
from tests.fakes.llamacpp_fake import DEFAULT_ALIAS, FakeLlamaServer, adapter_for
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-fake-0123456789"  # the key of the shared fake_openai fixture
HELLO = Request(model="local", messages=[{"role": "user", "content": "Say hello"}])
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
PRESET_ENV = ("GROQ_API_KEY", "MISTRAL_API_KEY", "VLLM_API_KEY", "LLAMA_API_KEY")


def dispatcher(*vendors: Vendor, clock: FakeClock | None = None) -> Dispatcher:
    policy = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8)
    return Dispatcher(
        Config(retry_policy=policy),
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(3),
    )


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PRESET_ENV, "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# ============================================================================ llama.cpp server
@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_root_or_v1_url_reach_the_same_routes(
    fake_llamacpp: FakeLlamaServer, suffix: str
) -> None:
    vendor = LlamaCppVendor(fake_llamacpp.url + suffix, api_key=KEY)
    async with dispatcher(vendor) as d:
        await d.send(HELLO)
        health = await vendor.health()
        models = await vendor.list_models()
    assert (vendor.name, vendor.base_url) == ("llamacpp", fake_llamacpp.url + "/v1")
    assert [r.path for r in fake_llamacpp.requests] == [
        "/v1/chat/completions",
        "/health",
        "/v1/models",
    ]
    assert (health.ok, models) == (True, [DEFAULT_ALIAS])


async def test_send_translates_for_llama_server(fake_llamacpp: FakeLlamaServer) -> None:
    fake_llamacpp.enqueue(Reply(text="Hi", prompt_tokens=8, completion_tokens=2, cached_tokens=5))
    request = Request(
        model="local",
        messages=HELLO.messages,
        max_tokens=64,
        temperature=0.1,
        response_format={"type": "json_object"},
        extra={"cache_prompt": True, "top_k": 20},
    )
    async with dispatcher(adapter_for(fake_llamacpp)) as d:
        response = await d.send(request)
    body = fake_llamacpp.last_request.json
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    assert (body["cache_prompt"], body["top_k"], body["temperature"]) == (True, 20, 0.1)
    assert fake_llamacpp.last_request.headers["authorization"] == f"Bearer {KEY}"
    assert (response.content, response.model, response.vendor) == ("Hi", "local", "llamacpp")
    assert response.usage == Usage(8, 2, 10)
    assert response.raw["timings"]["cache_n"] == 5  # timings stay in raw


async def test_stream_with_usage_and_streamed_tool_calls(fake_llamacpp: FakeLlamaServer) -> None:
    specs = [ToolCallSpec("f", {"city": "Paris"}), ToolCallSpec("f", {"n": [1, 2]})]
    fake_llamacpp.enqueue(
        Reply(text="Local stream.", chunk_size=3, prompt_tokens=6, completion_tokens=5),
        Reply(text="", tool_calls=specs, finish="tool_calls", chunk_size=3),
    )
    async with dispatcher(adapter_for(fake_llamacpp)) as d:
        text_chunks = await collect(d.stream(HELLO))
        tool_chunks = await collect(
            d.stream(Request(model="local", messages=HELLO.messages, tools=[TOOL]))
        )
    *body, last = text_chunks
    assert "".join(c.delta for c in body) == "Local stream."
    assert (last.finish_reason, last.usage) == ("stop", Usage(6, 5, 11))
    joined: dict[int, str] = {}
    for chunk in tool_chunks:
        for delta in chunk.tool_call_deltas:
            joined[delta.index] = joined.get(delta.index, "") + delta.arguments
    assert [json.loads(v) for v in joined.values()] == [{"city": "Paris"}, {"n": [1, 2]}]
    assert tool_chunks[-1].finish_reason == "tool_calls"


async def test_no_key_means_no_authorization_header(
    fake_llamacpp: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_llamacpp.api_key = None
    async with dispatcher(LlamaCppVendor(fake_llamacpp.url)) as d:
        await d.send(HELLO)
    assert "authorization" not in fake_llamacpp.last_request.headers
    monkeypatch.setenv("LLAMA_API_KEY", KEY)  # the variable llama-server reads for --api-key
    vendor = LlamaCppVendor(fake_llamacpp.url)
    assert isinstance(vendor, LlamaServerVendor)
    assert vendor.credential_headers() == {"Authorization": f"Bearer {KEY}"}
    assert LlamaServerVendor.from_env() is None  # no documented variable names the server


LLAMA_ERROR_TYPES = {
    "context_length": "exceed_context_size_error",
    "overloaded": "unavailable_error",
    "server": "server_error",
    "auth": "authentication_error",
    "not_found": "not_found_error",
    "bad_request": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "timeout": "server_error",
}


@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("context_length", ContextLengthExceeded, False),
        ("overloaded", VendorServerError, True),
        ("server", VendorServerError, True),
        ("auth", AuthenticationError, False),
        ("not_found", ModelNotFound, False),
        ("bad_request", InvalidRequestError, False),
        ("rate_limit", RateLimitError, True),
        ("timeout", VendorTimeout, True),
    ],
)
async def test_llama_errors_map_to_the_tree(
    fake_llamacpp: FakeLlamaServer, kind: str, error: type[VendorError], retryable: bool
) -> None:
    fake_llamacpp.enqueue(Fail(kind))
    vendor = adapter_for(fake_llamacpp)
    with pytest.raises(error) as caught:
        await vendor.send(HELLO)
    await vendor.aclose()
    assert type(caught.value) is error
    assert caught.value.retryable is retryable
    assert caught.value.error_type == LLAMA_ERROR_TYPES[kind]


async def test_a_loading_server_is_retried_and_unhealthy(fake_llamacpp: FakeLlamaServer) -> None:
    vendor = adapter_for(fake_llamacpp)
    fake_llamacpp.loading = True
    health = await vendor.health()
    fake_llamacpp.loading = False
    fake_llamacpp.enqueue(Fail("overloaded", retry_after="2"), Reply(text="loaded now"))
    clock = FakeClock()
    async with dispatcher(vendor, clock=clock) as d:
        response = await d.send(HELLO)
    assert not health.ok
    assert "Loading model" in health.detail
    assert response.content == "loaded now"
    assert clock.sleeps == [2.0]


async def test_wrong_key_is_an_authentication_error(fake_llamacpp: FakeLlamaServer) -> None:
    wrong = "llama-wrong-key-000000000"
    async with dispatcher(LlamaCppVendor(fake_llamacpp.url, api_key=wrong)) as d:
        with pytest.raises(AuthenticationError) as caught:
            await d.send(HELLO)
    assert (caught.value.status, caught.value.error_code) == (401, "401")
    assert wrong not in str(caught.value)


async def test_llama_mid_stream_failures(fake_llamacpp: FakeLlamaServer) -> None:
    fake_llamacpp.enqueue(
        MidStreamError(after_chunks=0),
        BreakStream(after_chunks=0),
        Reply(text="third"),
        MidStreamError(text="abcdefgh", after_chunks=1, chunk_size=4),
    )
    async with dispatcher(adapter_for(fake_llamacpp)) as d:
        retried = await collect(d.stream(HELLO))
        with pytest.raises(StreamInterrupted) as caught:
            await collect(d.stream(HELLO))
    assert "".join(c.delta for c in retried) == "third"
    assert caught.value.partial_text == "abcd"
    assert len(fake_llamacpp.requests) == 4


# =============================================================================== presets
def test_presets_are_data() -> None:
    expected = {
        "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY", "max_completion_tokens", True),
        "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY", "max_tokens", False),
        "deepseek": ("https://api.deepseek.com", "DEEPSEEK_API_KEY", "max_tokens", True),
        "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY", "max_tokens", True),
        "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "max_tokens", False),
        "fireworks": (
            "https://api.fireworks.ai/inference/v1",
            "FIREWORKS_API_KEY",
            "max_tokens",
            True,
        ),
        "vllm": ("http://127.0.0.1:8000/v1", "VLLM_API_KEY", "max_tokens", True),
        "lmstudio": ("http://127.0.0.1:1234/v1", None, "max_tokens", True),
    }
    got = {
        name: (p.base_url, p.api_key_env, p.max_tokens_field, p.stream_usage)
        for name, p in PRESETS.items()
    }
    assert got == expected
    local = {name for name, p in PRESETS.items() if not p.requires_api_key}
    assert local == {"vllm", "lmstudio"}


async def test_groq_preset_against_a_compatible_server(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", OPENAI_KEY)
    vendor = OpenAICompatibleVendor(name="groq", preset="groq", base_url=fake_openai.url + "/v1")
    request = Request(model="gpt-4o", messages=HELLO.messages, max_tokens=20)
    async with dispatcher(vendor) as d:
        await d.send(request)
        chunks = await collect(d.stream(request))
    sent, streamed = fake_openai.requests
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.json["max_completion_tokens"] == 20
    assert streamed.json["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage == Usage(9, 12, 21)


async def test_mistral_preset_sends_no_stream_options(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", OPENAI_KEY)
    vendor = OpenAICompatibleVendor(
        name="mistral", preset="mistral", base_url=fake_openai.url + "/v1"
    )
    async with dispatcher(vendor) as d:
        chunks = await collect(
            d.stream(Request(model="gpt-4o", messages=HELLO.messages, max_tokens=9))
        )
    body = fake_openai.last_request.json
    assert "stream_options" not in body
    assert (body["stream"], body["max_tokens"]) == (True, 9)
    assert "".join(c.delta for c in chunks) == "Hello from the fake"


async def test_explicit_settings_override_the_preset(fake_llamacpp: FakeLlamaServer) -> None:
    fake_llamacpp.api_key = None
    vendor = OpenAICompatibleVendor(
        name="box",
        preset=replace(
            PRESETS["groq"],
            requires_api_key=False,
            max_tokens_field="n_predict",
            stream_usage=False,
        ),
        base_url=fake_llamacpp.url + "/v1",
    )
    async with dispatcher(vendor) as d:
        await collect(d.stream(Request(model="m", messages=HELLO.messages, max_tokens=5)))
    body = fake_llamacpp.last_request.json
    assert (body["n_predict"], "stream_options" in body) == (5, False)
    assert "authorization" not in fake_llamacpp.last_request.headers


async def test_local_presets_need_no_key(fake_llamacpp: FakeLlamaServer) -> None:
    fake_llamacpp.api_key = None
    vendor = OpenAICompatibleVendor(name="vllm", preset="vllm", base_url=fake_llamacpp.url + "/v1")
    async with dispatcher(vendor) as d:
        response = await d.send(Request(model="m", messages=HELLO.messages))
        assert await vendor.list_models() == [DEFAULT_ALIAS]
    assert response.content == "Hello from the fake"
    assert "authorization" not in fake_llamacpp.last_request.headers


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"preset": "groq"}, "GROQ_API_KEY is not set"),
        ({"preset": "nope"}, "unknown preset 'nope'; expected one of groq, mistral"),
        ({}, "pass base_url="),
        (
            {"preset": Preset(base_url="https://x/v1", requires_api_key=True)},
            r"the API key is not set: export it, or set api_key",
        ),
    ],
)
def test_configuration_errors(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        OpenAICompatibleVendor(name="v", **kwargs)


def test_compatible_vendor_ignores_openai_env_and_is_not_auto_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-proxy.invalid/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-not-for-groq")
    vendor = OpenAICompatibleVendor(name="lm", preset="lmstudio")
    assert vendor.base_url == "http://127.0.0.1:1234/v1"
    assert vendor.credential_headers() == {}
    assert OpenAICompatibleVendor.from_env() is None


async def test_a_yaml_config_builds_preset_vendors(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", OPENAI_KEY)
    path = tmp_path / "dispatcher.yaml"
    path.write_text(
        "vendors:\n"
        f"  groq: {{type: openai_compatible, preset: groq, base_url: '{fake_openai.url}/v1'}}\n"
        f"  box: {{type: llamacpp, base_url: 'http://127.0.0.1:1/v1', timeout: 5}}\n"
    )
    async with Dispatcher(load_config(path)) as d:
        response = await d.send(Request(model="gpt-4o", messages=HELLO.messages, vendor="groq"))
        vendors = d.vendors
    assert response.vendor == "groq"
    assert isinstance(vendors["groq"], OpenAICompatibleVendor)
    assert isinstance(vendors["box"], LlamaServerVendor)
    assert vendor_class("openai_compatible") is OpenAICompatibleVendor
    bad = tmp_path / "bad.yaml"
    bad.write_text("vendors:\n  g: {type: openai_compatible, preset: groq, stream_usage: 3}\n")
    with pytest.raises(ConfigError, match=r"vendors.g.stream_usage: expected true or false"):
        load_config(bad)


@pytest.mark.parametrize("retry_after", ["inf", "1e9", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_a_huge_retry_after_opens_the_breaker_for_an_hour_not_forever(
    fake_openai: FakeOpenAI, retry_after: str
) -> None:
    clock = FakeClock()
    config = Config(
        retry_policy=RetryPolicy(max_retries=0),
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown_s=30.0),
    )
    fake_openai.enqueue(Fail("server", retry_after=retry_after), Reply(text="back again"))
    vendor = OpenAIVendor(api_key=OPENAI_KEY, base_url=fake_openai.url + "/v1")
    request = Request(model="gpt-4o", messages=HELLO.messages)
    async with Dispatcher(config, vendors=[vendor], clock=clock) as d:
        with pytest.raises(DispatcherError):
            await d.send(request)
        clock.advance(MAX_VENDOR_DELAY_S - 1)
        with pytest.raises(DispatcherError):  # still open: nothing is sent
            await d.send(request)
        assert len(fake_openai.requests) == 1
        clock.advance(1)
        assert (await d.send(request)).content == "back again"
