"""Vendor adapters, one module each, imported on first use.

``REGISTRY`` maps a vendor *type* (as written in config files) to what builds it: a class, or
for ``llamacpp`` a factory that returns the server or the in-process class. Adding a vendor is
one module plus one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Capabilities, Health, Secret, Vendor

if TYPE_CHECKING:
    from .anthropic import AnthropicVendor
    from .azure import AzureOpenAIVendor
    from .bedrock import BedrockVendor
    from .bedrock_auth import AwsKeys
    from .cohere import CohereVendor
    from .connection import Connection
    from .gemini import GeminiVendor
    from .http_template import HttpTemplateVendor
    from .http_template_spec import HttpTemplate
    from .llamacpp import LlamaCppVendor
    from .mistral import MistralVendor
    from .ollama import OllamaVendor
    from .openai import OpenAIVendor
    from .openai_compatible import OpenAICompatibleVendor
    from .vertex import VertexVendor

# type name -> (module, class or factory). Imported lazily so a config naming one vendor loads
# one module.
REGISTRY: dict[str, tuple[str, str]] = {
    "openai": ("openai", "OpenAIVendor"),
    "anthropic": ("anthropic", "AnthropicVendor"),
    "google": ("gemini", "GeminiVendor"),
    "azure": ("azure", "AzureOpenAIVendor"),
    "ollama": ("ollama", "OllamaVendor"),
    "llamacpp": ("llamacpp", "LlamaCppVendor"),
    "openai_compatible": ("openai_compatible", "OpenAICompatibleVendor"),
    "bedrock": ("bedrock", "BedrockVendor"),
    "vertex": ("vertex", "VertexVendor"),
    "cohere": ("cohere", "CohereVendor"),
    "mistral": ("mistral", "MistralVendor"),
    "http": ("http_template", "HttpTemplateVendor"),
}
# The types the environment alone can configure, in the order ``Dispatcher.from_env()``
# registers them (a llama.cpp or compatible server needs a name and a URL from the user).
FROM_ENV = (
    "openai",
    "anthropic",
    "google",
    "azure",
    "ollama",
    "bedrock",
    "vertex",
    "cohere",
    "mistral",
)
# Public names imported on first use (``--help`` must load no vendor module).
_LAZY = {cls: module for module, cls in REGISTRY.values()} | {
    "Connection": "connection",
    "AwsKeys": "bedrock_auth",
    "HttpTemplate": "http_template_spec",
}
# Class name -> type, including the classes a factory returns (``LlamaCppVendor``'s two).
_TYPES = {cls: name for name, (_, cls) in REGISTRY.items()} | {
    "LlamaServerVendor": "llamacpp",
    "LlamaCppLocalVendor": "llamacpp",
}

__all__ = [
    "REGISTRY",
    "AnthropicVendor",
    "AwsKeys",
    "AzureOpenAIVendor",
    "BedrockVendor",
    "Capabilities",
    "CohereVendor",
    "Connection",
    "GeminiVendor",
    "Health",
    "HttpTemplate",
    "HttpTemplateVendor",
    "LlamaCppVendor",
    "MistralVendor",
    "OllamaVendor",
    "OpenAICompatibleVendor",
    "OpenAIVendor",
    "Secret",
    "Vendor",
    "VertexVendor",
    "env_key_for",
    "type_of",
    "vendor_class",
    "vendors_from_env",
]


def vendor_class(type_name: str) -> Callable[..., Vendor]:
    """The class (or factory) registered for a vendor type; ``KeyError`` when unknown."""
    module, cls = REGISTRY[type_name]
    found: Callable[..., Vendor] = getattr(importlib.import_module(f".{module}", __name__), cls)
    return found


def type_of(vendor: Vendor) -> str | None:
    """The registry type ``vendor`` was built as (its nearest registered class), else None."""
    return next((_TYPES[k.__name__] for k in type(vendor).__mro__ if k.__name__ in _TYPES), None)


# The variable each vendor type reads its key from, as its official SDK names it.
_ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "ollama": "OLLAMA_HOST",
    # the cloud vendors need two settings (a credential or switch, and a region or project)
    "bedrock": "AWS_BEARER_TOKEN_BEDROCK and AWS_DEFAULT_REGION",
    "vertex": "GOOGLE_GENAI_USE_VERTEXAI=true and GOOGLE_CLOUD_PROJECT",
    "cohere": "CO_API_KEY",
    "mistral": "MISTRAL_API_KEY",
}


def env_key_for(name: str) -> str | None:
    """The environment variable that configures vendor type ``name`` (``OPENAI_API_KEY``; for
    the cloud vendors, the two they need together)."""
    return _ENV_KEYS.get(name)


def vendors_from_env() -> list[Vendor]:
    """Every vendor whose key (or host) is set in the environment, in ``FROM_ENV`` order."""
    found = []
    for type_name in FROM_ENV:
        module, cls = REGISTRY[type_name]
        vendor_type: type[Vendor] = getattr(importlib.import_module(f".{module}", __name__), cls)
        vendor = vendor_type.from_env()
        if vendor is not None:
            found.append(vendor)
    return found


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
