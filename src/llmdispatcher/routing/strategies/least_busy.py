"""``least_busy``: the deployment with the fewest requests in flight first.

In-flight counts come from ``context.health`` (a deployment without a view counts 0); ties keep
the listed order, so an idle group behaves like ``priority``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...settings.routing import Deployment
from ..model import Candidate, HealthView, RankContext


class LeastBusyStrategy:
    """Score: the number of requests in flight."""

    name = "least_busy"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        idle = HealthView()
        busy = [(context.health.get(d.id, idle).in_flight, d) for d in deployments]
        busy.sort(key=lambda pair: pair[0])  # stable: ties keep the listed order
        return [Candidate(d, float(n), f"{n} in flight") for n, d in busy]
