"""The gateway's state: one ``Gateway`` per app, one ``Trace`` per HTTP request.

A ``Trace`` collects what the response headers report (vendor, model, attempts, time spent
inside vendor attempts). It is also the request's context variable, so the dispatcher-event
subscriber ``count_attempt`` (called synchronously inside the request's task) can count the
attempts a stream made before its first chunk.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import web

from ..clock import Clock, SystemClock
from ..config import GatewayConfig
from ..dispatcher import Dispatcher
from ..observability.events import AttemptFinished, Event
from ..types import Attempt, Response
from .auth import Admission, ApiKey, KeyStore
from .catalog import ModelCatalog
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
    """Dispatcher subscriber: count attempts against the current request's trace."""
    if isinstance(event, AttemptFinished):
        trace = CURRENT.get()
        if trace is not None:
            trace.live_attempts += 1


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
    started_at: float = field(default_factory=time.time)
    auth_failures: Throttle = field(init=False)  # by client address
    vendor_checks: Throttle = field(init=False)  # by key name

    def __post_init__(self) -> None:
        self.auth_failures = Throttle(self.settings.auth_failures_per_minute, 60.0, self.clock)
        self.vendor_checks = Throttle(self.settings.vendor_checks_per_minute, 60.0, self.clock)


GATEWAY = web.AppKey("gateway", Gateway)
TRACE = web.RequestKey("trace", Trace)
