"""``latency``: the lowest recent latency first, with a little exploration.

The measure is the deployment's EWMA of time to first token for a stream call
(``HealthView.ttft_ewma_s``) and of total latency otherwise (``latency_ewma_s``).

1. Deployments without a measurement come first, in the listed order: they need one.
2. The measured ones follow, fastest first (ties keep the listed order).
3. Exploration: when every deployment is measured and there are at least two, one
   ``rng.random()`` is drawn; below the exploration rate (``group.exploration``, 0.05 without a
   group), ``rng.randrange(1, n)`` picks one of the non-best deployments and moves it to the
   front (the others keep their order). So each non-best deployment is tried first on
   ``rate / (n - 1)`` of requests, and one that was slow but has recovered gets measured again.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...settings.routing import Deployment
from ..model import Candidate, HealthView, RankContext

DEFAULT_EXPLORATION = 0.05


class LatencyStrategy:
    """Score: the EWMA in seconds (``None``: not measured yet)."""

    name = "latency"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        label = "ttft ewma" if context.stream else "latency ewma"
        unmeasured: list[Candidate] = []
        measured: list[Candidate] = []
        for deployment in deployments:
            seconds = recent_latency_s(context.health.get(deployment.id), context.stream)
            if seconds is None:
                unmeasured.append(Candidate(deployment, None, "unmeasured: tried first"))
            else:
                measured.append(Candidate(deployment, seconds, f"{label} {seconds:.2f}s"))
        measured.sort(key=lambda c: c.score or 0.0)
        if unmeasured or len(measured) < 2:
            return unmeasured + measured
        return _explore(measured, context)


def recent_latency_s(view: HealthView | None, stream: bool) -> float | None:
    """The EWMA that matters for this call: time to first token for a stream, else total."""
    if view is None:
        return None
    return view.ttft_ewma_s if stream else view.latency_ewma_s


def _explore(ranked: list[Candidate], context: RankContext) -> list[Candidate]:
    rate = context.group.exploration if context.group is not None else DEFAULT_EXPLORATION
    if context.rng.random() >= rate:
        return ranked
    chosen = ranked.pop(context.rng.randrange(1, len(ranked)))
    explored = Candidate(chosen.deployment, chosen.score, f"{chosen.detail} (exploring)")
    return [explored, *ranked]
