"""Routing settings: deployments and model groups.

A *deployment* is one way to serve a model: a registered vendor plus the model name that vendor
knows it by (plus weight, tags, limits and an optional price). A *model group* is a public name
users ask for (``chat-default``, or simply ``gpt-4o``) that maps to one or more deployments,
with the strategy that orders them and the groups to fall back to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

STRATEGIES: tuple[str, ...] = ("priority", "weighted", "least_busy", "latency", "cost", "objective")
STREAM_BREAKS: tuple[str, ...] = ("error", "resume")
StreamBreak = Literal["error", "resume"]
StrategyName = Literal["priority", "weighted", "least_busy", "latency", "cost", "objective"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One vendor serving one model. ``name`` defaults to ``vendor/model``.

    ``input_price``/``output_price`` (USD per million tokens) are used by the ``cost``
    strategy when the shipped price table has no row for the model; ``context_window``
    likewise overrides the table for capability filtering.
    """

    vendor: str
    model: str
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    name: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    max_concurrency: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None
    # ``id``, derived once: the router, breakers, limits and accounting ask for it a dozen
    # times per request.
    _id: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        if not self.vendor or not self.model:
            raise ValueError("deployment: vendor and model are both required")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError("deployment.weight: must be a finite number >= 0")
        object.__setattr__(self, "_id", self.name or f"{self.vendor}/{self.model}")

    @property
    def id(self) -> str:
        return self._id


@dataclass(frozen=True, slots=True)
class Objective:
    """The ``objective`` strategy: constraints first, then a weighted score (lower is better).

    Constraints exclude a deployment whose observed p95 time to first token or error rate is
    over the bound (a deployment with no observations yet passes, so it can be measured).
    The score is ``cost_weight * normalised cost + latency_weight * normalised latency +
    error_weight * error rate``, each normalised to [0, 1] over the candidates.
    """

    max_p95_ttft_s: float | None = None
    max_error_rate: float | None = None
    cost_weight: float = 1.0
    latency_weight: float = 1.0
    error_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A public model name and the deployments behind it.

    ``fallbacks``: groups tried, in order, when every deployment here failed.
    ``context_window_fallbacks``: groups for prompts too long for these deployments.
    ``content_filter_fallbacks``: groups tried when a deployment's content filter refused.
    ``hedge_after_s``: start the next deployment when the first has not produced its first
    token after this many seconds (``"p90"``: its live p90 time to first token).
    ``on_stream_break``: ``error`` or ``resume`` a stream that breaks after its first token
    (see lifecycle/relay.py); None takes ``Config.on_stream_break``.
    """

    name: str
    deployments: tuple[Deployment, ...]
    strategy: StrategyName = "priority"
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    content_filter_fallbacks: tuple[str, ...] = ()
    hedge_after_s: float | str | None = None
    objective: Objective = field(default_factory=Objective)
    exploration: float = 0.05
    on_stream_break: StreamBreak | None = None

    def __post_init__(self) -> None:
        for name in (
            "deployments",
            "fallbacks",
            "context_window_fallbacks",
            "content_filter_fallbacks",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.name:
            raise ValueError("model_groups[].name: a name is required")
        if not self.deployments:
            raise ValueError(f"model group {self.name!r}: at least one deployment is required")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"model group {self.name!r}: strategy {self.strategy!r} is not "
                f"one of {', '.join(STRATEGIES)}"
            )
        if isinstance(self.hedge_after_s, str) and self.hedge_after_s != "p90":
            raise ValueError(f"model group {self.name!r}: hedge_after_s is seconds or 'p90'")
        if not 0.0 <= self.exploration <= 1.0:
            raise ValueError(f"model group {self.name!r}: exploration must be in [0, 1]")
        if self.on_stream_break not in (None, *STREAM_BREAKS):
            raise ValueError(
                f"model group {self.name!r}: on_stream_break must be one of "
                f"{', '.join(STREAM_BREAKS)}"
            )
