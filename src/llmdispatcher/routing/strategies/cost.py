"""``cost``: the cheapest deployment for this request first.

The estimate per deployment is ``context.cost_per_request[deployment.id]`` (the router fills it
from the price table, else ``estimate_cost_usd``; a deployment missing from the map gets
``estimate_cost_usd`` here): the estimated prompt tokens at the input price plus
``max_tokens`` at the output price, an upper bound on the answer. Deployments with
an unknown price (``None`` or missing) come after every priced one, in the listed order; ties
keep the listed order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...settings.routing import Deployment
from ..model import Candidate, RankContext

_PER_TOKEN = 1e-6  # prices are USD per million tokens


def estimate_cost_usd(deployment: Deployment, prompt_tokens: int, max_tokens: int) -> float | None:
    """USD for ``prompt_tokens`` in and ``max_tokens`` out at the deployment's own
    ``input_price``/``output_price`` (USD per million tokens); ``None`` unless both are set.
    An estimate for ranking; billed cost is computed from the price table with ``Decimal``."""
    if deployment.input_price is None or deployment.output_price is None:
        return None
    return (
        prompt_tokens * deployment.input_price + max_tokens * deployment.output_price
    ) * _PER_TOKEN


def cost_of(deployment: Deployment, context: RankContext) -> float | None:
    """The estimate from ``context.cost_per_request``, else from the deployment's prices."""
    if deployment.id in context.cost_per_request:
        return context.cost_per_request[deployment.id]
    return estimate_cost_usd(deployment, context.prompt_tokens, context.max_tokens)


class CostStrategy:
    """Score: the estimated USD for this request (``None``: price unknown)."""

    name = "cost"

    def rank(self, deployments: Sequence[Deployment], context: RankContext) -> list[Candidate]:
        priced: list[Candidate] = []
        unknown: list[Candidate] = []
        for deployment in deployments:
            usd = cost_of(deployment, context)
            if usd is None:
                unknown.append(Candidate(deployment, None, "price unknown: after priced ones"))
            else:
                priced.append(Candidate(deployment, usd, f"est ${usd:.6f}"))
        priced.sort(key=lambda c: c.score or 0.0)
        return priced + unknown
