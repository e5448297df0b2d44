"""Vendor choice: override > best matching rule > default_vendor > first registered."""

import pytest

from llmdispatcher import Request, RoutingCondition, RoutingRule
from llmdispatcher.errors import ConfigError, NoVendorsRegistered
from llmdispatcher.routing.plan import plan_route

VENDORS = ["a", "b", "c"]


def req(**kwargs: object) -> Request:
    return Request(**{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kwargs})  # type: ignore[arg-type]


def test_glob_max_tokens_and_temperature_conditions() -> None:
    cond = RoutingCondition(
        model_pattern="gpt-4*", max_tokens=100, temperature_min=0.0, temperature_max=0.5
    )
    assert cond.matches(req(max_tokens=100, temperature=0.5))
    assert not cond.matches(req(max_tokens=101, temperature=0.5))
    assert not cond.matches(req(max_tokens=50))  # no temperature given: the range cannot match
    assert not cond.matches(req(max_tokens=50, temperature=0.6))
    assert not cond.matches(req(model="claude-x", max_tokens=50, temperature=0.1))
    assert RoutingCondition().matches(req())


def test_lower_priority_number_wins_and_disabled_rules_are_skipped() -> None:
    rules = (
        RoutingRule("b", RoutingCondition("gpt-*"), priority=2),
        RoutingRule("c", RoutingCondition("gpt-4*"), priority=1, enabled=False),
        RoutingRule("a", RoutingCondition("gpt-4*"), priority=1),
    )
    plan = plan_route(req(), VENDORS, rules, "c", ("b",))
    assert plan.vendors == ("a", "b")
    assert plan.rule is rules[2]


def test_order_of_precedence() -> None:
    rule = (RoutingRule("b", RoutingCondition("gpt-*")),)
    assert plan_route(req(vendor="c"), VENDORS, rule, "a", ("a",)).vendors == ("c",)
    assert plan_route(req(), VENDORS, rule, "a", ()).vendors == ("b",)
    assert plan_route(req(model="x"), VENDORS, rule, "c", ("a", "c", "b")).vendors == (
        "c",
        "a",
        "b",
    )
    assert plan_route(req(model="x"), VENDORS, (), None, ()).vendors == ("a",)


def test_errors() -> None:
    with pytest.raises(NoVendorsRegistered):
        plan_route(req(), [], (), None, ())
    with pytest.raises(ConfigError, match=r"'zzz' .*request.vendor override.* registered: a, b"):
        plan_route(req(vendor="zzz"), VENDORS, (), None, ())
