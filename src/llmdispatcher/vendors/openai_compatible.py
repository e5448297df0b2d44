"""Any server that speaks OpenAI's Chat Completions: configuration, not code.

A vendor is ``OpenAIVendor`` with a ``Preset`` (``presets.py``): a base URL, an API-key variable
and a few quirks (which field carries the output limit, whether ``stream_options`` may be sent).
``PRESETS`` holds them for well-known hosts and local servers; this class only names one by its
key and requires a vendor name. A config file spells the whole vendor, the preset's fields
flat beside ``preset`` (they override it)::

    vendors:
      groq: {type: openai_compatible, preset: groq}
      local: {type: openai_compatible, base_url: "http://10.0.0.5:8000/v1", stream_usage: false}

In Python, override a preset with ``dataclasses.replace(PRESETS["mistral"], stream_usage=True)``
or describe a server with ``Preset(base_url=..., max_tokens_field=...)``.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..limits import Limits
from .base import Secret
from .connection import Connection
from .openai import OpenAIVendor
from .presets import CUSTOM, PRESETS, Preset

__all__ = ["PRESETS", "OpenAICompatibleVendor", "Preset"]


class OpenAICompatibleVendor(OpenAIVendor):
    """An OpenAI-compatible server: ``preset`` is a key of ``PRESETS`` or a ``Preset`` value;
    ``base_url`` overrides the preset's URL (and is required without one)."""

    def __init__(
        self,
        *,
        name: str,
        preset: str | Preset = CUSTOM,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        settings = Preset.named(preset, name) if isinstance(preset, str) else preset
        if not (base_url or settings.base_url):
            raise ConfigError(
                f"vendor {name!r}: pass base_url= (the server's OpenAI-compatible URL, usually "
                f"ending in /v1) or preset= (one of {', '.join(PRESETS)})"
            )
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            name=name,
            preset=settings,
            connection=connection,
            limits=limits,
        )

    @classmethod
    def from_env(cls) -> OpenAICompatibleVendor | None:
        return None  # each instance needs a name and a server: configure them explicitly
