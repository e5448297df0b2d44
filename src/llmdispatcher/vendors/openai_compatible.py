"""Any server that speaks OpenAI's Chat Completions: configuration, not code.

A vendor is a base URL, an API-key variable and a few quirks (which field carries the output
limit, whether ``stream_options`` may be sent). ``PRESETS`` holds them for well-known hosts and
local servers; explicit constructor arguments override a preset. Every argument is a plain
string, number, boolean or mapping, so a config file can spell the whole vendor::

    vendors:
      groq: {type: openai_compatible, preset: groq}
      local: {type: openai_compatible, base_url: "http://10.0.0.5:8000/v1", stream_usage: false}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from ..limits import Limits
from .base import Secret
from .openai import OpenAIVendor


@dataclass(frozen=True, slots=True)
class Preset:
    """Where a host lives and how it departs from OpenAI."""

    base_url: str
    api_key_env: str | None = None
    requires_api_key: bool = True
    # Most compatible servers read the legacy ``max_tokens``; few know ``max_completion_tokens``.
    max_tokens_field: str = "max_tokens"
    # Send ``stream_options: {"include_usage": true}`` to get usage in a stream; False where it
    # is rejected or pointless (usage arrives anyway).
    stream_usage: bool = True


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        # Groq documents max_completion_tokens (max_tokens is deprecated) and stream_options.
        "groq": Preset(
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            max_tokens_field="max_completion_tokens",
        ),
        # Mistral forbids unknown fields (422 "Extra inputs are not permitted", stream_options
        # included) and always ends a stream with usage.
        "mistral": Preset("https://api.mistral.ai/v1", "MISTRAL_API_KEY", stream_usage=False),
        "deepseek": Preset("https://api.deepseek.com", "DEEPSEEK_API_KEY"),
        "together": Preset("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        # OpenRouter always sends usage; its include_usage is deprecated and has no effect.
        "openrouter": Preset(
            "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", stream_usage=False
        ),
        "fireworks": Preset("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        # Local servers: a key only when started with --api-key (vLLM reads VLLM_API_KEY).
        "vllm": Preset("http://127.0.0.1:8000/v1", "VLLM_API_KEY", requires_api_key=False),
        "lmstudio": Preset("http://127.0.0.1:1234/v1", requires_api_key=False),
    }
)
# Without a preset: a self-hosted server, no key required, the widely understood field.
_CUSTOM = Preset(base_url="", requires_api_key=False)


class OpenAICompatibleVendor(OpenAIVendor):
    """An OpenAI-compatible server, from a ``preset`` and/or explicit settings.

    ``api_key_env`` names the variable the key is read from when ``api_key`` is not given;
    ``requires_api_key`` makes a missing key a ``ConfigError`` at construction.
    """

    model_prefixes = ()  # serves whatever it hosts: never claims a model by name

    base_url_env = ()  # OPENAI_BASE_URL points at OpenAI's stand-in, not at this server

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        preset: str | None = None,
        api_key_env: str | None = None,
        max_tokens_field: str | None = None,
        stream_usage: bool | None = None,
        requires_api_key: bool | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 0,
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        tpd: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "base_url": base_url,
            "api_key_env": api_key_env,
            "max_tokens_field": max_tokens_field,
            "stream_usage": stream_usage,
            "requires_api_key": requires_api_key,
        }
        settings = replace(
            _preset(preset, name), **{k: v for k, v in given.items() if v is not None}
        )
        if not settings.base_url:
            raise ConfigError(
                f"vendor {name!r}: pass base_url= (the server's OpenAI-compatible URL, usually "
                f"ending in /v1) or preset= (one of {', '.join(PRESETS)})"
            )
        self.preset = preset
        self.pricing_name = preset or "openai_compatible"
        self.api_key_env = (settings.api_key_env,) if settings.api_key_env else ()
        self.requires_api_key = settings.requires_api_key
        self.max_tokens_field = settings.max_tokens_field
        self.stream_usage = settings.stream_usage
        super().__init__(
            api_key=api_key,
            base_url=settings.base_url,
            name=name,
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers=headers,
            max_connections=max_connections,
        )
        self.limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, max_concurrency=max_concurrency)

    @classmethod
    def from_env(cls) -> OpenAICompatibleVendor | None:
        return None  # each instance needs a name and a server: configure them explicitly


def _preset(preset: str | None, name: str) -> Preset:
    if preset is None:
        return _CUSTOM
    found = PRESETS.get(preset)
    if found is None:
        raise ConfigError(
            f"vendor {name!r}: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}, "
            "or leave preset out and pass base_url="
        )
    return found
