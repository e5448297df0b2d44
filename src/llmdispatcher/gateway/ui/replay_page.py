"""The Replay page: a proposed config tried on this gateway's recorded traffic (issue #19).

* ``GET /ui/replay``: the form, the running replay's progress, the last result side by side
  (baseline: this gateway's running config; proposal: the form's) with its charts.
* ``POST /ui/replay``: checks the form (``replay_form``) and starts the replay
  (``replay_runner``: a child process, one at a time) on this gateway's own ledger. An error is
  shown beside its field and nothing runs; while a replay runs, another is refused (409).
* ``GET /ui/replay/status``: the progress the page polls (htmx); once the replay is over it
  answers ``HX-Refresh`` and the page reloads with the result.
* ``POST /ui/replay/cancel``: stops the running replay.
* ``GET /ui/replay/report.html`` / ``.json``: the last report as ``llmdispatcher replay --html``
  and ``--json`` write it (``replay.report``), to download.

A replay and its result live in the gateway process that ran it: with ``serve --workers N`` a
page view may reach another worker, and the page says so.

Access: running and cancelling need the admin session (and the CSRF token, as every POST). A
viewer sees the page, the last result and its downloads, read-only: the same kind of numbers
per key and team as the Overview already shows it, and no config (the proposal's text is never
shown back but to the admin whose form it was).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...replay import Window
from ...replay.tally import SERIES_POINTS
from ..errors import ApiError
from ..state import GATEWAY
from ..worker_stats import WORKER_STATS
from .app import SESSION, redirect, render
from .replay_form import CUSTOM, MAX_CONFIG_BYTES, PASTED, WINDOWS, Fields, check
from .replay_runner import Asked, ReplayBusy, ReplayRunner

RUNNER = web.AppKey("ui_replay_runner", ReplayRunner)


def add_routes(ui: web.Application) -> None:
    ui[RUNNER] = ReplayRunner()
    ui.on_cleanup.append(_stop_running)
    ui.router.add_get("/replay", replay_page)
    ui.router.add_post("/replay", start_replay)
    ui.router.add_get("/replay/status", replay_status)
    ui.router.add_post("/replay/cancel", cancel_replay)
    ui.router.add_get("/replay/report.html", report_html)
    ui.router.add_get("/replay/report.json", report_json)


async def _stop_running(ui: web.Application) -> None:
    await ui[RUNNER].cancel()


def _page(
    request: web.Request,
    status: int = 200,
    fields: Fields | None = None,
    errors: dict[str, str] | None = None,
    busy: str | None = None,
) -> web.Response:
    gateway = request.config_dict[GATEWAY]
    runner = request.app[RUNNER]
    last = runner.last
    return render(
        request,
        "replay.html",
        status=status,
        fields=fields or Fields(),
        errors=errors or {},
        busy=busy,
        windows=[*WINDOWS, CUSTOM],
        recording=gateway.dispatcher.config.ledger_url is not None,
        # ``serve --workers N``: each worker has its own runner, and a request may reach any
        shared_port=WORKER_STATS in request.config_dict,
        running=runner.running,
        now=time.time(),
        last=last,
        chart=chart_series(last.report) if last is not None and last.report else None,
    )


async def replay_page(request: web.Request) -> web.StreamResponse:
    return _page(request)


def _admin(request: web.Request) -> str:
    session = request[SESSION]
    if not session.admin:
        raise ApiError(403, "a viewer session cannot run replays: sign in with the admin key")
    return session.subject


async def start_replay(request: web.Request) -> web.StreamResponse:
    by = _admin(request)
    baseline = request.config_dict[GATEWAY].dispatcher.config
    if baseline.ledger_url is None:
        raise ApiError(409, "recording is off (no ledger_url): there is no traffic to replay")
    now = time.time()
    fields = await _fields(request)
    # Parsing and loading a config is CPU work (YAML, vendor classes): off the event loop.
    checked = await asyncio.to_thread(check, fields, now)
    found = checked.proposal
    if found is None:
        return _page(request, 400, fields, checked.errors)
    window = Window(baseline.ledger_url, found.start, now, sample=found.sample, seed=found.seed)
    asked = Asked(window, found.label, fields.source, by, now)
    try:
        request.app[RUNNER].start(asked, found.config, baseline)
    except ReplayBusy as exc:
        return _page(request, 409, fields, busy=str(exc))
    return redirect("/ui/replay")


async def _fields(request: web.Request) -> Fields:
    form = await request.post()
    text, source = str(form.get("config", "")), PASTED
    upload = form.get("config_file")
    if isinstance(upload, web.FileField) and upload.filename:
        # One byte over the bound is enough for the check to say it is too large.
        text = upload.file.read(MAX_CONFIG_BYTES + 1).decode("utf-8", errors="replace")
        source = upload.filename[:120]
    return Fields(
        config=text,
        source=source,
        window=str(form.get("window", "7d")),
        since=str(form.get("since", "")),
        sample=str(form.get("sample", "1")),
        seed=str(form.get("seed", "0")),
    )


async def replay_status(request: web.Request) -> web.StreamResponse:
    running = request.app[RUNNER].running
    if running is None:  # over (or never started): the page shows the outcome
        return web.Response(headers={"HX-Refresh": "true"})
    return render(request, "replay_status.html", running=running, now=time.time())


async def cancel_replay(request: web.Request) -> web.StreamResponse:
    _admin(request)
    await request.app[RUNNER].cancel()
    return redirect("/ui/replay")


def _last_report(request: web.Request) -> tuple[dict[str, Any], str]:
    """The last report, and a file name for it (by when it ended, UTC)."""
    last = request.app[RUNNER].last
    if last is None or last.report is None:
        raise web.HTTPNotFound(reason="no replay report yet: run one on the Replay page")
    return last.report, f"replay-{datetime.fromtimestamp(last.ended_at, UTC):%Y%m%d-%H%M%S}"


def _download(body: str, content_type: str, name: str) -> web.Response:
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return web.Response(text=body, content_type=content_type, headers=disposition)


async def report_html(request: web.Request) -> web.StreamResponse:
    from ...replay.report import page

    report, name = _last_report(request)
    return _download(page(report), "text/html", f"{name}.html")


async def report_json(request: web.Request) -> web.StreamResponse:
    report, name = _last_report(request)
    return _download(json.dumps(report, indent=2), "application/json", f"{name}.json")


def chart_series(report: dict[str, Any]) -> str:
    """The report's per-interval cost and p95 latency on a time axis, as the page's charts
    read them (``app.js``): one point per interval, at its middle. An interval a side had no
    request in cost nothing (0) and has no latency (null: a gap in the line). The intervals
    are the report's own: ``SERIES_POINTS`` over its window."""
    window = report["window"]
    width = max(window["end"] - window["start"], 1.0) / SERIES_POINTS
    found: dict[str, list[float | None]] = {
        "times": [window["start"] + (b + 0.5) * width for b in range(SERIES_POINTS)]
    }
    for side in ("baseline", "proposal"):
        points = {p["bucket"]: p for p in report[side]["series"]}
        for name, key, empty in (("cost", "cost_usd", 0.0), ("p95", "latency_p95_s", None)):
            found[f"{name}_{side}"] = [
                points[b][key] if b in points else empty for b in range(SERIES_POINTS)
            ]
    return json.dumps(found)
