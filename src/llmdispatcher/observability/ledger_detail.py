"""A ledger row's ``detail``: the request's tries and its routing decision, as JSON.

Built by the ledger's writer (``LedgerRecord.as_row``), never on the request path::

    {"attempts": [{"vendor", "model", "status", "error", "duration_s"}, ...],
     "routing": {"rule", "strategy", "group", "reason",
                 "candidates": [{"deployment", "vendor", "model", "score", "detail", "probe"}],
                 "excluded": {"deployment": "why", ...}}}

``rule`` is the matched rule's name, or its target when it has none. Attempt errors are the
dispatcher's error messages, already scrubbed of the vendors' secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..types import Attempt

if TYPE_CHECKING:
    from ..routing.model import RoutingDecision
    from ..settings.rules import RoutingRule


def detail_json(attempts: Sequence[Attempt], routing: RoutingDecision | None) -> str | None:
    """The ``detail`` column's value; None when there is nothing to say."""
    if not attempts and routing is None:
        return None
    # orjson writes an ``Attempt`` (a flat dataclass) as its fields, in order, by itself:
    # ``dataclasses.asdict`` deep-copied each one first, at about 10x the cost of the dump.
    found: dict[str, Any] = {"attempts": list(attempts)}
    if routing is not None:
        found["routing"] = {
            "rule": rule_name(routing.rule),
            "strategy": routing.strategy,
            "group": routing.group,
            "reason": routing.reason,
            "candidates": [
                {
                    "deployment": c.deployment.id,
                    "vendor": c.deployment.vendor,
                    "model": c.deployment.model,
                    "score": c.score,
                    "detail": c.detail,
                    "probe": c.probe,
                }
                for c in routing.candidates
            ],
            "excluded": dict(routing.excluded),
        }
    return orjson.dumps(found).decode()


def rule_name(rule: RoutingRule | None) -> str | None:
    """A rule as people named it, else by where it sends requests."""
    if rule is None:
        return None
    if rule.name:
        return rule.name
    target = rule.vendor or rule.deployment or rule.group or rule.strategy or "?"
    return f"priority {rule.priority} -> {target}"
