"""``config init`` (write a commented example) and ``config check`` (validate, show what it
resolves to, secrets masked)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .main import EXIT_USAGE, CliError, load_dispatcher, state
from .output import echo, mask, seconds, style

if TYPE_CHECKING:
    from ..config import Config, VendorSpec
    from ..dispatcher import Dispatcher
    from ..vendors.base import Vendor

DEFAULT_FILE = "llmdispatcher.yaml"
SECRET_WORDS = ("key", "token", "secret", "password", "authorization")
# Header values shown as they are; every other header's value is masked (Cookie, X-Auth, a
# proxy's own credential header: a header's name does not reliably say it holds a secret).
SAFE_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "content-type", "user-agent",
    "anthropic-version", "anthropic-beta", "openai-beta", "openai-organization",
    "openai-project", "api-version", "http-referer", "x-title",
})  # fmt: skip

EXAMPLE_CONFIG = """\
# llmdispatcher configuration, written by `llmdispatcher config init`.
#
# Use it with `llmdispatcher --config llmdispatcher.yaml ...`, or export
# LLMDISPATCHER_CONFIG=llmdispatcher.yaml. In Python: Config.from_file("llmdispatcher.yaml").
# `llmdispatcher config check` validates it and shows what it resolves to.
#
# ${VAR} reads an environment variable (an error when it is unset);
# ${VAR:-default} gives a default. Keep keys in the environment, not in this file.
# Unknown settings are errors, and the error lists the allowed ones.

# The vendor used when no routing rule matches (default: the first vendor listed below).
default_vendor: openai

# Vendors tried in order when the chosen one keeps failing (timeouts, 5xx, rate limits).
fallback_vendors: []

# Total seconds for one request: every attempt, wait and fallback together.
timeout: 30

retry_policy:
  max_retries: 3          # retries per vendor (so 4 attempts) before falling back
  backoff: exponential    # exponential | linear | fixed
  base_delay: 0.5         # seconds before the first retry
  max_delay: 30           # the longest wait; also caps a vendor's Retry-After
  jitter: true            # spread retries of many clients apart

# Send matching requests to a vendor, a deployment, a model group and/or a strategy.
# The lowest priority number wins; unset conditions match everything. Conditions:
# model_pattern (glob), model_regex, min_tokens/max_tokens (requested), min_prompt_tokens/
# max_prompt_tokens (estimated), temperature_min/max, min_chars/max_chars, users,
# user_pattern, request_types [chat, streaming, tools, vision, json], metadata {k: v},
# hours_utc "09:00-17:00", weekdays [mon, ...]. Check one with `llmdispatcher route explain`.
routing_rules: []
#  - vendor: openai
#    priority: 1
#    name: small-requests
#    condition: {model_pattern: "gpt-4o-mini*", max_tokens: 2000}
#  - group: chat-cheap
#    condition: {metadata: {tier: free}}

# Public model names that map to deployments (a vendor + its model name), with a strategy:
# priority | weighted | least_busy | latency | cost | objective.
model_groups: []
#  - name: chat-default
#    strategy: latency
#    deployments:
#      - {vendor: openai, model: gpt-4o-mini}
#      - {vendor: anthropic, model: claude-haiku-4-5}
#    fallbacks: [chat-local]               # groups tried when every deployment failed
#    context_window_fallbacks: []          # groups for prompts too long for these
#    content_filter_fallbacks: []          # groups tried when a content filter refused
#    hedge_after_s: 2.0                    # or p90: start the next one if the first is slow
#    on_stream_break: resume               # this group's own choice (see on_stream_break)
#  - name: chat-local
#    deployments: [{vendor: ollama, model: llama3.2}]

# Stop sending to a deployment after repeated vendor faults (429, 5xx, timeouts), probe it
# after the cool-down, and come back when the probe succeeds.
circuit_breaker:
  failure_threshold: 5      # consecutive faults that open it
  cooldown_s: 30            # seconds open (longer when the vendor's Retry-After says so)
  probe_every_s: 1          # with every candidate open, one request per this goes through

# Retries stay a share of real traffic per vendor, so an outage is not a retry storm.
retry_budget:
  ratio: 0.2                # at most 20 % of the requests in the window ...
  min_per_second: 3         # ... plus this floor, so a quiet dispatcher still retries
  window_s: 10

enable_logging: false     # one JSON line per request and attempt on stderr
log_content: false        # also log prompts and answers (off: they may be private)

# Where rate limits and budgets are kept: memory:// (one process), sqlite:///limits.db
# (survives restarts) or redis://127.0.0.1:6379/0 (shared by every replica).
state_url: memory://
# When Redis (or the SQLite state file) fails: open serves with limits and budgets local to each
# process; closed refuses what needs a limit or budget (503) until it returns. See
# docs/reliability.md. Every state command and connection is bounded by these timeouts.
state_failure: open
state_timeout_s: 1.0
state_connect_timeout_s: 0.5
# Limits are set per vendor (rpm, tpm, rpd, tpd, max_concurrency under vendors.<name>) or per
# deployment; over one, the request goes to its next candidate, or waits this long at most.
rate_limit_wait_s: 0
# A stream that breaks after its first token: error (StreamInterrupted), or resume it on the
# next candidate from the text so far (the last chunk's resumed_from says so).
on_stream_break: error
# Spend limits in USD, checked against the worst case before sending.
budgets: []
#  - {scope: global, limit_usd: 50, period: day}
#  - {scope: "user:alice", limit_usd: 5, period: month}   # also key:<gateway key>, group:<name>,
#                                                           # team:<team of stored keys>

# Every request (never its content unless ledger_content) recorded for `llmdispatcher stats`:
# sqlite:///ledger.db or postgresql://user:pass@host/db; null: the data directory's database
# ($LLMDISPATCHER_HOME, else ~/.local/share/llmdispatcher); none: record nothing.
ledger_url: null
ledger_content: false
# While the ledger's database is down, records wait in memory, then in a spill file here
# (null: beside an SQLite ledger, else under $XDG_STATE_HOME/llmdispatcher/ledger-spill/) of
# at most this many MiB (0: none); beyond, they are dropped and counted.
ledger_spill_dir: null
ledger_max_spill_mb: 256

# Prices (USD per million tokens) that override or extend the shipped table; cost is None
# (logged once) for a model the table does not know.
prices: {}
#  openai:
#    my-finetune: {input: 0.30, output: 1.20, cached_input: 0.15, as_of: 2026-11-01}

# Answers kept and served again to identical requests (free: no tokens, limits or budget).
cache: null
#  url: memory://          # or sqlite:///cache.db (one host), redis://127.0.0.1:6379/0
#  ttl_s: 3600
#  max_entries: 10000
#  max_bytes: 67108864
#  when: deterministic     # temperature 0 or a seed only; always: every request
#  shared: false           # true: one cache for every gateway key

# OpenTelemetry traces (pip install 'llmdispatcher[otel]'); `serve` also turns them on when
# OTEL_EXPORTER_OTLP_ENDPOINT is set. Unset fields follow the standard OTEL_* variables.
tracing: null
#  endpoint: http://127.0.0.1:4318    # an OTLP/HTTP collector
#  service_name: llmdispatcher
#  sample_ratio: 1.0

# `llmdispatcher serve`: the OpenAI- and Anthropic-compatible gateway.
gateway:
  host: 127.0.0.1           # without api_keys only loopback is allowed (see allow_unauthenticated)
  port: 8080
  workers: 1
  api_keys: []
  #  - name: team-a           # labels metrics and logs
  #    key: ${TEAM_A_KEY}     # or key_sha256: <hex>; only the hash is kept
  #    allowed_models: ["gpt-4o*", "chat-*"]
  #    metadata: {tier: basic}  # pinned: replaces the client's metadata (rules, budgets)
  # Stored keys (`llmdispatcher keys`, /admin/v1): null = ledger_url, else the data directory.
  key_store_url: null       # or sqlite:///keys.db, postgresql://... (shared by replicas)
  key_refresh_s: 0.5        # how often each gateway looks for key changes
  responses_retention_s: 2592000  # stored /v1/responses answers (previous_response_id): 30 days
  # admin_key: ${LLMDISPATCHER_ADMIN_KEY}   # turns the admin API on (or admin_key_sha256)
  allowed_hosts: []         # Host/Origin names browsers may use; [] = loopback names on loopback
  auth_failures_per_minute: 10   # wrong keys per client address, then 429
  max_body_bytes: 4194304
  drain_s: 0                # after SIGTERM: /readyz says 503, requests still served this long
  shutdown_grace_s: 30      # then in-flight streams may finish this long
  log_format: text          # json: JSON log lines and one access line per request

# name: {type: ..., settings}. The type defaults to the name; types: openai, anthropic,
# google, azure, ollama, llamacpp, openai_compatible, cohere, mistral, http (a server's own
# JSON API described here: docs/vendors/http.md).
vendors:
  openai:
    api_key: ${OPENAI_API_KEY}
  # anthropic:
  #   api_key: ${ANTHROPIC_API_KEY}
  # google:
  #   api_key: ${GEMINI_API_KEY}
  # my-server:              # any OpenAI-compatible server (vLLM, llama.cpp, LM Studio)
  #   type: openai
  #   base_url: http://127.0.0.1:8080/v1
  #   api_key: ${MY_SERVER_KEY:-none}
  #   timeout: 60           # seconds of silence allowed while reading an answer
"""


@click.group("config")
def config() -> None:
    """Write an example config file, or check one."""


@config.command("init")
@click.argument("path", required=False)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def init(path: str | None, force: bool) -> None:
    """Write a commented example config to PATH (default: ./llmdispatcher.yaml)."""
    target = Path(path or state().config_path or DEFAULT_FILE)
    if target.suffix.lower() not in (".yaml", ".yml"):
        raise CliError(f"{target}: config init writes YAML; name the file *.yaml", EXIT_USAGE)
    if target.exists() and not force:
        raise CliError(f"{target} already exists: pass --force to overwrite it", EXIT_USAGE)
    try:
        target.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{target}: cannot write the file ({exc.strerror})", EXIT_USAGE) from None
    echo(f"wrote {target}")
    echo(f"next: export OPENAI_API_KEY, then `llmdispatcher --config {target} config check`")


@config.command("check")
@click.argument("path", required=False)
def check(path: str | None) -> None:
    """Validate a config and show what it resolves to.

    PATH defaults to --config, else the vendors found in the environment. Prints the vendors,
    routing, retries and timeouts, with secrets masked. Exits 2 on a problem.
    """
    st = state()
    st.config_path = path or st.config_path
    dispatcher = load_dispatcher()
    found = problems(dispatcher)
    source = st.config_path or "the environment (no --config given)"
    if found:
        from ..errors import ConfigError

        raise ConfigError(f"{st.config_path or 'config'}: " + "; ".join(found))
    for line in describe(dispatcher, source):
        echo(line)
    if st.config_path is None and Path(DEFAULT_FILE).exists():
        echo(f"note: ./{DEFAULT_FILE} exists but is not used: pass --config {DEFAULT_FILE}")
    echo(style("ok: the configuration is valid", "green", bold=True))


def problems(dispatcher: Dispatcher) -> list[str]:
    """Names that must be configured vendors but are not."""
    cfg, names = dispatcher.config, dispatcher.vendors
    known = ", ".join(names)
    found = []
    if cfg.default_vendor and cfg.default_vendor not in names:
        found.append(f"default_vendor: {cfg.default_vendor!r} is not a configured vendor")
    found += [
        f"fallback_vendors[{i}]: {name!r} is not a configured vendor"
        for i, name in enumerate(cfg.fallback_vendors)
        if name not in names
    ]
    found += [
        f"routing_rules[{i}].vendor: {rule.vendor!r} is not a configured vendor"
        for i, rule in enumerate(cfg.routing_rules)
        if rule.vendor is not None and rule.vendor not in names
    ]
    return [f"{p} (configured: {known})" for p in found]


def _rule_target(rule: Any) -> str:
    parts = [
        f"{kind} {getattr(rule, kind)}"
        for kind in ("vendor", "deployment", "group")
        if getattr(rule, kind)
    ]
    if rule.strategy:
        parts.append(f"strategy {rule.strategy}")
    return ", ".join(parts)


def describe(dispatcher: Dispatcher, source: str) -> list[str]:
    from ..redaction import redact
    from .route_cmd import describe_condition

    cfg = dispatcher.config
    specs = {spec.name: spec for spec in cfg.vendors}
    lines = [_row("source", source), _row("vendors", "")]
    for name, vendor in dispatcher.vendors.items():
        lines.append(f"  {style(name, bold=True)}: {vendor_summary(dispatcher, vendor, specs)}")
    lines.append(_row("default", cfg.default_vendor or f"{next(iter(dispatcher.vendors))} (first)"))
    lines.append(_row("fallbacks", ", ".join(cfg.fallback_vendors) or "none"))
    lines.append(_row("timeout", f"{seconds(cfg.timeout)} per request, all attempts included"))
    lines.append(_row("retries", retry_summary(cfg)))
    lines.append(_row("routing", "" if cfg.routing_rules else "no rules"))
    for i, rule in enumerate(cfg.routing_rules):
        state = "" if rule.enabled else " (disabled)"
        label = f" {rule.name!r}" if rule.name else ""
        lines.append(
            f"  [{i}]{label} -> {_rule_target(rule)}, priority {rule.priority}{state}: "
            f"{describe_condition(rule.condition)}"
        )
    for group in cfg.model_groups:
        deployments = ", ".join(d.id for d in group.deployments)
        lines.append(_row(f"group {group.name}", f"{group.strategy}: {deployments}"))
    logging = "on" + (" with content" if cfg.log_content else "") if cfg.enable_logging else "off"
    lines.append(_row("logging", logging))
    return [redact(line, dispatcher.secrets()) for line in lines]


def _row(label: str, value: str) -> str:
    return f"{style(label.ljust(10), bold=True)}{value}".rstrip()


def retry_summary(cfg: Config) -> str:
    p = cfg.retry_policy
    return (
        f"{p.max_retries} per vendor, {p.backoff} backoff from {seconds(p.base_delay)} "
        f"up to {seconds(p.max_delay)}{', jittered' if p.jitter else ''}"
    )


def vendor_summary(dispatcher: Dispatcher, vendor: Vendor, specs: Mapping[str, VendorSpec]) -> str:
    from .vendors_cmd import vendor_type

    parts = [f"type {vendor_type(dispatcher, vendor)}"]
    base_url = getattr(vendor, "base_url", None)
    if isinstance(base_url, str):
        parts.append(base_url)
    secrets = vendor.secrets()
    parts.append(f"key {mask(secrets[0])}" if secrets else "no key")
    spec = specs.get(vendor.name)
    shown = {} if spec is None else flat_options(spec.options)
    for key, value in shown.items():
        if key not in ("name", "base_url", "url", "api_key"):
            parts.append(f"{key} {masked(key, value)}")
    return ", ".join(parts)


def flat_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as a file writes them: a grouped value (``limits``, ``connection``) as its fields
    that differ from the defaults; a preset by its name, with what differs from that preset."""
    import dataclasses

    from ..vendors.presets import PRESETS, Preset

    flat: dict[str, Any] = {}
    for key, value in options.items():
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            flat[key] = value
            continue
        try:
            base: Any = type(value)()
        except TypeError:  # a group with required fields (an http template): its plain
            flat |= _plain_fields(value)  # settings; its body and paths are too long to show
            continue
        if isinstance(value, Preset) and value.name in PRESETS:
            flat[key], base = value.name, PRESETS[value.name]
        for f in dataclasses.fields(value):
            if getattr(value, f.name) != getattr(base, f.name):
                flat[f.name] = getattr(value, f.name)
    return flat


def _plain_fields(value: Any) -> dict[str, Any]:
    import dataclasses

    fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    return {k: v for k, v in fields if isinstance(v, str | int | float | tuple)}


def masked(key: str, value: Any) -> str:
    """A setting's value for display: secrets masked, and every header value but those of
    ``SAFE_HEADERS``."""
    if _is_secret(key):
        return mask(str(value))
    if isinstance(value, Mapping) and key.lower() in ("headers", "extra_headers"):
        shown = (f"{k}: {v if str(k).lower() in SAFE_HEADERS else mask(str(v))}"
                 for k, v in value.items())  # fmt: skip
        return "{" + ", ".join(shown) + "}"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {masked(str(k), v)}" for k, v in value.items())
        return "{" + inner + "}"
    return str(value)


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)
