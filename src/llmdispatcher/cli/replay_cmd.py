"""``llmdispatcher replay``: last week's recorded traffic through a proposed config, offline."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import click

from .main import EXIT_USAGE, CliError
from .output import echo
from .stats_cmd import parse_since


def _when(text: str, option: str) -> float:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} {text!r}: write a date like 2026-12-01 or 2026-12-01T08:00",
                       EXIT_USAGE) from None  # fmt: skip
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _window(since: str | None, start: str | None, end: str | None) -> tuple[float, float]:
    if since and (start or end):
        raise CliError("--since and --from/--to: give one or the other", EXIT_USAGE)
    now = time.time()
    if since:
        return now - parse_since(since), now
    first = _when(start, "--from") if start else now - parse_since("7d")
    last = _when(end, "--to") if end else now
    if last <= first:
        raise CliError("--to must come after --from", EXIT_USAGE)
    return first, last


def _ledger(given: str | None, *configs: str | None) -> str:
    """--ledger, else the first config file's ledger_url, else the data directory's."""
    from .. import home
    from ..config import Config

    if given:
        return given
    configured = next(
        (url for path in configs if path and (url := Config.from_file(path).ledger_url)), None
    )
    url = home.ledger_url(configured)
    if url is None:
        raise CliError("recording is off, so there is nothing to replay: pass --ledger URL",
                       EXIT_USAGE)  # fmt: skip
    return url


@click.command("replay")
@click.option(
    "--config",
    "-c",
    "proposal",
    metavar="FILE",
    required=True,
    help="The config to try (YAML or TOML).",
)
@click.option(
    "--baseline",
    metavar="FILE",
    help="The config to compare with, replayed the same way. Default: what was recorded.",
)
@click.option("--since", help="Requests from this long ago to now: 30m, 1h, 7d (default 7d).")
@click.option("--from", "start", metavar="WHEN", help="Start of the window (ISO date, UTC).")
@click.option("--to", "end", metavar="WHEN", help="End of the window (ISO date, UTC).")
@click.option(
    "--ledger",
    "url",
    metavar="URL",
    help="The ledger: sqlite:///path or postgresql://. Default: the baseline's.",
)
@click.option(
    "--sample",
    type=click.FloatRange(min=0.0, min_open=True, max=1.0),
    default=1.0,
    show_default=True,
    help="Share of the requests to replay (chosen by id and seed).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed gives the same report."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--html",
    "html_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report with charts.",
)
def replay(  # noqa: PLR0913 - one parameter per option
    proposal: str,
    baseline: str | None,
    since: str | None,
    start: str | None,
    end: str | None,
    url: str | None,
    sample: float,
    seed: int,
    as_json: bool,
    html_path: str | None,
) -> None:
    """What cost, latency, errors and refusals would have been under another config: the
    recorded requests replayed through its routing, limits and budgets, vendors simulated
    from what the ledger saw them do. Nothing is sent to any vendor."""
    from ..config import Config
    from ..replay import Window
    from ..replay import replay as run
    from ..replay.report import page, text

    first, last = _window(since, start, end)
    window = Window(_ledger(url, baseline, proposal), first, last, sample=sample, seed=seed)
    base = Config.from_file(baseline) if baseline else None
    report = run(Config.from_file(proposal), window, baseline=base)
    if html_path:
        Path(html_path).write_text(page(report))
    echo(json.dumps(report, indent=2) if as_json else text(report))
