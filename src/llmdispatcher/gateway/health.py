"""``GET /livez`` and ``GET /readyz``: what a load balancer, Docker or Kubernetes asks.

* ``/livez``: 200 ``{"status": "alive"}`` whenever the process's event loop runs a handler.
  A blocked or dead loop answers nothing, which is what a liveness probe needs to see.
* ``/readyz``: 200 when this replica should take traffic, 503 when not, always with a JSON body
  saying why::

      {"ready": false, "draining": true, "not_ready": ["draining"],
       "checks": {"vendors": {"ok": true, "required": true, "error": null}, ...}}

  The checks: ``vendors`` (at least one registered), ``state`` (the shared state backend
  answers a read), ``ledger`` (its writes succeed), ``shared_health`` (the replicas' Redis
  channel is connected), ``key_store`` (stored keys refresh). They run in a background task
  every ``CHECK_EVERY_S`` (and once before the gateway listens); a request only reads the last
  result, so it is answered in microseconds and a probe storm costs nothing.

  Only what makes *this* replica unable to serve is ``required`` (turns ``/readyz`` 503):
  draining, no vendors, and the state backend when ``state_failure: closed`` (requests under a
  limit are refused then anyway). The others are reported (``"ok": false``, listed in
  ``degraded``) but keep 200: with ``state_failure: open`` a replica that lost Redis serves
  with local limits, a ledger whose writes fail keeps its records in memory and its spill
  file, and the key cache keeps the keys it knows. These backends are shared, so failing
  readiness on them would take every replica out of the load balancer at once and turn a
  degraded service into an outage.

**Draining** (``drain()``, called on SIGTERM by ``server.py``): ``/readyz`` turns 503 at once;
requests are still served, each response with ``Connection: close`` so that clients and load
balancers open their next connection elsewhere instead of reusing one that is about to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiohttp import web

from .state import GATEWAY, Gateway

logger = logging.getLogger("llmdispatcher.gateway")
CHECK_EVERY_S = 1.0
ALIVE = orjson.dumps({"status": "alive"})


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    required: bool
    error: str | None = None


class Readiness:
    """The last result of the readiness checks, and whether the gateway is draining."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.draining = False
        self.checks: dict[str, Check] = {}
        self.body, self.status = b"", 503
        self._render()

    def drain(self) -> None:
        self.draining = True
        self._render()

    async def refresh(self) -> None:
        dispatcher = self.gateway.dispatcher
        closed = dispatcher.config.state_policy.failure == "closed"
        checks = {"vendors": _check(None if dispatcher.vendors else "no vendor registered")}
        for name, error in (await dispatcher.check_dependencies()).items():
            checks[name] = _check(error, required=name == "state" and closed)
        cache = self.gateway.stored_keys
        if cache is not None:
            checks["key_store"] = _check(cache.error, required=False)
        self.checks = checks
        self._render()

    def _render(self) -> None:
        failing = [name for name, check in self.checks.items() if not check.ok]
        not_ready = [name for name in failing if self.checks[name].required]
        if self.draining:
            not_ready.insert(0, "draining")
        if not self.checks:
            not_ready.append("starting")
        body = {
            "ready": not not_ready,
            "draining": self.draining,
            "not_ready": not_ready,
            "degraded": [name for name in failing if name not in not_ready],
            "checks": {
                name: {"ok": c.ok, "required": c.required, "error": c.error}
                for name, c in self.checks.items()
            },
        }
        self.body, self.status = orjson.dumps(body), 503 if not_ready else 200

    async def run(self) -> None:
        """Refresh every ``CHECK_EVERY_S`` until cancelled."""
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                await self.refresh()
            except Exception:  # a bug in a check must not freeze the last answer silently
                logger.exception("readiness checks failed; /readyz keeps its last answer")


def _check(error: str | None, *, required: bool = True) -> Check:
    return Check(error is None, required, error)


READINESS = web.AppKey("readiness", Readiness)


def attach(app: web.Application) -> None:
    """Add ``/livez`` and ``/readyz``, the checks' task, and ``Connection: close`` while
    draining."""
    readiness = app[READINESS] = Readiness(app[GATEWAY])

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        readiness.gateway.dispatcher.start_sharing()  # on this loop, before the first request
        await readiness.refresh()
        task = asyncio.create_task(readiness.run(), name="llmdispatcher-readiness")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(lifetime)
    app.on_response_prepare.append(_close_while_draining)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)


async def livez(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=ALIVE, content_type="application/json")


async def readyz(request: web.Request) -> web.StreamResponse:
    readiness = request.app[READINESS]
    return web.Response(
        body=readiness.body,
        status=readiness.status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _close_while_draining(request: web.Request, response: web.StreamResponse) -> None:
    if request.config_dict[READINESS].draining:  # config_dict: a sub-app (/ui/) too
        # (aiohttp has written its Connection header before this hook runs: say it here too,
        # or the client would reuse a connection the server closes)
        response.force_close()
        response.headers["Connection"] = "close"
