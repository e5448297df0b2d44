"""``objective``: constraints first, then one weighted score over cost, latency and errors.

With ``o = group.objective`` (defaults without a group: no constraints, weights 1):

1. Constraints. A deployment violates one when its observed ``ttft_p95_s`` is over
   ``o.max_p95_ttft_s`` or, once it has samples, its ``error_rate`` is over
   ``o.max_error_rate``. Unobserved deployments pass (they need observing). Violators are
   ranked after every deployment that passes, ordered by the same score, with the reason.
2. Score (lower is better)::

       o.cost_weight * cost / max_cost + o.latency_weight * latency / max_latency
           + o.error_weight * error_rate

   ``cost`` is the request's estimate (as in ``cost``), ``latency`` the EWMA the ``latency``
   strategy uses (time to first token for streams, else total). Each is divided by the largest
   known value among the deployments being ranked, so it lies in [0, 1] and keeps its ratios
   (half the price scores half); when the largest is 0 every term is 0. An unknown price counts
   as the most expensive (1.0), an unmeasured latency as the fastest (0.0, so it gets
   measured). The error rate is already a fraction in [0, 1] and is used as it is.
   Ties keep the listed order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...settings.routing import Deployment, Objective
from ..model import Candidate, HealthView, RankContext
from .cost import cost_of
from .latency import recent_latency_s


class ObjectiveStrategy:
    """Score: the weighted sum above."""

    name = "objective"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        objective = context.group.objective if context.group is not None else Objective()
        views = [context.health.get(d.id, HealthView()) for d in deployments]
        costs = _scaled([cost_of(d, context) for d in deployments], unknown=1.0)
        latencies = _scaled([recent_latency_s(v, context.stream) for v in views], unknown=0.0)
        passing: list[Candidate] = []
        violating: list[Candidate] = []
        for deployment, view, cost, latency in zip(
            deployments, views, costs, latencies, strict=True
        ):
            terms = (
                objective.cost_weight * cost,
                objective.latency_weight * latency,
                objective.error_weight * view.error_rate,
            )
            score = sum(terms)
            detail = "score {:.2f} (cost {:.2f}, latency {:.2f}, errors {:.2f})".format(
                score, *terms
            )
            broken = violation(objective, view)
            if broken is None:
                passing.append(Candidate(deployment, score, detail))
            else:
                violating.append(Candidate(deployment, score, f"{broken}: last; {detail}"))
        passing.sort(key=_score)
        violating.sort(key=_score)
        return passing + violating


def violation(objective: Objective, view: HealthView) -> str | None:
    """Why ``view`` breaks a constraint of ``objective``, or ``None``."""
    p95, bound = view.ttft_p95_s, objective.max_p95_ttft_s
    if bound is not None and p95 is not None and p95 > bound:
        return f"p95 ttft {p95:.2f}s > {bound:.2f}s"
    rate, limit = view.error_rate, objective.max_error_rate
    if limit is not None and view.samples > 0 and rate > limit:
        return f"error rate {rate:.1%} > {limit:.1%}"
    return None


def _scaled(values: Sequence[float | None], unknown: float) -> list[float]:
    """Each known value divided by the largest known one; ``unknown`` for the rest."""
    top = max((v for v in values if v is not None), default=0.0)
    return [unknown if v is None else (v / top if top > 0 else 0.0) for v in values]


def _score(candidate: Candidate) -> float:
    return candidate.score or 0.0
