"""Events the dispatcher emits. Subscribers (stats, logging, later metrics and the ledger)
receive them synchronously, so a subscriber must be quick and must not raise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..types import Attempt, Request, ToolCall, Usage

if TYPE_CHECKING:
    from ..routing.model import RoutingDecision


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One try against one vendor ended (successfully or not)."""

    request_id: str
    attempt: Attempt
    ttft_s: float | None = None
    usage: Usage | None = None
    deployment: str | None = None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    request_id: str
    vendor: str
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    request_id: str
    from_vendor: str
    to_vendor: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """The dispatcher is done with a request: ``error`` is None on success."""

    request_id: str
    request: Request
    vendor: str | None
    model: str | None
    stream: bool
    latency_s: float
    ttft_s: float | None
    usage: Usage | None
    error: str | None
    attempts: tuple[Attempt, ...]
    cost_usd: float | None = None
    deployment: str | None = None
    group: str | None = None
    fallbacks: int = 0
    price_version: str | None = None
    api_key_id: str | None = None  # the gateway key's name (request.metadata["api_key"])
    output_text: str | None = None  # the answer, only when the config asks to log content
    finish_reason: str | None = None  # why the answer ended; a stream's as its last chunk said
    tool_calls: tuple[ToolCall, ...] = ()  # the answer's tool calls (a stream's, assembled)
    routing: RoutingDecision | None = None  # why it went where it went (the ledger keeps it)


Event = AttemptFinished | RetryScheduled | FallbackTaken | RequestFinished
Subscriber = Callable[[Event], None]
