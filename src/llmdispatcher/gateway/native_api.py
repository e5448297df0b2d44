"""The gateway's native API under ``/api/v1``: the dispatcher in its own terms (a forced vendor,
its ``Response`` with attempts and cost, live vendor checks, statistics, routing explanations).

* ``GET  /api/v1/health``: liveness, no key needed.
* ``POST /api/v1/chat/completions``: an OpenAI-style body plus ``vendor`` (force one of the
  configured vendors: no fallback) and ``timeout`` (seconds, all attempts); answers with the
  dispatcher's ``Response`` (attempts, latency, usage, cost) as JSON.
* ``POST /api/v1/chat/completions/stream``: the same as SSE, one ``StreamChunk`` per event,
  then ``data: [DONE]``; an error after the first chunk is ``event: error``.
* ``POST /api/v1/test/vendor``: ``{"vendor": NAME}`` checks it live (reachable, key accepted,
  latency) with a listing call, no tokens spent; with ``"model"`` it sends a tiny request
  through the same path as a chat request (the key's allowed models, its limits and budgets,
  the ledger, stats and metrics), to that vendor only. At most
  ``gateway.vendor_checks_per_minute`` checks per key (429 past it).
* ``GET  /api/v1/stats``: the dispatcher's in-memory statistics since start, plus ``workers``:
  how many processes they cover, always (1 with one worker). Under ``--workers`` they are every
  worker's merged (counters summed, percentiles over all the samples): this worker's live, the
  others' as they last published them, so up to ~1 s behind; a dead worker's still count.
* ``GET  /api/v1/vendors``: each vendor with its capabilities, health (checked live, cached
  ``HEALTH_CACHE_S``) and circuit-breaker state (``null`` until breakers exist).
* ``POST /api/v1/routing/explain``: an OpenAI-style body; the route it would take. Nothing is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from .. import __version__
from ..errors import (
    AuthenticationError,
    VendorConnectionError,
    VendorError,
    VendorTimeout,
    VendorUnavailable,
)
from ..types import Request, Response, StreamChunk, Usage
from ..vendors.base import Vendor
from .auth import check_model
from .errors import ApiError, bad_request
from .openai_api import parse_chat
from .relay import json_response, open_stream, read_json, relay, send
from .state import GATEWAY, TRACE, Gateway, Trace
from .validation import NUMBER, STRING, build_request, check_fields, check_model_name
from .worker_stats import WORKER_STATS

HEALTH_CACHE_S = 10.0
CHECK_TIMEOUT_S = 10.0
NATIVE_FIELDS = {"vendor": STRING, "timeout": NUMBER}


def parse_native_chat(gateway: Gateway, body: dict[str, Any]) -> Request:
    """An OpenAI-style body with the native ``vendor`` and ``timeout``."""
    check_fields(body, NATIVE_FIELDS)
    vendor = body.get("vendor")
    if vendor is not None and vendor not in gateway.dispatcher.vendors:
        known = ", ".join(gateway.dispatcher.vendors)
        raise bad_request("vendor", f"unknown vendor {vendor!r}; configured: {known}")
    timeout = body.get("timeout")
    if timeout is not None and not 1 <= timeout <= 600:
        raise bad_request("timeout", "must be between 1 and 600 seconds")
    request = parse_chat(body, gateway.settings.passthrough_fields).request
    if vendor is None and timeout is None:
        return request
    return build_request(lambda: dataclasses.replace(request, vendor=vendor, timeout=timeout))


def response_json(response: Response) -> dict[str, Any]:
    """The dispatcher's Response, without the vendor's raw body."""
    return {
        "id": response.id,
        "content": response.content,
        "vendor": response.vendor,
        "model": response.model,
        "finish_reason": response.finish_reason,
        "usage": asdict(response.usage),
        "tool_calls": [asdict(c) for c in response.tool_calls],
        "latency_s": response.latency_s,
        "attempts": [asdict(a) for a in response.attempts],
        "cost_usd": response.cost_usd,
    }


class ChunkEncoder:
    """One dispatcher ``StreamChunk`` per SSE event."""

    def head(self, chunk: StreamChunk) -> bytes:
        return self.chunk(chunk)

    def chunk(self, chunk: StreamChunk) -> bytes:
        data = {
            "delta": chunk.delta,
            "tool_call_deltas": [asdict(d) for d in chunk.tool_call_deltas],
            "finish_reason": chunk.finish_reason,
            "usage": asdict(chunk.usage) if isinstance(chunk.usage, Usage) else None,
            "cost_usd": chunk.cost_usd,
            "vendor": chunk.vendor,
            "model": chunk.model,
        }
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def tail(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, error: ApiError) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(error.openai_body()) + b"\n\n"


# --- handlers ---------------------------------------------------------------------------------
async def health(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - gateway.started_at, 3),
            "vendors": list(gateway.dispatcher.vendors),
        }
    )


async def chat(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    parsed = parse_native_chat(gateway, await read_json(request, gateway))
    return json_response(response_json(await send(gateway, trace, parsed)))


async def chat_stream(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    parsed = parse_native_chat(gateway, await read_json(request, gateway))
    return await relay(request, await open_stream(gateway, trace, parsed), ChunkEncoder())


async def test_vendor(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    check_fields(body, {"vendor": STRING, "model": STRING})
    name, model = body.get("vendor"), body.get("model")
    vendor = gateway.dispatcher.vendors.get(name or "")
    if vendor is None:
        known = ", ".join(gateway.dispatcher.vendors)
        raise bad_request("vendor", f"name one of the configured vendors: {known}")
    if model is not None:
        check_model_name(model)
        check_model(trace.key, model)
    throttle(gateway, trace)
    started = time.perf_counter()
    result: dict[str, Any] = {"vendor": vendor.name, "model": model}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            if model is None:
                await vendor.list_models()
            else:
                await send(gateway, trace, probe_request(vendor.name, model))
    except (VendorError, VendorUnavailable, TimeoutError) as exc:  # budgets etc.: HTTP errors
        result |= verdict(exc)
    else:
        result |= {"ok": True, "reachable": True, "auth_ok": True, "detail": "ok"}
    return json_response(result | {"latency_ms": round((time.perf_counter() - started) * 1000, 3)})


def throttle(gateway: Gateway, trace: Trace) -> None:
    """``gateway.vendor_checks_per_minute`` per key: a check spends the vendor's quota."""
    wait = gateway.vendor_checks.take(trace.key.name if trace.key else "")
    if wait:
        raise ApiError(
            429,
            f"too many vendor checks for this key: retry in {math.ceil(wait)}s "
            "(gateway.vendor_checks_per_minute)",
            code="too_many_vendor_checks",
            retry_after=wait,
        )


def probe_request(vendor: str, model: str) -> Request:
    probe = [{"role": "user", "content": "Reply with the single word OK."}]
    return Request(model=model, messages=probe, max_tokens=16, vendor=vendor,
                   timeout=CHECK_TIMEOUT_S)  # fmt: skip


def verdict(exc: VendorError | VendorUnavailable | TimeoutError) -> dict[str, Any]:
    """What a failed check says: reachable? key accepted? (a failed chat request's error
    is its last vendor error)."""
    cause: BaseException = exc
    if isinstance(exc, VendorUnavailable) and exc.last_error is not None:
        cause = exc.last_error
    reachable = not isinstance(cause, VendorConnectionError | VendorTimeout | TimeoutError)
    auth_ok = None if not reachable else not isinstance(cause, AuthenticationError)
    detail = str(cause) or f"no answer within {CHECK_TIMEOUT_S:g}s"
    return {"ok": False, "reachable": reachable, "auth_ok": auth_ok, "detail": detail}


async def stats(request: web.Request) -> web.StreamResponse:
    shared = request.app.get(WORKER_STATS)
    if shared is None:
        return json_response(asdict(request.app[GATEWAY].dispatcher.stats()) | {"workers": 1})
    merged, workers = await shared.merged()
    return json_response(asdict(merged) | {"workers": workers})


class HealthCache:
    """Live vendor health for ``/api/v1/vendors``, at most one check per ``HEALTH_CACHE_S``."""

    def __init__(self) -> None:
        self._checked: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def get(self, vendors: dict[str, Vendor]) -> dict[str, dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            stale = [
                v
                for n, v in vendors.items()
                if now - self._checked.get(n, (-1e9,))[0] > HEALTH_CACHE_S
            ]
            for vendor, found in zip(
                stale, await asyncio.gather(*(_health(v) for v in stale)), strict=True
            ):
                self._checked[vendor.name] = (now, found)
        return {name: self._checked[name][1] for name in vendors}


async def _health(vendor: Vendor) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            found = await vendor.health()
    except TimeoutError:
        return {"ok": False, "latency_ms": CHECK_TIMEOUT_S * 1000, "detail": "no answer"}
    latency = found.latency_s or time.perf_counter() - started
    return {"ok": found.ok, "latency_ms": round(latency * 1000, 3), "detail": found.detail}


HEALTH = web.AppKey("health", HealthCache)


async def vendors(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    found = gateway.dispatcher.vendors
    healths = await request.app[HEALTH].get(found)
    rows = [
        {
            "name": name,
            "type": type(vendor).__name__,
            "capabilities": asdict(vendor.capabilities),
            "health": healths[name],
            "breaker": gateway.dispatcher.breaker_state(name),
        }
        for name, vendor in found.items()
    ]
    return json_response({"vendors": rows})


async def explain(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    body = await read_json(request, gateway)
    parsed = parse_native_chat(gateway, body)
    decision = await gateway.dispatcher.explain(parsed, stream=body.get("stream") is True)
    candidates = [
        {"deployment": c.deployment.id, "vendor": c.deployment.vendor, "score": c.score,
         "detail": c.detail}
        for c in decision.candidates
    ]  # fmt: skip
    return json_response(
        {
            "model": parsed.model,
            "vendors": list(decision.vendors),
            "reason": decision.reason,
            "rule": asdict(decision.rule) if decision.rule is not None else None,
            "strategy": decision.strategy,
            "group": decision.group,
            "candidates": candidates,
            "excluded": decision.excluded,
        }
    )


def add_routes(app: web.Application) -> None:
    app[HEALTH] = HealthCache()
    app.router.add_get("/api/v1/health", health)
    app.router.add_post("/api/v1/chat/completions", chat)
    app.router.add_post("/api/v1/chat/completions/stream", chat_stream)
    app.router.add_post("/api/v1/test/vendor", test_vendor)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/vendors", vendors)
    app.router.add_post("/api/v1/routing/explain", explain)
