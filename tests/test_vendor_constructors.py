"""How vendors are built: grouped values (Limits, Connection), the OpenAI family as one class with
a Preset each, llama.cpp's factory, and the registry's view of what it built."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llmdispatcher import Limits
from llmdispatcher.vendors import (
    AnthropicVendor,
    AzureOpenAIVendor,
    Connection,
    GeminiVendor,
    OllamaVendor,
    OpenAICompatibleVendor,
    OpenAIVendor,
    type_of,
)
from llmdispatcher.vendors.llamacpp import LlamaCppVendor, LlamaServerVendor, LocalOptions
from llmdispatcher.vendors.llamacpp_local import LlamaCppLocalVendor
from llmdispatcher.vendors.presets import OPENAI, PRESETS, Preset

ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LLAMA_API_KEY",
    "OLLAMA_HOST",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    *(f"{name.upper()}_API_KEY" for name in PRESETS),
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_compatible_preset_is_openai_vendor_with_that_preset(
    preset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{preset.upper()}_API_KEY", "sk-from-env")
    named = OpenAICompatibleVendor(name=preset, preset=preset)
    direct = OpenAIVendor(name=preset, preset=PRESETS[preset])
    for vendor in (named, direct):
        assert vendor.preset is PRESETS[preset]
        assert (vendor.base_url, vendor.pricing_name) == (PRESETS[preset].base_url, preset)
        assert vendor.model_prefixes == ()  # a compatible host claims no model by name
    if PRESETS[preset].api_key_env:
        assert named.credential_headers() == {"Authorization": "Bearer sk-from-env"}


def test_openai_itself_is_the_openai_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    vendor = OpenAIVendor()
    assert vendor.preset is OPENAI
    assert (vendor.name, vendor.pricing_name, vendor.base_url) == (
        "openai",
        "openai",
        "http://127.0.0.1:9/v1",
    )
    assert vendor.serves("gpt-4o")
    assert not vendor.serves("claude-sonnet-4-6")
    assert OpenAIVendor.from_env() is not None
    # A custom host: OpenAI's quirks and key handling are the preset's, not the class's.
    box = OpenAIVendor(name="box", preset=replace(OPENAI, name="box", requires_api_key=False))
    assert box.credential_headers() == {"Authorization": "Bearer sk-env"}  # OPENAI_API_KEY
    bare = OpenAIVendor(name="bare", preset=Preset(base_url="http://127.0.0.1:1/v1"))
    assert bare.credential_headers() == {}


def test_llama_server_and_azure_are_openai_presets_too() -> None:
    server = LlamaServerVendor("http://127.0.0.1:8080/v1")
    assert (server.name, server.pricing_name, server.base_url) == (
        "llamacpp",
        "llamacpp",
        "http://127.0.0.1:8080/v1",
    )
    azure = AzureOpenAIVendor(api_key="k", azure_endpoint="https://r", api_version="2024-10-21")
    assert (azure.name, azure.pricing_name) == ("azure", "azure")
    assert azure.preset.max_tokens_field == "max_completion_tokens"
    assert azure.serves("gpt-4o")  # as before: Azure deploys OpenAI's models


def test_llamacpp_is_a_factory_of_the_server_or_the_in_process_vendor(tmp_path: Path) -> None:
    server = LlamaCppVendor("http://127.0.0.1:1", limits=Limits(rpm=5))
    assert isinstance(server, LlamaServerVendor)
    assert server.limits == Limits(rpm=5)
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")  # constructing does not load it
    local = LlamaCppVendor(
        model_path=str(model),
        aliases=("local",),
        local=LocalOptions(n_ctx=64, tools=True),
        limits=Limits(max_concurrency=2),
    )
    assert isinstance(local, LlamaCppLocalVendor)
    assert (local.name, local.served, local.limits) == (
        "llamacpp",
        ("local", "tiny"),
        Limits(max_concurrency=2),
    )
    assert (local.capabilities.max_context, local.capabilities.tools) == (64, True)
    assert type_of(server) == type_of(local) == "llamacpp"
    assert type_of(OpenAICompatibleVendor(name="v", preset="vllm")) == "openai_compatible"
    with pytest.raises(ValueError, match="n_parallel must be >= 1"):
        LocalOptions(n_parallel=0)


def test_connection_fills_only_what_it_is_given() -> None:
    assert (OpenAIVendor(api_key="k").timeout, OllamaVendor().timeout) == (60.0, 300.0)
    headers = {"X-Team": "blue"}
    ollama = OllamaVendor(connection=Connection(headers=headers))
    assert ollama.timeout == 300.0  # the vendor's own default survives a partial Connection
    assert ollama.extra_headers == headers
    for vendor in (
        OpenAIVendor(api_key="k", connection=Connection(timeout=5)),
        AnthropicVendor(api_key="k", connection=Connection(timeout=5)),
        GeminiVendor(api_key="k", connection=Connection(timeout=5)),
        OllamaVendor(connection=Connection(timeout=5)),
    ):
        assert vendor.timeout == 5
        assert vendor.limits == Limits()


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"timeout": 0}, "timeout: must be a positive number"),
        ({"connect_timeout": -1.0}, "connect_timeout: must be a positive number"),
        ({"max_connections": -1}, "max_connections: must be 0"),
    ],
)
def test_connection_refuses_nonsense(given: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Connection(**given)  # type: ignore[arg-type]
