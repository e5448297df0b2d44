"""The response cache: look up, coalesce concurrent identical misses, store what is complete.

One ``flight`` per request (``async with cache.flight(...) as flight``) owns the lookup and
the write, so a request that fails or is cancelled can never leave a half entry or a waiter
behind. Within one process, identical requests that miss together share one upstream call:
the first becomes the *leader*, the others wait for its answer and are served it as hits. If
the leader gives no complete answer (an error, a broken or abandoned stream) the waiters go
upstream themselves. A store that fails is logged and treated as a miss: the cache never
fails a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..clock import Clock
from ..observability.events import CacheLookup, CacheStored, Event
from ..settings.cache import Cache
from ..types import CacheControl, Request
from .entry import Entry
from .key import cache_key, eligible
from .semantic import Embed, SemanticIndex, context_key
from .store import Bounds, CacheStore, open_cache_store

logger = logging.getLogger("llmdispatcher.cache")
NO_CONTROL = CacheControl()


@dataclass(slots=True)
class Flight:
    """One request's use of the cache. ``entry`` is set on a hit; on a miss the caller
    ``offer``s the complete answer, which waiters get and the store keeps if it may."""

    outcome: str  # hit | miss | bypass
    entry: Entry | None = None
    answer: Entry | None = None
    # Semantic matching: the prompt's vector and its context, kept with the answer's entry.
    context: str | None = None
    vector: tuple[float, ...] | None = None

    def offer(self, answer: Entry) -> None:
        self.answer = answer


class ResponseCache:
    def __init__(
        self,
        settings: Cache,
        clock: Clock,
        emit: Callable[[Event], None],
        store: CacheStore | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.settings = settings
        self._clock, self._emit = clock, emit
        self.store = store or open_cache_store(
            settings.url, Bounds(settings.max_entries, settings.max_bytes)
        )
        self._leaders: dict[str, asyncio.Future[Entry | None]] = {}
        self._semantic = (
            SemanticIndex(settings.semantic, embed, settings.max_entries)
            if settings.semantic is not None and embed is not None
            else None
        )

    @asynccontextmanager
    async def flight(self, request_id: str, request: Request, model: str) -> AsyncIterator[Flight]:
        """The cache's part in one request for ``model`` (the resolved group or model)."""
        control = request.cache_control or NO_CONTROL
        if not eligible(self.settings, request):
            yield self._looked_up(request_id, Flight("bypass"))
            return
        key = cache_key(self.settings, request, model)
        if control.no_cache:
            flight = self._looked_up(request_id, Flight("bypass"))
            yield flight
            await self._store(request_id, key, flight, control)
            return
        leader = self._leaders.get(key)
        if leader is not None:
            answer = await asyncio.shield(leader)
            if answer is not None:
                yield self._looked_up(request_id, Flight("hit", answer))
                return
        async with self._lead(key) as future:
            entry = await self._get(key)
            flight = Flight("hit" if entry else "miss", entry)
            if entry is None and self._semantic is not None:
                await self._nearest(flight, request, model)
            yield self._looked_up(request_id, flight)
            future.set_result(flight.entry or flight.answer)
        if flight.entry is None:
            await self._store(request_id, key, flight, control)

    @asynccontextmanager
    async def _lead(self, key: str) -> AsyncIterator[asyncio.Future[Entry | None]]:
        """Be the one request that goes upstream for ``key`` (when none is already)."""
        if key in self._leaders:  # another took the lead while this one waited: go alone
            yield asyncio.get_running_loop().create_future()
            return
        future = self._leaders[key] = asyncio.get_running_loop().create_future()
        try:
            yield future
        finally:
            if not future.done():
                future.set_result(None)  # no answer: the waiters go upstream themselves
            del self._leaders[key]

    async def _nearest(self, flight: Flight, request: Request, model: str) -> None:
        """On an exact miss: the entry of the nearest stored prompt, if near enough."""
        assert self._semantic is not None
        flight.context = context_key(self.settings, request, model)
        try:
            flight.vector = await self._semantic.vector(request)
        except Exception as exc:  # the cache must never fail a request
            logger.warning("response cache: embedding the prompt failed, an exact miss: %s", exc)
            return
        near = self._semantic.nearest(flight.context, flight.vector)
        entry = None if near is None else await self._get(near)
        if entry is not None:
            flight.outcome, flight.entry = "hit", entry

    def _looked_up(self, request_id: str, flight: Flight) -> Flight:
        self._emit(CacheLookup(request_id, flight.outcome))
        return flight

    async def _get(self, key: str) -> Entry | None:
        try:
            data = await self.store.get(key, self._clock.wall())
            return None if data is None else Entry.decode(data)
        except Exception as exc:  # the cache must never fail a request
            logger.warning("response cache %s: lookup failed, treated as a miss: %s",
                           self.store.url, exc)  # fmt: skip
            return None

    def storable(self, answer: Entry) -> bool:
        """Complete answers only; one cut by max_tokens only when the settings ask."""
        reasons = ("stop", "tool_calls", "length") if self.settings.store_truncated else (
            "stop", "tool_calls")  # fmt: skip
        return answer.finish_reason in reasons

    async def _store(
        self, request_id: str, key: str, flight: Flight, control: CacheControl
    ) -> None:
        answer = flight.answer
        if answer is None or control.no_store or not self.storable(answer):
            return
        now = self._clock.wall()
        data = answer.encode()
        try:
            expires = now + (control.ttl_s or self.settings.ttl_s)
            done = await self.store.put(key, data, expires, now)
        except Exception as exc:
            logger.warning("response cache %s: could not store an answer: %s",
                           self.store.url, exc)  # fmt: skip
            return
        if done.stored and self._semantic is not None and flight.vector is not None:
            assert flight.context is not None
            self._semantic.add(flight.context, key, flight.vector)
        if done.stored or done.evicted:
            size = len(data) if done.stored else 0
            self._emit(CacheStored(request_id, size, done.evicted, done.entries, done.bytes))

    async def aclose(self) -> None:
        await self.store.close()
