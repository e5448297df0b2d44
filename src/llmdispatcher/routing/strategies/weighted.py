"""``weighted``: a weighted random order, drawn without replacement.

The first deployment is drawn with probability ``weight / sum(weights)``; the next is drawn the
same way from those left, and so on, so every deployment is in the order and the share of
*first* attempts each one gets is its weight share. Weight 0 means "last resort only": those
come after every positive weight, in the listed order. Randomness: ``context.rng.random()``,
one call per positive-weight deployment but the last.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ...settings.routing import Deployment
from ..model import Candidate, RankContext


class WeightedStrategy:
    """Score: the deployment's share of the total weight (its chance of being first)."""

    name = "weighted"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        total = sum(d.weight for d in deployments)
        pool = [d for d in deployments if d.weight > 0]
        order: list[Deployment] = []
        while len(pool) > 1:
            order.append(pool.pop(_draw(pool, context.rng)))
        order += pool
        ranked = [Candidate(d, d.weight / total, f"weight {d.weight:g}/{total:g}") for d in order]
        ranked += [Candidate(d, 0.0, "weight 0: last resort") for d in deployments if d.weight <= 0]
        return ranked


def _draw(pool: Sequence[Deployment], rng: random.Random) -> int:
    """The index of one deployment, drawn with probability proportional to its weight."""
    point = rng.random() * sum(d.weight for d in pool)
    for index, deployment in enumerate(pool):
        point -= deployment.weight
        if point < 0:
            return index
    return len(pool) - 1  # float rounding left the point at the very top
