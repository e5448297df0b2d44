"""The ordered list of vendors one request will try."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError, NoVendorsRegistered
from ..types import Request
from .rules import RoutingRule, first_match


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The vendors to try in order, and why the first one was chosen."""

    vendors: tuple[str, ...]
    reason: str
    rule: RoutingRule | None = None


def plan_route(
    request: Request,
    registered: Sequence[str],
    rules: tuple[RoutingRule, ...],
    default_vendor: str | None,
    fallback_vendors: Sequence[str],
) -> RoutePlan:
    """``request.vendor`` > the best matching rule > ``default_vendor`` > the first registered;
    then ``fallback_vendors`` in order, without repeats."""
    if not registered:
        raise NoVendorsRegistered()
    rule = None
    if request.vendor:
        first, reason = request.vendor, "request.vendor override"
    elif (rule := first_match(rules, request)) is not None:
        first, reason = rule.vendor, f"rule {rule.name or rule.condition!r}"
    elif default_vendor:
        first, reason = default_vendor, "default_vendor"
    else:
        first, reason = registered[0], "first registered vendor"
    if first not in registered:
        raise ConfigError(
            f"vendor {first!r} (from {reason}) is not registered; registered: "
            f"{', '.join(registered)}"
        )
    order = [first]
    if not request.vendor:  # an explicit override means exactly that vendor
        order += [v for v in fallback_vendors if v in registered and v not in order]
    return RoutePlan(tuple(order), reason, rule)
