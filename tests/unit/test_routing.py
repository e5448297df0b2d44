"""Vendor choice: override > best matching rule > group > default_vendor > a vendor that
claims the model > first registered; then fallbacks."""

import pytest

from llmdispatcher import Config, Dispatcher, Request, RoutingCondition, RoutingRule
from llmdispatcher.errors import ConfigError, NoVendorsRegistered
from llmdispatcher.routing.model import RoutingDecision
from llmdispatcher.settings.rules import RequestFacts
from tests.unit.echo_vendor import EchoVendor

VENDORS = ["a", "b", "c"]


def req(**kwargs: object) -> Request:
    return Request(**{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kwargs})  # type: ignore[arg-type]


def matches(cond: RoutingCondition, request: Request) -> bool:
    return cond.matches(
        request, RequestFacts.of(request, prompt_tokens=1, stream=False, now_wall=0)
    )


def test_glob_max_tokens_and_temperature_conditions() -> None:
    cond = RoutingCondition(
        model_pattern="gpt-4*", max_tokens=100, temperature_min=0.0, temperature_max=0.5
    )
    assert matches(cond, req(max_tokens=100, temperature=0.5))
    assert not matches(cond, req(max_tokens=101, temperature=0.5))
    assert not matches(cond, req(max_tokens=50))  # no temperature given: the range cannot match
    assert not matches(cond, req(max_tokens=50, temperature=0.6))
    assert not matches(cond, req(model="claude-x", max_tokens=50, temperature=0.1))
    assert matches(RoutingCondition(), req())


def plan(
    request: Request,
    rules: tuple[RoutingRule, ...] = (),
    default: str | None = None,
    fallbacks: tuple[str, ...] = (),
    vendors: list[str] = VENDORS,
    **config: object,
) -> RoutingDecision:
    config_ = Config(
        routing_rules=rules, default_vendor=default, fallback_vendors=fallbacks, **config
    )  # type: ignore[arg-type]
    return Dispatcher(config_, vendors=[EchoVendor(v) for v in vendors]).plan(request)


def test_lower_priority_number_wins_and_disabled_rules_are_skipped() -> None:
    rules = (
        RoutingRule(RoutingCondition("gpt-*"), vendor="b", priority=2),
        RoutingRule(RoutingCondition("gpt-4*"), vendor="c", priority=1, enabled=False),
        RoutingRule(RoutingCondition("claude*"), group="g", priority=0),
        RoutingRule(RoutingCondition("gpt-4*"), vendor="a", priority=1),
    )
    decision = plan(req(), rules, "c", ("b",))
    assert decision.vendors == ("a", "b")
    assert decision.rule is rules[3]


def test_order_of_precedence() -> None:
    rule = (RoutingRule(RoutingCondition("gpt-*"), vendor="b"),)
    assert plan(req(vendor="c"), rule, "a", ("a",)).vendors == ("c",)
    assert plan(req(), rule, "a").vendors == ("b",)
    assert plan(req(model="x"), rule, "c", ("a", "c", "b")).vendors == ("c", "a", "b")
    assert plan(req(model="x")).vendors == ("a",)


def test_a_vendor_that_claims_the_model_beats_the_first_registered() -> None:
    vendors = [EchoVendor("gpt"), EchoVendor("claude", prefixes=("claude-",))]
    decision = Dispatcher(vendors=vendors).plan(req(model="claude-sonnet-4-6"))
    assert decision.vendors == ("claude",)
    assert decision.reason == "vendor serves 'claude-sonnet-4-6'"


def test_errors() -> None:
    with pytest.raises(NoVendorsRegistered):
        plan(req(), vendors=[])
    with pytest.raises(ConfigError, match=r"'zzz' .*request.vendor.* registered: a, b"):
        plan(req(vendor="zzz"))
