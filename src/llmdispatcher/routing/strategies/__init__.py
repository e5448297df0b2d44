"""Strategies: how the deployments left after filtering are ordered. One module each.

Every strategy returns *all* the deployments it is given, in the order they will be tried, each
with a score and a short reason (``Candidate``); filtering (capabilities, context window, open
breakers) happens before. Randomness comes only from ``RankContext.rng``.

``priority`` the listed order · ``weighted`` weighted random order · ``least_busy`` fewest
requests in flight · ``latency`` lowest recent latency, with exploration · ``cost`` cheapest
estimate for this request · ``objective`` constraints, then a weighted cost/latency/error score.
"""

from __future__ import annotations

import importlib

from ...settings.routing import STRATEGIES
from ..model import Strategy
from .cost import estimate_cost_usd

__all__ = ["STRATEGIES", "estimate_cost_usd", "get_strategy"]

# name -> (module, class); imported on first use
_REGISTRY: dict[str, tuple[str, str]] = {
    "priority": ("priority", "PriorityStrategy"),
    "weighted": ("weighted", "WeightedStrategy"),
    "least_busy": ("least_busy", "LeastBusyStrategy"),
    "latency": ("latency", "LatencyStrategy"),
    "cost": ("cost", "CostStrategy"),
    "objective": ("objective", "ObjectiveStrategy"),
}


def get_strategy(name: str) -> Strategy:
    """A strategy by name; ``ValueError`` listing the known names for an unknown one."""
    try:
        module_name, class_name = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown routing strategy {name!r}; expected one of {', '.join(_REGISTRY)}"
        ) from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    strategy: Strategy = getattr(module, class_name)()
    return strategy
