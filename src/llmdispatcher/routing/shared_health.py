"""Health shared by replicas through Redis (when ``state_url`` is ``redis://``).

Two things travel, so that N replicas stop sending to a dead vendor together instead of each
learning it alone:

* **Breaker openings**, the moment a breaker opens here (``BreakerBoard.on_open``): published
  on the channel ``<prefix>health:breakers``; every other replica opens its breaker for the
  same deployment for the same remaining cooldown (``BreakerBoard.open_remotely``). Each
  replica then probes on its own schedule. Closing is not shared: a probe that succeeded on one
  replica says the vendor answers that replica.
* **Latency and TTFT health**: every ``every_s`` each replica writes its own views
  (``HealthTracker.local_views``) into the hash ``<prefix>health:views`` (one field per replica,
  with the time written) and reads the others', those younger than ``stale_after_s``;
  ``HealthTracker.view`` merges them for the ``latency`` and ``objective`` strategies.

**Redis lost**: the replica serves on with its own view (the others' are dropped at once),
logs one warning, reconnects with backoff (0.25 s doubling to 2 s) and logs once when it has
rejoined. Breakers that opened elsewhere meanwhile are not replayed: each replica learns those
itself, as it would alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..clock import Clock
from ..resilience.circuit_breaker import BreakerBoard
from ..state.redis import split_prefix
from .health import HealthTracker
from .model import HealthView

logger = logging.getLogger("llmdispatcher.routing")
MAX_OUTBOX = 1024  # breaker openings waiting to be published; more are dropped (never block)
FORGET_AFTER_S = 60.0  # a replica silent this long is removed from the hash
_FIELDS = (
    "in_flight",
    "latency_ewma_s",
    "ttft_ewma_s",
    "ttft_p90_s",
    "ttft_p95_s",
    "latency_p90_s",
    "error_rate",
    "samples",
)


def _raise_if_cancelled() -> None:
    """redis-py can swallow a cancellation that arrives in the middle of a command (connecting,
    subscribing) and return as if nothing happened: re-raise it from the task's own record, or
    the task would run on and ``aclose`` wait for it forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def replica_name() -> str:
    """Unique per process: host, pid and a random tail (pids repeat across containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class SharedHealth:
    """Publishes this replica's breaker openings and health; applies the others'."""

    def __init__(
        self,
        url: str,
        breakers: BreakerBoard,
        health: HealthTracker,
        clock: Clock,
        *,
        every_s: float = 1.0,
        stale_after_s: float = 5.0,
        timeout_s: float = 1.0,
    ) -> None:
        redis_url, prefix = split_prefix(url, "llmd:")
        self.replica = replica_name()
        self.channel = f"{prefix}health:breakers"
        self.views_key = f"{prefix}health:views"
        self.connected = False
        self._lost = False  # the connection was lost: say so once when it is back
        self.received = 0  # breaker openings applied from other replicas
        self._breakers, self._health, self._clock = breakers, health, clock
        self._every_s, self._stale_after_s = every_s, stale_after_s
        self._redis = Redis.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_OUTBOX)
        self._task: asyncio.Task[None] | None = None
        breakers.on_open = self._opened

    def start(self) -> None:
        """Start sharing on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="llmdispatcher-shared-health"
            )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connected:  # leave the hash at once rather than going stale
            with contextlib.suppress(Exception):
                await self._redis.hdel(self.views_key, self.replica)
        await self._redis.aclose()

    def _opened(self, key: str, open_for_s: float, reason: str) -> None:
        if not self.connected:
            return  # Redis is away: this opening stays local, as the module docstring says
        message = {"from": self.replica, "key": key, "open_for_s": open_for_s, "reason": reason}
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(orjson.dumps(message))

    # --- the connection's life ----------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.25
        while True:
            try:
                await self._session()
            except Exception as exc:  # refused, reset, timed out: serve on with our own view
                _raise_if_cancelled()
                if not self._lost:
                    logger.warning(
                        "shared health: Redis unreachable (%s); this replica goes on with its "
                        "own view of vendor health until it returns",
                        exc,
                    )
                    backoff = 0.25
                self._lost = True
                self._health.remote = {}
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _session(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            await self._share_views()  # fails here, before announcing, if Redis is not there
            _raise_if_cancelled()
            if self._lost:
                logger.warning("shared health: Redis is back; sharing breakers and health again")
            self._lost, self.connected = False, True
            tasks = [
                asyncio.create_task(self._listen(pubsub)),
                asyncio.create_task(self._publish()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()  # raises what ended the session
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            _raise_if_cancelled()
            if message is not None:
                self._apply(message["data"])

    def _apply(self, data: bytes) -> None:
        try:
            found: dict[str, Any] = orjson.loads(data)
            if found["from"] == self.replica:
                return
            key, open_for_s = str(found["key"]), float(found["open_for_s"])
            reason = f"opened by replica {found['from']}: {found['reason']}"
        except (ValueError, KeyError, TypeError):
            logger.debug("shared health: ignored a malformed message %r", data[:200])
            return
        self.received += 1
        self._breakers.open_remotely(key, open_for_s, reason)
        logger.info("circuit breaker for %s %s; open here too for %.0fs", key, reason, open_for_s)

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        next_share = loop.time() + self._every_s
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_share - loop.time())):
                    message = await self._outbox.get()
                await self._redis.publish(self.channel, message)
            except TimeoutError:
                await self._share_views()
                next_share = loop.time() + self._every_s
            _raise_if_cancelled()

    async def _share_views(self) -> None:
        now = self._clock.wall()
        mine = {d: [getattr(v, f) for f in _FIELDS] for d, v in self._health.local_views().items()}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.views_key, self.replica, orjson.dumps({"at": now, "views": mine}))
            pipe.pexpire(self.views_key, int(FORGET_AFTER_S * 1000))
            pipe.hgetall(self.views_key)
            *_, rows = await pipe.execute()
        gone: list[bytes] = []
        self._health.remote = self._remote_views(rows, now, gone)
        if gone:
            await self._redis.hdel(self.views_key, *gone)

    def _remote_views(
        self, rows: dict[bytes, bytes], now: float, gone: list[bytes]
    ) -> dict[str, list[HealthView]]:
        """The fresh views of the other replicas; ``gone`` gets those silent too long."""
        remote: dict[str, list[HealthView]] = {}
        me = self.replica.encode()
        for replica, raw in rows.items():
            if replica == me:
                continue
            try:
                data = orjson.loads(raw)
                if data["at"] < now - FORGET_AFTER_S:
                    gone.append(replica)
                if data["at"] < now - self._stale_after_s:
                    continue
                for deployment, values in data["views"].items():
                    view = HealthView(**dict(zip(_FIELDS, values, strict=True)))
                    remote.setdefault(deployment, []).append(view)
            except (ValueError, KeyError, TypeError):
                continue
        return remote
