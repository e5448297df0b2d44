"""``route explain``: which vendor a request would go to, and why. Nothing is sent."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from .main import config_option, load_dispatcher, require_vendor
from .output import echo, style

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from ..routing.model import RoutingDecision
    from ..settings.rules import RoutingCondition, RoutingRule


@click.group("route")
def route() -> None:
    """How requests are routed to vendors."""


def describe_condition(condition: RoutingCondition) -> str:
    parts = []
    if condition.model_pattern is not None:
        parts.append(f"model matches {condition.model_pattern!r}")
    if condition.max_tokens is not None:
        parts.append(f"max_tokens <= {condition.max_tokens}")
    if condition.temperature_min is not None or condition.temperature_max is not None:
        low = "-inf" if condition.temperature_min is None else f"{condition.temperature_min:g}"
        high = "inf" if condition.temperature_max is None else f"{condition.temperature_max:g}"
        parts.append(f"temperature in [{low}, {high}]")
    return ", ".join(parts) or "every request"


def describe_rule(dispatcher: Dispatcher, rule: RoutingRule) -> str:
    """``routing_rules[0] 'cheap' (priority 1): model matches 'gpt-4o-mini*'``."""
    index = dispatcher.config.routing_rules.index(rule)
    name = f" {rule.name!r}" if rule.name else ""
    return (
        f"routing_rules[{index}]{name} (priority {rule.priority}) matched: "
        f"{describe_condition(rule.condition)}"
    )


def reason_text(dispatcher: Dispatcher, plan: RoutingDecision) -> str:
    if plan.rule is not None:
        return describe_rule(dispatcher, plan.rule)
    return {
        "request.vendor override": "--vendor chose it (no routing, no fallback)",
        "default_vendor": "no routing rule matched; default_vendor",
        "first registered vendor": "no routing rule matched and no default_vendor: the first "
        "configured vendor",
    }.get(plan.reason, plan.reason)


@route.command("explain")
@click.argument("prompt", required=False, default="")
@click.option("-m", "--model", help="Model name. Default: $LLMDISPATCHER_MODEL, else 'local'.")
@click.option("--vendor", "--vendor-override", "vendor", metavar="NAME", help="Force a vendor.")
@click.option("-t", "--temperature", type=click.FloatRange(0.0, 2.0))
@click.option("--max-tokens", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@config_option
def explain(
    prompt: str,
    model: str | None,
    vendor: str | None,
    temperature: float | None,
    max_tokens: int | None,
    as_json: bool,
) -> None:
    """Which vendor would answer PROMPT, the order of fallbacks, and the reason."""
    from ..types import Request
    from .chat import default_model

    dispatcher = load_dispatcher()
    if vendor:
        require_vendor(dispatcher, vendor)
    request = Request(
        model=model or default_model(),
        messages=[{"role": "user", "content": prompt}],
        temperature=temperature,
        max_tokens=max_tokens,
        vendor=vendor,
    )
    plan = dispatcher.plan(request)
    candidates = [
        {
            "deployment": c.deployment.id,
            "vendor": c.deployment.vendor,
            "model": c.deployment.model,
            "score": c.score,
            "why": c.detail,
        }
        for c in plan.candidates
    ]
    if as_json:
        rule = asdict(plan.rule) if plan.rule else None
        data = {
            "model": request.model,
            "vendors": list(plan.vendors),
            "reason": plan.reason,
            "strategy": plan.strategy,
            "group": plan.group,
            "candidates": candidates,
            "excluded": plan.excluded,
        }
        echo(json.dumps({**data, "rule": rule}, indent=2, default=str))
        return
    first = plan.candidates[0].deployment.id if plan.candidates else "none can take it"
    rows = [
        ("model", request.model + (f" (model group, {plan.strategy})" if plan.group else "")),
        ("goes to", style(first, "green", bold=True)),
        ("because", reason_text(dispatcher, plan)),
        ("then", " -> ".join(c.deployment.id for c in plan.candidates[1:]) or "no fallback"),
    ]
    for label, value in rows:
        echo(f"{style(label.ljust(10), bold=True)}{value}")
    for c in plan.candidates:
        score = "" if c.score is None else f" score {c.score:.4g}"
        echo(f"  {c.deployment.id}{score}{': ' + c.detail if c.detail else ''}")
    for deployment, why in plan.excluded.items():
        echo(f"  {style('excluded', 'red')} {deployment}: {why}")
