"""``priority``: the deployments in the order they are listed; later ones are fallbacks."""

from __future__ import annotations

from collections.abc import Sequence

from ...settings.routing import Deployment
from ..model import Candidate, RankContext


class PriorityStrategy:
    """Score: the 0-based position (lower is tried first)."""

    name = "priority"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        total = len(deployments)
        return [
            Candidate(d, float(i), f"priority {i + 1} of {total}")
            for i, d in enumerate(deployments)
        ]
