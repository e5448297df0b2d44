"""``priority``: the deployments in the order they are listed; later ones are fallbacks."""

from __future__ import annotations

from collections.abc import Sequence

from ..model import Candidate, Deployment, RankContext


class PriorityStrategy:
    """Score: the 0-based position (lower is tried first)."""

    name = "priority"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        total = len(deployments)
        return [
            Candidate(d, float(i), f"priority {i + 1} of {total}")
            for i, d in enumerate(deployments)
        ]
