"""OpenAI-shaped hosts as values: where each lives, where its key comes from, how it departs.

Every vendor of the OpenAI family (OpenAI itself, the compatible hosts below, a llama-server,
Azure) is ``OpenAIVendor`` with one of these; nothing else differs between them but the few
adapters that really translate differently (Azure's deployments, llama-server's /health).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Preset:
    """One OpenAI-shaped host. ``name`` is the default vendor name and the price-table section;
    ``api_key_env``/``base_url_env`` name the variables read when ``api_key``/``base_url`` are not
    given; ``requires_api_key`` makes a missing key a ``ConfigError`` at construction."""

    name: str = "openai_compatible"
    base_url: str = ""
    api_key_env: str | None = None
    base_url_env: str | None = None
    requires_api_key: bool = False
    # Most compatible servers read the legacy ``max_tokens``; few know ``max_completion_tokens``.
    max_tokens_field: str = "max_tokens"
    # Send ``stream_options: {"include_usage": true}`` to get usage in a stream; False where it
    # is rejected or pointless (usage arrives anyway).
    stream_usage: bool = True
    # Model-name prefixes the host's models carry; a compatible server claims none by name.
    model_prefixes: tuple[str, ...] = ()
    # Whether the host serves ``/embeddings`` (routing sends embedding requests only there).
    embeddings: bool = True
    # The host answers ``n`` > 1 itself (many refuse it: llama-server, Groq); otherwise the
    # vendor asks n times and merges the answers (``fanout``).
    native_n: bool = False

    @classmethod
    def named(cls, preset: str, vendor: str = "") -> Preset:
        """The preset called ``preset`` in ``PRESETS``; ``ConfigError`` listing them otherwise."""
        found = PRESETS.get(preset)
        if found is None:
            who = f"vendor {vendor!r}: " if vendor else ""
            raise ConfigError(
                f"{who}unknown preset {preset!r}; expected one of {', '.join(PRESETS)}, "
                "or leave preset out and pass base_url="
            )
        return found


# OpenAI takes the newer field and ``stream_options`` (strict servers such as Mistral reject the
# latter with a 422); OPENAI_BASE_URL points the official SDK at a stand-in, and so does it here.
OPENAI = Preset(
    name="openai",
    base_url="https://api.openai.com/v1",
    api_key_env="OPENAI_API_KEY",
    base_url_env="OPENAI_BASE_URL",
    requires_api_key=True,
    max_tokens_field="max_completion_tokens",
    model_prefixes=("gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"),
    native_n=True,
)
# Without a preset: a self-hosted server, no key required, the widely understood field.
CUSTOM = Preset()


def _hosted(
    name: str,
    base_url: str,
    *,
    max_tokens_field: str = "max_tokens",
    stream_usage: bool = True,
    embeddings: bool = True,
) -> Preset:
    """A hosted service: its key is required and read from ``<NAME>_API_KEY``."""
    return Preset(
        name,
        base_url,
        api_key_env=f"{name.upper()}_API_KEY",
        requires_api_key=True,
        max_tokens_field=max_tokens_field,
        stream_usage=stream_usage,
        embeddings=embeddings,
    )


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        # Groq documents max_completion_tokens (max_tokens is deprecated) and stream_options.
        # Groq and DeepSeek serve no embeddings.
        "groq": _hosted(
            "groq",
            "https://api.groq.com/openai/v1",
            max_tokens_field="max_completion_tokens",
            embeddings=False,
        ),
        # Mistral forbids unknown fields (422 "Extra inputs are not permitted", stream_options
        # included) and always ends a stream with usage.
        "mistral": replace(
            _hosted("mistral", "https://api.mistral.ai/v1", stream_usage=False), native_n=True
        ),
        "deepseek": _hosted("deepseek", "https://api.deepseek.com", embeddings=False),
        "together": _hosted("together", "https://api.together.xyz/v1"),
        # OpenRouter always sends usage; its include_usage is deprecated and has no effect.
        "openrouter": _hosted("openrouter", "https://openrouter.ai/api/v1", stream_usage=False),
        "fireworks": _hosted("fireworks", "https://api.fireworks.ai/inference/v1"),
        # Local servers: a key only when started with --api-key (vLLM reads VLLM_API_KEY).
        "vllm": Preset(
            "vllm", "http://127.0.0.1:8000/v1", api_key_env="VLLM_API_KEY", native_n=True
        ),
        "lmstudio": Preset("lmstudio", "http://127.0.0.1:1234/v1"),
    }
)
