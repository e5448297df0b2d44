"""Wiring stored keys into an app: the cache and its poller, the usage counters, the budgets.

``attach`` is called by ``create_app`` when the gateway has a key store: the cache is loaded
before the app serves (a store that cannot be read stops the start, with the reason) and
polled while it runs; the dispatcher asks the cache for a request's key and team budgets
(``Dispatcher.set_budget_source``). ``finish`` settles a stored key's request once its
response, or stream, has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from ..config import Config
from ..keys import KeyStore as StoredKeyStore
from .key_cache import KeyCache
from .key_usage import KeyLease, KeyUsage
from .state import Gateway, Trace

logger = logging.getLogger("llmdispatcher.gateway")


def group_models(config: Config) -> Mapping[str, tuple[str, ...]]:
    """Each model group's name -> the models it may be answered by: its deployments' and,
    transitively, those of the groups it falls back to (what a key's model patterns must
    allow for it to use the group)."""
    groups = {g.name: g for g in config.model_groups}

    def reach(name: str) -> set[str]:
        seen, todo, models = set(), [name], set()
        while todo:
            group = groups.get(todo.pop())
            if group is None or group.name in seen:
                continue
            seen.add(group.name)
            models |= {d.model for d in group.deployments}
            todo += [*group.fallbacks, *group.context_window_fallbacks]
            todo += group.content_filter_fallbacks
        return models

    return {name: tuple(sorted(reach(name))) for name in groups}


def attach(app: web.Application, gateway: Gateway, store: StoredKeyStore) -> None:
    cache = KeyCache(store, gateway.settings.key_refresh_s, gateway.clock.wall)
    gateway.stored_keys = cache
    gateway.keys.stored = cache
    gateway.key_usage = KeyUsage(gateway.dispatcher.config.state_url, gateway.clock)
    gateway.dispatcher.set_budget_source(lambda request: cache.budgets(request.metadata))

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await cache.load()
        poller = asyncio.create_task(cache.run(), name="llmdispatcher-key-cache")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if gateway.key_usage is not None:
                await gateway.key_usage.aclose()
            await store.aclose()

    app.cleanup_ctx.append(lifetime)


async def finish(gateway: Gateway, trace: Trace) -> None:
    """Settle a stored key's request: its limits and its usage counters. Shielded: a client
    that hangs up cancels its request's task, which must not skip the settling (a slot would
    stay taken until its lease expired, the request would go uncounted)."""
    lease, trace.lease = trace.lease, None
    if lease is None or gateway.key_usage is None:
        return
    task = asyncio.ensure_future(_settle(gateway.key_usage, lease, trace))
    gateway.settling.add(task)  # a strong reference while it runs
    task.add_done_callback(gateway.settling.discard)
    await asyncio.shield(task)


async def _settle(usage: KeyUsage, lease: KeyLease, trace: Trace) -> None:
    try:
        await usage.finish(lease, trace.tokens, trace.cost_usd)
    except Exception:  # the state backend is down: the leases expire on their own
        logger.exception("request %s: could not settle the key's limits", trace.request_id)
