"""``llmdispatcher stats``: totals and per-vendor / per-model tables from the request ledger."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from .main import EXIT_USAGE, CliError, config_option, state
from .output import dollars, echo, render_table, seconds

if TYPE_CHECKING:
    from ..observability.ledger_sql import GroupStats, LedgerStats

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``30m``, ``1h``, ``7d`` ... as a number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise CliError(f"--since {text!r}: write a duration like 30m, 1h or 7d", EXIT_USAGE)
    return float(match.group(1)) * UNITS[match.group(2)]


def ledger_url(given: str | None) -> str:
    """--ledger, else the config file's ledger_url, else $LLMDISPATCHER_LEDGER, else the data
    directory's database (``home``)."""
    if given:
        return given
    from .. import home

    path = state().config_path
    configured = None
    if path:
        from ..config import Config

        configured = Config.from_file(path).ledger_url
    url = home.ledger_url(configured)
    if url is None:
        raise CliError(
            "recording is off (ledger_url: none or LLMDISPATCHER_NO_LEDGER): pass "
            "--ledger sqlite:///ledger.db to read a ledger",
            EXIT_USAGE,
        )
    return url


async def read(url: str, since: float | None) -> LedgerStats:
    from ..observability.ledger import open_ledger

    async with open_ledger(url) as ledger:
        return await ledger.stats(since)


def _row(name: str | None, g: GroupStats) -> list[str]:
    rate = "-" if g.success_rate is None else f"{g.success_rate:.1%}"
    return [
        name or "(none)",
        str(g.requests),
        rate,
        str(g.prompt_tokens),
        str(g.completion_tokens),
        dollars(float(g.cost_usd)),
        seconds(g.latency_p50_s),
        seconds(g.latency_p95_s),
        seconds(g.latency_p99_s),
    ]


def show(data: LedgerStats) -> None:
    t = data.totals
    echo(
        f"{t.requests} requests, {t.successes} ok, {t.failures} failed, {t.retries} retries, "
        f"{t.fallbacks} fallbacks; {t.prompt_tokens} prompt + {t.completion_tokens} completion "
        f"tokens; {dollars(float(t.cost_usd))}"
    )
    headers = ["", "REQUESTS", "OK", "PROMPT", "COMPLETION", "COST", "P50", "P95", "P99"]
    tables = (
        ("VENDOR", data.by_vendor),
        ("MODEL", data.by_model),
        ("KEY", data.by_key),  # gateway keys and teams, when requests came through a gateway
        ("TEAM", data.by_team),
    )
    for title, groups in tables:
        if any(name is not None for name in groups):
            echo()
            rows = [_row(name, g) for name, g in sorted(groups.items(), key=lambda i: str(i[0]))]
            for line in render_table([title, *headers[1:]], rows):
                echo(line)


@click.command("stats")
@click.option("--since", help="Only requests from this long ago: 30m, 1h, 7d.")
@click.option("--ledger", "url", metavar="URL", help="The ledger: sqlite:///path or postgresql://.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@config_option
def stats(since: str | None, url: str | None, as_json: bool) -> None:
    """Totals and per-vendor/model tables from the ledger: requests, success rate, tokens, cost,
    latency percentiles."""
    start = time.time() - parse_since(since) if since else None
    data = asyncio.run(read(ledger_url(url), start))
    if as_json:
        echo(json.dumps(_plain(asdict(data)), indent=2))
    else:
        show(data)


def _plain(value: Any) -> Any:
    """JSON-ready: Decimal as a string (exact), None keys as "(none)"."""
    if isinstance(value, dict):
        return {("(none)" if k is None else k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    from decimal import Decimal

    return str(value) if isinstance(value, Decimal) else value
