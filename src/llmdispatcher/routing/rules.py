"""Routing rules: a condition over the request and the vendor it sends matching requests to."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..types import Request


@dataclass(frozen=True, slots=True)
class RoutingCondition:
    """What a request must look like for a rule to apply. Unset fields match everything.

    ``model_pattern`` is a glob (``gpt-4*``); ``max_tokens`` matches requests whose
    ``max_tokens`` is set and at most this; the temperature range is inclusive and matches only
    requests that set a temperature.
    """

    model_pattern: str | None = None
    max_tokens: int | None = None
    temperature_min: float | None = None
    temperature_max: float | None = None

    def matches(self, request: Request) -> bool:
        if self.model_pattern is not None and not fnmatch.fnmatchcase(
            request.model, self.model_pattern
        ):
            return False
        if self.max_tokens is not None and (
            request.max_tokens is None or request.max_tokens > self.max_tokens
        ):
            return False
        return self._temperature_matches(request.temperature)

    def _temperature_matches(self, temperature: float | None) -> bool:
        if self.temperature_min is None and self.temperature_max is None:
            return True
        if temperature is None:
            return False
        low = self.temperature_min if self.temperature_min is not None else float("-inf")
        high = self.temperature_max if self.temperature_max is not None else float("inf")
        return low <= temperature <= high


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Send requests matching ``condition`` to ``vendor``. Lower ``priority`` numbers win."""

    vendor: str
    condition: RoutingCondition = field(default_factory=RoutingCondition)
    priority: int = 100
    enabled: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.vendor:
            raise ValueError("routing_rules[].vendor: a vendor name is required")


def first_match(rules: tuple[RoutingRule, ...], request: Request) -> RoutingRule | None:
    """The enabled matching rule with the lowest priority number (ties: first listed)."""
    best: RoutingRule | None = None
    for rule in rules:
        if (
            rule.enabled
            and rule.condition.matches(request)
            and (best is None or rule.priority < best.priority)
        ):
            best = rule
    return best
