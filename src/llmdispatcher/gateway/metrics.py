"""Prometheus metrics: one registry per app, fed by dispatcher events and the gateway itself.

OpenTelemetry GenAI names where one exists, in Prometheus form (dots to underscores, the unit
as a suffix): ``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``
(``gen_ai_token_type`` = input | output) and ``gen_ai_server_time_to_first_token_seconds``, with
the OTel attribute names as labels and the OTel bucket boundaries. ``gen_ai_provider_name`` is
the *configured vendor name* (``openai``, ``backup``...). The rest are ours, ``llmdispatcher_*``.

Label values that a client can choose are bounded, so no client can grow the registry (or the
``/metrics`` page) without bound, whatever model names it sends:

* ``model``: the configured names (model groups and their deployments' models) always; any other
  model only once a vendor has answered for it, and then at most ``MAX_MODELS`` of them per app.
  Everything else (unknown names, names no vendor served) is ``other``.
* ``vendor`` (and ``from_vendor``/``to_vendor`` of fallbacks, which carry deployment ids): a
  configured vendor name or deployment id as is; an unconfigured ``vendor/model`` id as its
  vendor (the client's model part dropped); anything else ``other``.

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set by the server) every worker
writes its values to that directory and ``/metrics`` on any worker reports the sum.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess

from ..observability.events import (
    AttemptFinished,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_MODELS = 200
OTHER = "other"
# OTel GenAI semantic-convention bucket boundaries.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Family:
    """A labelled metric whose children are cached by label values (``labels()`` takes a lock
    and builds a tuple each call; this is one dict lookup on the hot path)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class KnownNames:
    """What the configuration names: these label values are always kept."""

    vendors: frozenset[str] = frozenset()
    deployments: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()


class GatewayMetrics:
    """Subscribe ``on_event`` to the dispatcher; the gateway calls the ``observe_*`` methods.
    ``known`` reads the configured names (asked again when an unknown vendor shows up, since
    vendors can be registered after the app is built)."""

    def __init__(self, known: Callable[[], KnownNames] = KnownNames) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._read_known = known
        self._known = known()
        self._models: set[str] = set()
        self._build_dispatcher_metrics()
        self._build_gateway_metrics()

    def _counter(self, name: str, doc: str, labels: Sequence[str]) -> _Family:
        return _Family(Counter(name, doc, labels, registry=self.registry))

    def _histogram(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> _Family:
        return _Family(Histogram(name, doc, labels, buckets=buckets, registry=self.registry))

    def _build_dispatcher_metrics(self) -> None:
        self.requests = self._counter(
            "llmdispatcher_requests",
            "Chat requests finished by the dispatcher, by outcome (ok or the error class).",
            ("vendor", "model", "stream", "outcome"),
        )
        self.attempts = self._counter(
            "llmdispatcher_attempts",
            "Tries against one vendor, by status (ok or the error class).",
            ("vendor", "model", "status"),
        )
        self.errors = self._counter(
            "llmdispatcher_request_errors",
            "Chat requests that failed, by vendor and error type.",
            ("vendor", "error_type"),
        )
        self.retries = self._counter(
            "llmdispatcher_retries",
            "Retries scheduled, by vendor and reason.",
            ("vendor", "reason"),
        )
        self.fallbacks = self._counter(
            "llmdispatcher_fallbacks",
            "Fallbacks to the next vendor, by reason.",
            ("from_vendor", "to_vendor", "reason"),
        )
        self.duration = self._histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (the whole request: attempts, waits, fallbacks).",
            (*GENAI, "error_type"),
            DURATION_BUCKETS,
        )
        self.tokens = self._histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request, by gen_ai_token_type (input or output).",
            (*GENAI, "gen_ai_token_type"),
            TOKEN_BUCKETS,
        )
        self.ttft = self._histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first token of a streamed answer.",
            GENAI,
            TTFT_BUCKETS,
        )

    def _build_gateway_metrics(self) -> None:
        self.overhead = self._histogram(
            "llmdispatcher_gateway_overhead_seconds",
            "Gateway time per request, excluding the time spent inside vendor attempts.",
            ("vendor", "model"),
            OVERHEAD_BUCKETS,
        )
        self.http_errors = self._counter(
            "llmdispatcher_http_errors",
            "Error responses sent to clients, by status and error type.",
            ("status", "type"),
        )
        self.rejections = self._counter(
            "llmdispatcher_rate_limit_rejections",
            "Requests refused by the gateway's own per-key limits or budgets.",
            ("key", "reason"),
        )
        self.cost = self._counter(
            "llmdispatcher_cost_usd", "Cost of answered requests in USD.", ("vendor", "model")
        )
        self.key_requests = self._counter(
            "llmdispatcher_key_requests",
            "Chat requests by gateway key name and team, by outcome (ok or the error class).",
            ("key", "team", "outcome"),
        )
        self.key_cost = self._counter(
            "llmdispatcher_key_cost_usd",
            "Cost of answered requests in USD by gateway key name and team.",
            ("key", "team"),
        )
        mode: dict[str, Any] = {"multiprocess_mode": "livesum"}
        self.in_flight = Gauge(
            "llmdispatcher_http_requests_in_flight",
            "HTTP requests being handled.",
            registry=self.registry,
            **mode,
        )
        # Read from the dispatcher at each scrape.
        self.breaker_state = Gauge(
            "llmdispatcher_breaker_state",
            "Circuit breaker state per vendor: 0 closed, 1 half-open, 2 open.",
            ("vendor",),
            registry=self.registry,
            multiprocess_mode="max",
        )

    # --- labels ------------------------------------------------------------------------------
    def model_label(self, model: str | None, *, served: bool = False) -> str:
        """``model`` when configured or already admitted; admitted when ``served`` (a vendor
        answered for it) while fewer than ``MAX_MODELS`` are; else ``other``."""
        if not model:
            return ""
        if model in self._models or model in self._known.models:
            return model
        if not served or len(self._models) >= MAX_MODELS:
            return OTHER
        self._models.add(model)
        return model

    def vendor_label(self, vendor: str | None) -> str:
        """A configured vendor or deployment id; ``vendor/model`` ids of unconfigured
        deployments as their vendor; else ``other``."""
        if not vendor:
            return ""
        found = self._known_label(vendor)
        if found is None:
            self._known = self._read_known()  # rare: a vendor registered after the app was built
            found = self._known_label(vendor)
        return OTHER if found is None else found

    def _known_label(self, vendor: str) -> str | None:
        known = self._known
        if vendor in known.vendors or vendor in known.deployments:
            return vendor
        head = vendor.partition("/")[0]
        return head if head in known.vendors else None

    # --- dispatcher events -----------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            attempt = event.attempt
            model = self.model_label(attempt.model, served=attempt.status == "ok")
            self.attempts(self.vendor_label(attempt.vendor), model, attempt.status).inc()
        elif isinstance(event, RequestFinished):
            self._finished(event)
        elif isinstance(event, RetryScheduled):
            self.retries(self.vendor_label(event.vendor), event.reason).inc()
        elif isinstance(event, FallbackTaken):
            from_vendor, to_vendor = (self.vendor_label(event.from_vendor),
                                      self.vendor_label(event.to_vendor))  # fmt: skip
            self.fallbacks(from_vendor, to_vendor, event.reason).inc()

    def _finished(self, event: RequestFinished) -> None:
        vendor = self.vendor_label(event.vendor)
        model = self.model_label(event.request.model, served=event.error is None)
        outcome = event.error or "ok"
        # OpenTelemetry's GenAI operation names; an embedding produces no output tokens.
        embedding = event.request.kind == "embedding"
        operation = "embeddings" if embedding else "chat"
        self.requests(vendor, model, "true" if event.stream else "false", outcome).inc()
        self.duration(operation, vendor, model, event.error or "").observe(event.latency_s)
        if event.error is not None:
            self.errors(vendor, event.error).inc()
        if event.ttft_s is not None:
            self.ttft(operation, vendor, model).observe(event.ttft_s)
        if event.usage is not None:
            self.tokens(operation, vendor, model, "input").observe(event.usage.prompt_tokens)
            if not embedding:
                self.tokens(operation, vendor, model, "output").observe(
                    event.usage.completion_tokens
                )
        if event.cost_usd:
            self.cost(vendor, model).inc(event.cost_usd)
        tags = event.request.metadata
        if tags and "api_key" in tags:  # set by the gateway: a key's name, never the key
            key, team = str(tags["api_key"]), str(tags.get("team") or "")
            self.key_requests(key, team, outcome).inc()
            if event.cost_usd:
                self.key_cost(key, team).inc(event.cost_usd)

    # --- the gateway's own ------------------------------------------------------------------
    def observe_overhead(self, vendor: str, model: str, seconds: float) -> None:
        self.overhead(self.vendor_label(vendor), self.model_label(model)).observe(max(0.0, seconds))

    def set_breaker(self, vendor: str, state: str) -> None:
        self.breaker_state.labels(vendor).set(BREAKER_STATES.get(state, 0))

    def observe_error(self, status: int, kind: str) -> None:
        self.http_errors(str(status), kind).inc()

    def observe_rejection(self, key: str, reason: str) -> None:
        self.rejections(key, reason).inc()

    def render(self) -> bytes:
        """The exposition text; across all workers when they share a multiprocess directory."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
