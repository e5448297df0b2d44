"""Typed configuration. ``Config.from_file`` reads YAML or TOML (see ``config_file``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .budgets import Budget
from .settings.cache import Cache
from .settings.resilience import CircuitBreaker, RetryBudget, RetryPolicy
from .settings.routing import STREAM_BREAKS, ModelGroup, StreamBreak
from .settings.rules import RoutingRule
from .settings.tracing import Tracing
from .state.base import StatePolicy


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
class ApiKeyConfig:
    """A gateway API key: ``key`` in plain text (usually ``"${ENV_VAR}"``) or its
    ``key_sha256`` (hex), never both. ``allowed_models`` are glob patterns (``gpt-4o*``).
    ``metadata`` and ``user``, when set, replace what the key's clients send in those fields,
    so routing rules and budgets that read them cannot be steered by the client.
    The gateway keeps only the hash; ``repr`` never shows the key."""

    name: str
    key: str | None = None
    key_sha256: str | None = None
    allowed_models: tuple[str, ...] = ("*",)
    metadata: Mapping[str, str | int | float | bool] | None = field(default=None, hash=False)
    user: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_models", tuple(self.allowed_models))
        if self.metadata is not None:
            object.__setattr__(self, "metadata", dict(self.metadata))
        if not self.name:
            raise ValueError("api_keys[].name: a name is required (it labels metrics and logs)")
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"api key {self.name!r}: give exactly one of key or key_sha256")
        if self.key is not None and len(self.key) < 16:
            raise ValueError(f"api key {self.name!r}: key must be at least 16 characters")
        digest = self.key_sha256
        if digest is not None and not (
            len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise ValueError(f"api key {self.name!r}: key_sha256 must be 64 hex digits")

    def __repr__(self) -> str:
        kind = "key='***'" if self.key is not None else "key_sha256='***'"
        return f"ApiKeyConfig(name={self.name!r}, {kind}, allowed_models={self.allowed_models!r})"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Settings of ``llmdispatcher serve`` (the ``gateway:`` section of a config file).

    ``header_timeout_s`` bounds how long a connection may take to deliver a complete request
    head (also the keep-alive idle timeout); ``body_timeout_s`` the request body.
    On SIGTERM the gateway first *drains* for ``drain_s`` (``/readyz`` answers 503 at once
    while every request is still served, so load balancers stop sending), then stops
    listening; ``shutdown_grace_s`` is how long in-flight requests and streams may run after
    that (docs/deploy.md).
    Without ``api_keys`` the gateway refuses a non-loopback ``host`` unless
    ``allow_unauthenticated``. ``allowed_hosts``: the host names clients may reach the gateway
    by (``Host``/``Origin`` checks against DNS rebinding; empty: the loopback names on a
    loopback address, any elsewhere; ``*``: any). ``passthrough_fields`` are the OpenAI body
    fields forwarded to the vendor unchanged (``Request.extra``); every other unknown field is
    dropped. ``auth_failures_per_minute``: requests with a missing or wrong key one client
    address may make (then 429 until it refills); ``vendor_checks_per_minute``: live checks
    (``/api/v1/test/vendor``) per gateway key.

    Stored keys (``llmdispatcher keys``, the admin API) live in ``key_store_url``
    (``sqlite:///path.db`` or ``postgresql://...``; unset: ``ledger_url``, else the data
    directory's database); each gateway re-reads what changed every ``key_refresh_s`` seconds.
    Responses API answers stored for ``previous_response_id`` live there too, for
    ``responses_retention_s`` seconds (30 days, as OpenAI keeps them).
    The admin API (``/admin/v1``) needs ``admin_key`` (plain, usually ``${ENV}``) or
    ``admin_key_sha256`` (or ``LLMDISPATCHER_ADMIN_KEY``); without one it answers 404.
    ``log_format="json"``: every log line a JSON object, and one access line per request
    (``gateway/access_log.py``).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    api_keys: tuple[ApiKeyConfig, ...] = ()
    allow_unauthenticated: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    header_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    shutdown_grace_s: float = 30.0
    drain_s: float = 0.0
    metrics_public: bool = False
    models_cache_s: float = 300.0
    allowed_hosts: tuple[str, ...] = ()
    auth_failures_per_minute: int = 10
    vendor_checks_per_minute: int = 10
    key_store_url: str | None = None
    key_refresh_s: float = 0.5
    responses_retention_s: float = 30 * 86400.0
    admin_key: str | None = field(default=None, repr=False)
    admin_key_sha256: str | None = field(default=None, repr=False)
    log_format: Literal["text", "json"] = "text"
    passthrough_fields: tuple[str, ...] = (
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "reasoning_effort",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_keys", tuple(self.api_keys))
        object.__setattr__(self, "passthrough_fields", tuple(self.passthrough_fields))
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        if not 0 <= self.port <= 65535:
            raise ValueError("gateway.port: must be 0-65535")
        if self.workers < 1:
            raise ValueError("gateway.workers: must be at least 1")
        if self.log_format not in ("text", "json"):
            raise ValueError("gateway.log_format: must be text or json")
        if self.max_body_bytes < 1024:
            raise ValueError("gateway.max_body_bytes: must be at least 1024")
        for name in ("auth_failures_per_minute", "vendor_checks_per_minute"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"gateway.{name}: must be at least 1")
        for name in ("header_timeout_s", "body_timeout_s", "shutdown_grace_s", "models_cache_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gateway.{name}: must be a positive number of seconds")
        if not 0 <= self.drain_s <= 3600:
            raise ValueError("gateway.drain_s: must be between 0 and 3600 seconds")
        names = [k.name for k in self.api_keys]
        if len(set(names)) != len(names):
            raise ValueError("gateway.api_keys: key names must be unique")
        if not 0 < self.key_refresh_s <= 60:
            raise ValueError("gateway.key_refresh_s: must be more than 0 and at most 60 seconds")
        if not self.responses_retention_s > 0:
            raise ValueError("gateway.responses_retention_s: must be a positive number of seconds")
        if self.admin_key is not None and len(self.admin_key) < 16:
            raise ValueError("gateway.admin_key: must be at least 16 characters")
        digest = self.admin_key_sha256
        if digest is not None and not (
            len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise ValueError("gateway.admin_key_sha256: must be 64 hex digits")


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
    model_groups: tuple[ModelGroup, ...] = ()
    # Price table overrides and additions, in the shipped table's shape (see pricing/).
    prices: Mapping[str, Any] | None = None
    # Where limits and budgets live: memory:// (one process), sqlite:///path.db (survives
    # restarts), redis://host:6379/0 (shared by replicas).
    state_url: str = "memory://"
    # When Redis (or the SQLite state file) fails: "open" serves on with limits and budgets
    # local to each process, "closed" refuses limited requests (503) until it is back. Every
    # state command is bounded by state_timeout_s, every connection by state_connect_timeout_s.
    state_failure: Literal["open", "closed"] = "open"
    state_timeout_s: float = 1.0
    state_connect_timeout_s: float = 0.5
    budgets: tuple[Budget, ...] = ()
    # How long a request may wait for a rate limit to free when every candidate is over one.
    rate_limit_wait_s: float = 0.0
    # A stream that breaks after its first token: "error" (StreamInterrupted) or "resume" on
    # the next candidate (lifecycle/relay.py); model groups may set their own.
    on_stream_break: StreamBreak = "error"
    # The request ledger: sqlite:///path.db or postgresql://... (None: no ledger).
    ledger_url: str | None = None
    ledger_content: bool = False
    # Where ledger records wait while the database is down, once half the memory buffer is
    # used (None: beside an SQLite ledger, else $XDG_STATE_HOME/llmdispatcher/ledger-spill/);
    # past ledger_max_spill_mb (0: no spill file) records are dropped, counted and logged.
    ledger_spill_dir: str | None = None
    ledger_max_spill_mb: int = 256
    circuit_breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    retry_budget: RetryBudget = field(default_factory=RetryBudget)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    # The response cache (settings/cache.py); None: off.
    cache: Cache | None = None
    # OpenTelemetry traces (settings/tracing.py); None: off, and nothing of OTel imported.
    tracing: Tracing | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback_vendors", tuple(self.fallback_vendors))
        object.__setattr__(self, "routing_rules", tuple(self.routing_rules))
        object.__setattr__(self, "vendors", tuple(self.vendors))
        object.__setattr__(self, "model_groups", tuple(self.model_groups))
        object.__setattr__(self, "budgets", tuple(self.budgets))
        self.state_policy  # noqa: B018 - validates the three state_* keys now
        if self.ledger_max_spill_mb < 0:
            raise ValueError("ledger_max_spill_mb: must be >= 0 (0 turns the spill file off)")
        if self.rate_limit_wait_s < 0:
            raise ValueError("rate_limit_wait_s: must be >= 0 seconds")
        if self.on_stream_break not in STREAM_BREAKS:
            raise ValueError(f"on_stream_break: must be one of {', '.join(STREAM_BREAKS)}")
        names = [group.name for group in self.model_groups]
        if len(names) != len(set(names)):
            raise ValueError("model_groups: two groups have the same name")
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or self.timeout <= 0
        ):
            raise ValueError("timeout: must be a positive number of seconds")

    @property
    def state_policy(self) -> StatePolicy:
        """``state_failure`` and the state timeouts, for ``open_state``."""
        return StatePolicy(self.state_failure, self.state_timeout_s, self.state_connect_timeout_s)

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
