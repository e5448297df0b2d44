"""Typed configuration. ``Config.from_file`` reads YAML or TOML (see ``config_file``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .resilience.retry import RetryPolicy
from .routing.rules import RoutingRule


@dataclass(frozen=True, slots=True)
class VendorSpec:
    """A vendor to build from a config file: its registry ``type`` and constructor options."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret_key(k) else v) for k, v in self.options.items()}
        return f"VendorSpec(name={self.name!r}, type={self.type!r}, options={shown!r})"


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in ("key", "token", "secret", "password"))


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the dispatcher needs besides the vendor objects themselves.

    ``timeout`` is the total deadline in seconds for one request (every attempt, backoff and
    fallback), unless the request sets its own. For streams it covers the time to the first
    token; after that each vendor's read timeout guards against silence.
    """

    default_vendor: str | None = None
    fallback_vendors: tuple[str, ...] = ()
    timeout: float = 30.0
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    routing_rules: tuple[RoutingRule, ...] = ()
    enable_logging: bool = False
    log_content: bool = False
    vendors: tuple[VendorSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback_vendors", tuple(self.fallback_vendors))
        object.__setattr__(self, "routing_rules", tuple(self.routing_rules))
        object.__setattr__(self, "vendors", tuple(self.vendors))
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or self.timeout <= 0
        ):
            raise ValueError("timeout: must be a positive number of seconds")

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        """Load a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file; ``${VAR}`` reads the
        environment. Raises ``ConfigError`` naming the file, the key path and what was expected."""
        from .config_file import load_config

        return load_config(Path(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Config:
        """Build from the same structure a config file holds."""
        from .config_file import config_from_mapping

        return config_from_mapping(data, source)
