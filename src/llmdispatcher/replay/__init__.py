"""Replay: recorded traffic through a proposed config, offline, with no request sent.

``replay(proposal, window, baseline=None)`` learns from the ledger how each deployment behaved,
then runs the window's requests through the real dispatcher (routing, strategies, rules,
breakers, retry budget, hedging, limits, budgets) on a virtual clock, vendors simulated from
what was learned. The baseline is another config replayed the same way, or, without one, what
was recorded. See docs/replay.md for the model and its limits.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from .run import ReplayRefused, Window, learn, narrowed, simulate
from .tally import summary

__all__ = ["ReplayRefused", "Window", "replay"]


def _rule_names(config: Config) -> list[str]:
    from ..observability.ledger_detail import rule_name

    return [name for rule in config.routing_rules if (name := rule_name(rule)) is not None]


def replay(proposal: Config, window: Window, baseline: Config | None = None) -> dict[str, Any]:
    """The comparison as plain data (``report.text`` / ``report.page`` render it)."""
    window = narrowed(window)
    observations, recorded = learn(window)
    proposed = simulate(proposal, window, observations)
    if baseline is None:
        base, label = summary(recorded), "recorded"
    else:
        simulated = simulate(baseline, window, observations).tally
        base, label = summary(simulated, _rule_names(baseline)), "baseline"
    return {
        "baseline_label": label,
        "baseline": base,
        "proposal": summary(proposed.tally, _rule_names(proposal)),
        "window": {
            "start": window.start,
            "end": window.end,
            "sample": window.sample,
            "seed": window.seed,
        },
        "notes": {
            "replayed": proposed.tally.requests,
            "deployments_observed": sorted(observations.deployments),
            "elsewhere": proposed.elsewhere,
            "thin": proposed.thin,
        },
    }
