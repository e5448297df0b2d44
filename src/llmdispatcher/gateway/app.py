"""The gateway app factory: ``create_app(dispatcher, settings) -> aiohttp.web.Application``.

No globals: everything an app needs hangs off it (``app[GATEWAY]``). One middleware gives each
request its id and ``Trace``, checks its ``Host`` and ``Origin`` (``origin.py``), authenticates
it (every 401 logged; an address sending wrong keys too often gets 429s) and turns every
exception into the error table's response (``errors.py``: OpenAI's shape, Anthropic's on
``/v1/messages`` and every path under it, unknown ones included; never a traceback, and JSON
even if building that response fails).
One ``on_response_prepare`` hook stamps every response, streamed or not, just before its
headers go out:

* ``x-request-id``: the client's (if it sent a sane one) or a new random id;
* ``x-llmdispatcher-vendor`` / ``-model``: who answered (or was tried last); empty when the
  request never reached the dispatcher;
* ``x-llmdispatcher-attempts``: tries made (for a stream: up to its first chunk);
* ``x-llmdispatcher-cache``: ``hit``, ``miss`` or ``bypass`` when a response cache is
  configured (``cache_headers.py``);
* ``x-llmdispatcher-overhead-ms``: the gateway's own time, i.e. time so far minus the time
  spent inside vendor attempts (the sum of ``Attempt.duration_s``; for a stream, the time
  the dispatcher took to deliver the first chunk).

The request body is capped at ``max_body_bytes`` (413) and must arrive within
``body_timeout_s`` (408).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable
from types import ModuleType

import orjson
from aiohttp import web

from ..clock import Clock, SystemClock
from ..config import GatewayConfig
from ..dispatcher import Dispatcher
from ..keys import KeyStore as StoredKeyStore
from . import (
    admin_api,
    anthropic_api,
    count_tokens,
    embeddings_api,
    health,
    native_api,
    openai_api,
    responses_api,
    tenancy,
)
from .access_log import log_access
from .auth import Admission, ApiKey, KeyStore, digests_only, fingerprint, presented_token
from .cache_headers import CACHE_HEADER, cache_control
from .catalog import ModelCatalog
from .errors import ApiError, api_error, error_response
from .metrics import CONTENT_TYPE, GatewayMetrics, KnownNames
from .openapi import openapi_document
from .origin import OriginGuard, allowed_hosts
from .state import CURRENT, GATEWAY, TRACE, Gateway, Trace, count_attempt

logger = logging.getLogger("llmdispatcher.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANTHROPIC_PATH = "/v1/messages"
OPEN_PATHS = frozenset({"/api/v1/health", "/livez", "/readyz", "/openapi.json", "/ui"})
ADMIN_PATHS = "/admin/"
UI_PATHS = "/ui/"  # the dashboard signs its users in itself (gateway/ui/)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
OPENAPI = web.AppKey("openapi", bytes)


def create_app(
    dispatcher: Dispatcher,
    settings: GatewayConfig | None = None,
    *,
    admission: Admission | None = None,
    clock: Clock | None = None,
    key_store: StoredKeyStore | None = None,
) -> web.Application:
    """The gateway for ``dispatcher``. ``admission`` is the per-key limits/budget hook;
    ``clock`` times the gateway's own throttles; ``key_store`` holds the stored keys (and
    enables the admin API), see ``tenancy``."""
    settings = digests_only(settings or GatewayConfig())
    gateway = Gateway(
        dispatcher=dispatcher,
        settings=settings,
        keys=KeyStore(settings.api_keys, required=settings.admin_key_sha256 is not None),
        metrics=GatewayMetrics(lambda: known_names(dispatcher)),
        catalog=ModelCatalog(settings.models_cache_s),
        admission=admission,
        clock=clock or SystemClock(),
        group_models=tenancy.group_models(dispatcher.config),
    )
    dispatcher.subscribe(gateway.metrics.on_event)
    dispatcher.subscribe(count_attempt)
    open_paths = OPEN_PATHS | ({"/metrics"} if settings.metrics_public else set())
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[_middleware(gateway, open_paths)]
    )
    app[GATEWAY] = gateway
    if key_store is not None:
        tenancy.attach(app, gateway, key_store)
    admin_api.add_routes(app, key_store)
    responses_api.add_routes(app, key_store)
    health.attach(app)  # after tenancy: its readiness checks read the key cache
    from .ui.app import build as build_ui

    app.add_subapp("/ui/", build_ui())
    app[OPENAPI] = orjson.dumps(openapi_document())
    app.on_response_prepare.append(_stamp_headers)
    _add_routes(app)
    return app


def known_names(dispatcher: Dispatcher) -> KnownNames:
    """The configured names metric labels may always carry."""
    deployments = [d for group in dispatcher.config.model_groups for d in group.deployments]
    groups = (group.name for group in dispatcher.config.model_groups)
    return KnownNames(
        vendors=frozenset(dispatcher.vendors),
        deployments=frozenset(d.id for d in deployments),
        models=frozenset(groups) | frozenset(d.model for d in deployments),
    )


def _add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", openai_api.chat_completions)
    app.router.add_post("/v1/embeddings", embeddings_api.embeddings)
    app.router.add_get("/v1/models", openai_api.list_models)
    app.router.add_get("/v1/models/{model:.+}", openai_api.get_model)
    app.router.add_post("/v1/messages", anthropic_api.messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens.count_tokens)
    native_api.add_routes(app)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)


def _middleware(
    gateway: Gateway, open_paths: frozenset[str]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    keys, in_flight = gateway.keys, gateway.metrics.in_flight
    hosts = allowed_hosts(gateway.settings)
    guard = None if hosts is None else OriginGuard(hosts)
    # Request ids: a random per-app prefix and a counter (no syscall per request).
    prefix, counter = os.urandom(6).hex(), itertools.count(1)
    tracing = tracing_hooks() if gateway.dispatcher.tracing else None
    json_logs = gateway.settings.log_format == "json"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("x-request-id")
        if given is None or not _REQUEST_ID.fullmatch(given):
            given = f"{prefix}{next(counter):012x}"
        trace = Trace(given, time.perf_counter())
        trace.cache_control = cache_control(request.headers.get("Cache-Control"))
        request[TRACE] = trace
        token = CURRENT.set(trace)
        in_flight.inc()
        parent = tracing.remote_parent(request.headers) if tracing is not None else None
        response: web.StreamResponse | None = None
        try:
            if guard is not None:
                guard.check(request)
            path = request.path
            # (the admin handlers and the dashboard check their users themselves)
            skip = path in open_paths or path.startswith((ADMIN_PATHS, UI_PATHS))
            if keys.enabled and not skip:
                trace.key = _authenticate(gateway, request, trace)
            response = await handler(request)
        except Exception as exc:
            response = _error(request, gateway, trace, exc)
        finally:
            in_flight.dec()
            CURRENT.reset(token)
            if parent is not None:
                tracing.release(parent)  # type: ignore[union-attr]
            if json_logs:  # 499: the client went away first (nginx's code for it)
                log_access(trace, response.status if response is not None else 499)
            if trace.lease is not None:  # last: a cancelled request stops waiting here
                await tenancy.finish(gateway, trace)
        return response

    return middleware


def tracing_hooks() -> ModuleType:
    """observability.tracing, imported only when the dispatcher traces."""
    from ..observability import tracing

    return tracing


def _authenticate(gateway: Gateway, request: web.Request, trace: Trace) -> ApiKey | None:
    """The caller's key. Every 401 is logged (with a fingerprint, never the key); an address
    past ``auth_failures_per_minute`` gets 429s, its keys unchecked, until it slows down."""
    address = request.remote or "-"
    wait = gateway.auth_failures.wait_s(address)
    if wait:
        raise ApiError(
            429,
            "too many requests with a missing or wrong API key from this address: "
            f"retry in {math.ceil(wait)}s",
            code="too_many_auth_failures",
            retry_after=wait,
        )
    anthropic = is_anthropic(request.path)
    try:
        return gateway.keys.authenticate(request, x_api_key=anthropic)
    except ApiError as exc:
        gateway.auth_failures.take(address)
        token = presented_token(request, x_api_key=anthropic)
        logger.warning(
            "request %s from %s refused: %s (key fingerprint %s)",
            trace.request_id, address, exc.code, fingerprint(token),
        )  # fmt: skip
        raise


def is_anthropic(path: str) -> bool:
    """Whether ``path`` is the Anthropic API's (its errors, its ``x-api-key``)."""
    return path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/")


def _error(request: web.Request, gateway: Gateway, trace: Trace, exc: Exception) -> web.Response:
    """The error table's response for ``exc``; should building it fail too, still a JSON 500."""
    try:
        return _error_response(request, gateway, trace, exc)
    except Exception:
        logger.exception("request %s: the error response itself failed", trace.request_id)
        found = ApiError(500, f"internal error (request id {trace.request_id})")
        return web.Response(
            status=500, body=orjson.dumps(found.openai_body()), content_type="application/json"
        )


def _error_response(
    request: web.Request, gateway: Gateway, trace: Trace, exc: Exception
) -> web.Response:
    found = api_error(exc)
    if found is None:
        logger.exception(
            "request %s (%s %s) failed", trace.request_id, request.method, request.path
        )
        found = ApiError(500, f"internal error (request id {trace.request_id})")
    elif isinstance(exc, web.HTTPNotFound | web.HTTPMethodNotAllowed):
        found = ApiError(
            exc.status, f"no endpoint {request.method} {request.path}", code=found.code
        )
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        found = ApiError(413, exc.text or found.message, code=found.code)
    anthropic = is_anthropic(request.path)
    kind = found.anthropic_type() if anthropic else found.openai_type()
    gateway.metrics.observe_error(found.status, kind)
    return error_response(found, anthropic=anthropic, request_id=trace.request_id)


async def _stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    trace = request.get(TRACE)
    if trace is None:
        return
    overhead = trace.overhead_s(time.perf_counter())
    headers = response.headers
    headers["x-request-id"] = trace.request_id
    headers["x-llmdispatcher-vendor"] = _header_safe(trace.vendor)
    headers["x-llmdispatcher-model"] = _header_safe(trace.model)
    headers["x-llmdispatcher-attempts"] = str(trace.attempts)
    headers["x-llmdispatcher-overhead-ms"] = f"{overhead * 1000:.3f}"
    if trace.cache:
        headers[CACHE_HEADER] = trace.cache
    if trace.attempts:
        request.config_dict[GATEWAY].metrics.observe_overhead(trace.vendor, trace.model, overhead)


def _header_safe(value: str) -> str:
    """A model name comes from the client: keep it printable ASCII in a header."""
    if value.isascii() and value.isprintable():
        return value
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in value)


async def metrics(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    for name in gateway.dispatcher.vendors:
        gateway.metrics.set_breaker(name, gateway.dispatcher.breaker_state(name))
    body = gateway.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")
