"""Vendor adapters, one module each, imported on first use.

``REGISTRY`` maps a vendor *type* (as written in config files) to its class; adding a vendor is
one module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Capabilities, Health, Secret, Vendor

if TYPE_CHECKING:
    from .anthropic import AnthropicVendor
    from .azure import AzureOpenAIVendor
    from .gemini import GeminiVendor
    from .llamacpp import LlamaCppVendor
    from .ollama import OllamaVendor
    from .openai import OpenAIVendor
    from .openai_compatible import OpenAICompatibleVendor

# type name -> (module, class). Imported lazily so a config naming one vendor loads one module.
# The order is also the order ``Dispatcher.from_env()`` registers vendors in.
REGISTRY: dict[str, tuple[str, str]] = {
    "openai": ("openai", "OpenAIVendor"),
    "anthropic": ("anthropic", "AnthropicVendor"),
    "google": ("gemini", "GeminiVendor"),
    "azure": ("azure", "AzureOpenAIVendor"),
    "ollama": ("ollama", "OllamaVendor"),
    "llamacpp": ("llamacpp", "LlamaCppVendor"),
    "openai_compatible": ("openai_compatible", "OpenAICompatibleVendor"),
}
_CLASSES = {cls: module for module, cls in REGISTRY.values()}

__all__ = [
    "REGISTRY",
    "AnthropicVendor",
    "AzureOpenAIVendor",
    "Capabilities",
    "GeminiVendor",
    "Health",
    "LlamaCppVendor",
    "OllamaVendor",
    "OpenAICompatibleVendor",
    "OpenAIVendor",
    "Secret",
    "Vendor",
    "env_key_for",
    "vendor_class",
    "vendors_from_env",
]


def vendor_class(type_name: str) -> type[Vendor]:
    """The class registered for a vendor type; ``KeyError`` when unknown."""
    module, cls = REGISTRY[type_name]
    found: type[Vendor] = getattr(importlib.import_module(f".{module}", __name__), cls)
    return found


def env_key_for(name: str) -> str | None:
    """The environment variable that configures vendor ``name`` (``OPENAI_API_KEY``), if any."""
    if name not in REGISTRY:
        return None
    found: object = getattr(vendor_class(name), "api_key_env", None)
    if isinstance(found, str):
        return found
    if isinstance(found, tuple) and found and isinstance(found[0], str):
        return found[0]
    return None


def vendors_from_env() -> list[Vendor]:
    """Every vendor whose key (or host) is set in the environment, in ``REGISTRY`` order."""
    found = []
    for type_name in REGISTRY:
        vendor = vendor_class(type_name).from_env()
        if vendor is not None:
            found.append(vendor)
    return found


def __getattr__(name: str) -> Any:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
