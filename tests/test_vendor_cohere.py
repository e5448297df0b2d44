"""CohereVendor beyond the behaviour suite: Cohere's own knobs, failed finishes, its statuses,
the model list and registration from the variables the cohere SDK reads. Also the same
registration for Mistral and the two from a config file."""

from __future__ import annotations

from typing import Any

import pytest

from llmdispatcher import Config, Dispatcher, Request
from llmdispatcher.config_file import config_from_mapping
from llmdispatcher.errors import AuthenticationError, ConfigError, VendorServerError
from llmdispatcher.vendors import type_of, vendor_class
from llmdispatcher.vendors.cohere import CohereVendor
from llmdispatcher.vendors.mistral import MistralVendor
from tests.fakes.cohere_fake import FakeCohere, adapter_for
from tests.fakes.fixtures_more_vendors import FAKE_COHERE_KEY
from tests.fakes.script import Fail, MidStreamError, Reply

MODEL = "command-a-03-2025"
ASK: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
]


async def send(fake: FakeCohere, request: Request) -> Any:
    vendor = adapter_for(fake)
    try:
        return await vendor.send(request)
    finally:
        await vendor.aclose()


async def test_knobs_in_cohere_names(fake_cohere: FakeCohere) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = Request(
        model=MODEL,
        messages=ASK,
        top_p=1.0,
        stop="END",
        user="alice",
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "b"}},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        extra={"seed": 3, "safety_mode": "STRICT"},
    )
    await send(fake_cohere, request)
    sent = fake_cohere.last_request.json
    assert sent["p"] == 0.99  # Cohere refuses 1.0
    assert sent["stop_sequences"] == ["END"]
    assert "user" not in sent
    # a named function: REQUIRED with only that tool offered
    assert (sent["tool_choice"], [t["function"]["name"] for t in sent["tools"]]) == (
        "REQUIRED",
        ["b"],
    )
    assert sent["response_format"] == {"type": "json_object", "json_schema": schema}
    assert (sent["seed"], sent["safety_mode"], sent["stream"]) == (3, "STRICT", False)


async def test_usage_is_the_billed_units(fake_cohere: FakeCohere) -> None:
    fake_cohere.enqueue(Reply(prompt_tokens=5, completion_tokens=7))
    answer = await send(fake_cohere, Request(model=MODEL, messages=ASK))
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 7)
    assert answer.raw["usage"]["tokens"]["input_tokens"] > 5  # what was processed stays in raw


async def test_an_error_finish_is_a_retryable_server_error(fake_cohere: FakeCohere) -> None:
    fake_cohere.enqueue(MidStreamError(text="abcdefgh", after_chunks=1))
    vendor = adapter_for(fake_cohere)
    seen: list[str] = []
    try:
        with pytest.raises(VendorServerError) as caught:
            async for chunk in vendor.stream(Request(model=MODEL, messages=ASK)):
                seen.append(chunk.delta)
    finally:
        await vendor.aclose()
    assert "".join(seen) == "abcd"
    assert caught.value.retryable
    assert "internal server error" in str(caught.value)


async def test_498_invalid_token_is_an_authentication_error(fake_cohere: FakeCohere) -> None:
    fake_cohere.enqueue(Fail("auth", status=498, message="invalid token"))
    with pytest.raises(AuthenticationError) as caught:
        await send(fake_cohere, Request(model=MODEL, messages=ASK))
    assert (caught.value.status, caught.value.retryable) == (498, False)
    assert FAKE_COHERE_KEY not in str(caught.value)


async def test_models_and_health(fake_cohere: FakeCohere) -> None:
    vendor = adapter_for(fake_cohere)
    try:
        assert await vendor.list_models() == sorted(fake_cohere.models)
        assert (await vendor.health()).ok
        assert vendor.serves(MODEL)
    finally:
        await vendor.aclose()
    assert fake_cohere.requests[0].query["endpoint"] == "chat"


def test_keys_from_the_sdks_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL", "MISTRAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert CohereVendor.from_env() is None
    assert MistralVendor.from_env() is None
    with pytest.raises(ConfigError, match="CO_API_KEY is not set"):
        CohereVendor()
    monkeypatch.setenv("COHERE_API_KEY", "co-second")
    monkeypatch.setenv("CO_API_URL", "http://127.0.0.1:9")
    vendor = CohereVendor.from_env()
    assert vendor is not None
    assert vendor.secrets() == ("co-second",)
    assert vendor.base_url == "http://127.0.0.1:9"
    monkeypatch.setenv("CO_API_KEY", "co-first")  # preferred, as in the SDK
    assert CohereVendor().secrets() == ("co-first",)
    monkeypatch.setenv("MISTRAL_API_KEY", "mk-1")
    mistral = MistralVendor.from_env()
    assert mistral is not None
    assert mistral.base_url == "https://api.mistral.ai/v1"


def test_dispatcher_from_env_registers_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CO_API_KEY", "co-1")
    monkeypatch.setenv("MISTRAL_API_KEY", "mk-1")
    dispatcher = Dispatcher.from_env(Config())
    assert set(dispatcher.vendors) == {"cohere", "mistral"}
    assert dispatcher.plan(Request(model="command-r-08-2024", messages=ASK)).vendors == ("cohere",)
    assert dispatcher.plan(Request(model="mistral-large-latest", messages=ASK)).vendors == (
        "mistral",
    )


def test_config_file_types() -> None:
    config = config_from_mapping(
        {
            "vendors": {
                "cohere": {"api_key": "co-1", "rpm": 10},
                "eu": {"type": "mistral", "api_key": "mk-1", "base_url": "http://127.0.0.1:9/v1"},
            }
        },
        "test.yaml",
    )
    built = [vendor_class(s.type)(**s.options) for s in config.vendors]
    assert [(v.name, type_of(v)) for v in built] == [("cohere", "cohere"), ("eu", "mistral")]
    assert built[0].limits.rpm == 10
    with pytest.raises(ConfigError, match=r"vendors\.cohere\.top_k: unknown setting"):
        config_from_mapping({"vendors": {"cohere": {"api_key": "x", "top_k": 3}}}, "test.yaml")


def test_cohere_and_mistral_models_have_dated_prices() -> None:
    from llmdispatcher.pricing.table import PriceTable

    table = PriceTable.load()
    command_a = table.lookup("cohere", "command-a-03-2025")
    assert command_a is not None
    assert (str(command_a.input), str(command_a.output)) == ("2.50", "10.00")
    assert command_a.as_of is not None
    assert table.lookup("cohere", "command-r") is not None  # an alias
    assert table.lookup("mistral", "mistral-large-latest") is not None
