"""The routing vocabulary at run time: what the dispatcher has seen of a deployment, what a
strategy ranks with, scored candidates, and the decision that explains where a request goes.
Deployments and model groups themselves are settings (settings/routing.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..settings.routing import Deployment, ModelGroup

if TYPE_CHECKING:
    import random

    from ..errors import VendorError
    from ..settings.rules import RoutingRule
    from ..types import Attempt, Request


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the dispatcher has observed of one deployment, for strategies to score with."""

    in_flight: int = 0
    latency_ewma_s: float | None = None
    ttft_ewma_s: float | None = None
    ttft_p90_s: float | None = None
    ttft_p95_s: float | None = None
    latency_p90_s: float | None = None
    error_rate: float = 0.0
    samples: int = 0


@dataclass(frozen=True, slots=True)
class RankContext:
    """Everything a strategy may look at. ``prompt_tokens`` is the local estimate;
    ``cost_per_request`` is the estimated USD cost per deployment id (None: unknown price)."""

    request: Request
    prompt_tokens: int
    max_tokens: int
    stream: bool
    health: Mapping[str, HealthView]
    cost_per_request: Mapping[str, float | None]
    rng: random.Random
    group: ModelGroup | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deployment in the order it will be tried, with the strategy's score and why."""

    deployment: Deployment
    score: float | None = None
    detail: str = ""
    probe: bool = False  # every breaker was open: this one is tried as the half-open probe


class Strategy(Protocol):
    """Orders deployments that passed filtering; never drops one (filtering is separate)."""

    name: str

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]: ...


@dataclass(slots=True)
class RoutingDecision:
    """Why a request goes where it goes: ``response.routing`` and ``dispatcher.explain()``."""

    rule: RoutingRule | None
    strategy: str
    group: str | None
    candidates: list[Candidate]
    excluded: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    # What ranking saw, kept for fallbacks that only show after sending (context, filter).
    context: RankContext | None = field(default=None, repr=False, compare=False)
    # The vendors' own errors for exclusions that were refusals of the request itself.
    refusals: dict[str, VendorError] = field(default_factory=dict, repr=False, compare=False)
    # Deployments excluded only because their circuit breaker is open.
    breaker_blocked: list[Deployment] = field(default_factory=list, repr=False, compare=False)

    @property
    def vendors(self) -> tuple[str, ...]:
        return tuple(c.deployment.vendor for c in self.candidates)
