"""The gateway's state: one ``Gateway`` per app, one ``Trace`` per HTTP request.

A ``Trace`` collects what the response headers report (vendor, model, attempts, time spent
inside vendor attempts). It is also the request's context variable, so the dispatcher-event
subscriber ``count_attempt`` (called synchronously inside the request's task) can count the
attempts a stream made before its first chunk, and note the tokens and cost of the finished
request (what a stored key's limits and usage are settled with).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

from ..clock import Clock, SystemClock
from ..config import GatewayConfig
from ..dispatcher import Dispatcher
from ..observability.events import AttemptFinished, CacheLookup, Event, RequestFinished
from ..types import Attempt, CacheControl, Response
from .auth import Admission, ApiKey, KeyStore
from .catalog import ModelCatalog
from .key_cache import KeyCache
from .key_usage import KeyLease, KeyUsage
from .metrics import GatewayMetrics
from .throttle import Throttle


@dataclass(slots=True)
class Trace:
    """What the gateway learned about one HTTP request."""

    request_id: str
    started: float
    key: ApiKey | None = None
    vendor: str = ""
    model: str = ""
    attempts: int = 0
    vendor_s: float = 0.0
    live_attempts: int = 0
    lease: KeyLease | None = None  # a stored key's limits, settled when the request ends
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cache_control: CacheControl | None = None  # from the Cache-Control request header
    cache: str = ""  # what the response cache did: hit | miss | bypass ("" without one)
    # Noted when the dispatcher finishes the request (for the access log).
    input_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float | None = None
    trace_id: str | None = None
    cost: float | None = None
    ledger_id: str = ""  # the dispatcher's id of the finished request (its ledger row's)

    def record(self, response: Response) -> None:
        self.vendor, self.model = response.vendor, response.model
        self.record_attempts(response.attempts)

    def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = len(attempts)
        self.vendor_s = sum(a.duration_s for a in attempts)
        if attempts and not self.vendor:
            self.vendor, self.model = attempts[-1].vendor, attempts[-1].model

    def record_failure(self, exc: BaseException) -> None:
        attempts: Sequence[Attempt] = getattr(exc, "attempts", ()) or ()
        self.record_attempts(attempts)

    def overhead_s(self, now: float) -> float:
        return max(0.0, now - self.started - self.vendor_s)


CURRENT: ContextVar[Trace | None] = ContextVar("llmdispatcher_gateway_trace", default=None)


def count_attempt(event: Event) -> None:
    """Dispatcher subscriber: count attempts against the current request's trace, and note
    what the response cache did and what the finished request used."""
    if isinstance(event, AttemptFinished):
        trace = CURRENT.get()
        if trace is not None:
            trace.live_attempts += 1
    elif isinstance(event, RequestFinished):
        trace = CURRENT.get()
        if trace is None:
            return
        trace.ledger_id = event.request_id
        usage = event.usage
        if usage is not None:
            trace.input_tokens, trace.output_tokens = usage.prompt_tokens, usage.completion_tokens
        trace.cost, trace.ttft_s, trace.trace_id = event.cost_usd, event.ttft_s, event.trace_id
        if trace.lease is not None:
            trace.tokens = usage.total_tokens if usage else 0
            trace.cost_usd = Decimal(str(event.cost_usd or 0))
    elif isinstance(event, CacheLookup):
        trace = CURRENT.get()
        if trace is not None:
            trace.cache = event.outcome


@dataclass(slots=True)
class Gateway:
    """Everything the handlers share; stored on the app under ``GATEWAY``."""

    dispatcher: Dispatcher
    settings: GatewayConfig
    keys: KeyStore
    metrics: GatewayMetrics
    catalog: ModelCatalog
    admission: Admission | None = None
    clock: Clock = field(default_factory=SystemClock)
    stored_keys: KeyCache | None = None
    key_usage: KeyUsage | None = None
    group_models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    settling: set[asyncio.Future[None]] = field(default_factory=set)  # tenancy.finish
    started_at: float = field(default_factory=time.time)
    auth_failures: Throttle = field(init=False)  # by client address
    vendor_checks: Throttle = field(init=False)  # by key name

    def __post_init__(self) -> None:
        self.auth_failures = Throttle(self.settings.auth_failures_per_minute, 60.0, self.clock)
        self.vendor_checks = Throttle(self.settings.vendor_checks_per_minute, 60.0, self.clock)


GATEWAY = web.AppKey("gateway", Gateway)
TRACE = web.RequestKey("trace", Trace)
