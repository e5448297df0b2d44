"""What the dispatcher knows of its deployments right now, for dashboards: per deployment its
circuit breaker (and how long until an open one lets a probe through) and its observed health,
and per vendor the rate-limit headroom its own headers last reported.

Read-only views over the dispatcher's shared ``Services``; nothing here changes state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .routing.model import HealthView

if TYPE_CHECKING:
    from .lifecycle.scope import Services
    from .resilience.circuit_breaker import BreakerState


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One deployment (``vendor/model``) now."""

    id: str
    vendor: str
    model: str
    breaker: BreakerState
    closes_in_s: float | None  # an open breaker: seconds until it lets a probe through
    health: HealthView


@dataclass(frozen=True, slots=True)
class Headroom:
    """What a vendor said is left of one of its rate limits."""

    kind: str  # "requests" or "tokens"
    remaining: int
    resets_in_s: float


def deployment_statuses(services: Services) -> list[DeploymentStatus]:
    """Every configured deployment, and every other one a request has used, sorted by id."""
    ids = {d.id for g in services.config.model_groups for d in g.deployments}
    ids |= set(services.health.ids()) | set(services.breakers.keys())
    now = services.clock.now()
    found = []
    for deployment_id in sorted(ids):
        vendor, _, model = deployment_id.partition("/")
        until = services.breakers.open_until(deployment_id)
        found.append(
            DeploymentStatus(
                id=deployment_id,
                vendor=vendor,
                model=model,
                breaker=services.breakers.state(deployment_id),
                closes_in_s=None if until is None else max(0.0, until - now),
                health=services.health.view(deployment_id),
            )
        )
    return found


def headroom(services: Services, vendor: str) -> list[Headroom]:
    return [Headroom(k, left, max(0.0, s)) for k, left, s in services.quotas.headroom(vendor)]
