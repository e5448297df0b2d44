"""The dashboard's read pages: Overview, Vendors, Requests, Config; and the route table (Keys,
Playground and Replay add their own).

Live numbers come from the running process (the same as ``/api/v1/stats``: every worker's,
merged), history from the ledger (the same queries as ``llmdispatcher stats --json``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ...errors import VendorError, VendorUnavailable
from ...observability.stats import Stats
from ..native_api import CHECK_TIMEOUT_S, HEALTH, verdict
from ..state import GATEWAY, Gateway
from ..worker_stats import WORKER_STATS
from . import keys_page, playground, replay_page
from .app import render
from .config_view import masked_config
from .ledger_views import FILTERS, WINDOWS, cursor, request_detail, requests_page
from .overview_cache import OverviewCache

OVERVIEWS = web.AppKey("ui_overviews", OverviewCache)


def add_routes(ui: web.Application) -> None:
    ui[OVERVIEWS] = OverviewCache()
    ui.router.add_get("/", overview)
    ui.router.add_get("/vendors", vendors)
    ui.router.add_post("/vendors/test", test_vendor)
    ui.router.add_get("/requests", requests)
    ui.router.add_get("/requests/{request_id}", request_page)
    ui.router.add_get("/config", config)
    keys_page.add_routes(ui)
    playground.add_routes(ui)
    replay_page.add_routes(ui)


async def live_stats(request: web.Request) -> tuple[Stats, int]:
    """This gateway's statistics since start, as ``/api/v1/stats`` reports them."""
    shared = request.config_dict.get(WORKER_STATS)
    if shared is None:
        return request.config_dict[GATEWAY].dispatcher.stats(), 1
    return await shared.merged()


def _window(request: web.Request) -> str:
    window = request.query.get("window", "1h")
    if window not in WINDOWS:
        raise web.HTTPBadRequest(reason=f"window: one of {', '.join(WINDOWS)}")
    return window


async def overview(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    window = _window(request)
    live, workers = await live_stats(request)
    ledger = gateway.dispatcher.ledger
    now = time.time()
    totals, chart, groups, as_of = None, None, [], None
    if ledger is not None:
        cache = request.app[OVERVIEWS]
        found = await cache.get(ledger, window, gateway.dispatcher.stats().total_requests)
        totals, chart, as_of = found.totals, found.series.as_json(), found.computed_at
        tables = (("Vendor", totals.by_vendor), ("Model", totals.by_model),
                  ("Key", totals.by_key), ("Team", totals.by_team))  # fmt: skip
        groups = [
            (title, sorted(found.items(), key=lambda i: str(i[0]))) for title, found in tables
        ]
    return render(
        request,
        "overview.html",
        window=window,
        windows=list(WINDOWS),
        live=live,
        workers=workers,
        uptime_s=now - gateway.started_at,
        totals=totals,
        chart=chart,
        groups=groups,
        as_of=as_of,
    )


async def vendors(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    dispatcher = gateway.dispatcher
    found = dispatcher.vendors
    healths = await request.config_dict[HEALTH].get(found)
    live, _ = await live_stats(request)
    statuses = dispatcher.deployment_statuses()
    rows = [
        {
            "name": name,
            "type": type(vendor).__name__,
            "health": healths[name],
            "breaker": dispatcher.breaker_state(name),
            "deployments": [s for s in statuses if s.vendor == name],
            "stats": live.vendor_stats.get(name),
            "headroom": dispatcher.rate_limit_headroom(name),
            "models": _models_of(gateway, name),
        }
        for name, vendor in found.items()
    ]
    return render(request, "vendors.html", vendors=rows)


def _models_of(gateway: Gateway, vendor: str) -> list[str]:
    """The models the config routes to ``vendor`` (the catalog may know more)."""
    config = gateway.dispatcher.config
    found = {d.model for g in config.model_groups for d in g.deployments if d.vendor == vendor}
    return sorted(found)


async def test_vendor(request: web.Request) -> web.StreamResponse:
    """The live check of ``/api/v1/test/vendor`` (a listing call, no tokens spent)."""
    gateway = request.config_dict[GATEWAY]
    name = str((await request.post()).get("vendor", ""))
    vendor = gateway.dispatcher.vendors.get(name)
    if vendor is None:
        raise web.HTTPBadRequest(reason=f"vendor: no vendor named {name!r}")
    started = time.perf_counter()
    result: dict[str, Any] = {"ok": True, "detail": "reachable, key accepted"}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await vendor.list_models()
    except (VendorError, VendorUnavailable, TimeoutError) as exc:
        result = verdict(exc)
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return render(request, "vendor_test.html", vendor=name, result=result)


async def requests(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    ledger = gateway.dispatcher.ledger
    query = request.query
    filters = {name: query.get(name, "").strip() for name in FILTERS}
    window = query.get("window", "")
    if window and window not in WINDOWS:
        raise web.HTTPBadRequest(reason=f"window: one of {', '.join(WINDOWS)}, or empty")
    since = time.time() - WINDOWS[window][0] if window else None
    try:
        before = cursor(query.get("before"))
    except ValueError:
        raise web.HTTPBadRequest(reason="before: TS:ID, as the Older link gives it") from None
    page = None if ledger is None else await requests_page(ledger, filters, since, before)
    next_query = None
    if page is not None and page.next_before is not None:
        next_query = {**{k: v for k, v in filters.items() if v}, "before": page.next_before}
        if window:
            next_query["window"] = window
    return render(
        request,
        "requests.html",
        page=page,
        filters=filters,
        window=window,
        windows=list(WINDOWS),
        next_query=next_query,
        content_logged=gateway.dispatcher.config.ledger_content,
    )


async def request_page(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    ledger = gateway.dispatcher.ledger
    request_id = request.match_info["request_id"]
    row = None if ledger is None else await request_detail(ledger, request_id)
    if row is None:
        raise web.HTTPNotFound(reason=f"no request {request_id!r} in the ledger")
    return render(
        request,
        "request.html",
        row=row,
        content_logged=gateway.dispatcher.config.ledger_content,
    )


async def config(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    resolved = masked_config(gateway.dispatcher.config, gateway.settings)
    return render(
        request,
        "config.html",
        config=resolved,
        notices=gateway.dispatcher.notices,
    )
