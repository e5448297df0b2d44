"""``redis://host:6379/0``: state shared by every replica that points at the same Redis.

Each primitive is one Lua script (``EVALSHA``, loaded on first use): Redis runs a script to the
end before serving any other command, so a check-and-add is atomic across all replicas without
locks or retries (WATCH/MULTI would need retry loops under contention).

Layout, every key under a prefix (``llmd:`` by default; ``?prefix=app1:`` in the URL or the
``prefix`` argument; tests use a unique one each):

* a counter is a hash ``{v: value, x: expiry in epoch ms}``; the script compares ``x`` with the
  caller's ``now``, so expiry follows the injected clock exactly as the other backends do. The
  key also gets a Redis TTL (expiry + a grace minute) so finished windows are reclaimed;
* a lease set is a sorted set ``holder → expiry in epoch ms``; expired members are dropped at
  each acquire, and the key's TTL covers its longest lease.

Times travel as integer milliseconds and amounts as decimal strings (Lua numbers are doubles and
Redis formats large ones in exponent notation), so nothing is rounded below 2**53. For Redis
Cluster pick a prefix with a hash tag (``{llmd}:``) so a request's counters share a slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..errors import StateBusy, StateError
from .base import AddResult, BackendBase, CounterAdd, LeaseResult, check_adds

_GRACE_MS = 60_000

# KEYS: counters. ARGV: now_ms, then (amount, limit or "", expires_ms or "") per key.
_ADD_WITHIN = """
local now = tonumber(ARGV[1])
local values, live = {}, {}
for i = 1, #KEYS do
  local row = redis.call('HMGET', KEYS[i], 'v', 'x')
  live[i] = row[1] and (not row[2] or tonumber(row[2]) > now)
  values[i] = live[i] and tonumber(row[1]) or 0
end
for i = 1, #KEYS do
  local limit = ARGV[3 * i]
  if limit ~= '' and values[i] + tonumber(ARGV[3 * i - 1]) > tonumber(limit) then
    return {0, values}
  end
end
for i = 1, #KEYS do
  local amount, expires = ARGV[3 * i - 1], ARGV[3 * i + 1]
  if live[i] then
    values[i] = redis.call('HINCRBY', KEYS[i], 'v', amount)
  else
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], 'v', amount)
    values[i] = tonumber(amount)
    if expires ~= '' then
      redis.call('HSET', KEYS[i], 'x', expires)
      redis.call('PEXPIRE', KEYS[i], tonumber(expires) - now + GRACE_MS)
    end
  end
end
return {1, values}
""".replace("GRACE_MS", str(_GRACE_MS))

# KEYS: counter. ARGV: now_ms, delta.
_ADJUST = """
local row = redis.call('HMGET', KEYS[1], 'v', 'x')
if not row[1] or (row[2] and tonumber(row[2]) <= tonumber(ARGV[1])) then return false end
return redis.call('HINCRBY', KEYS[1], 'v', ARGV[2])
"""

# KEYS: counters. ARGV: now_ms.
_GET = """
local now, values = tonumber(ARGV[1]), {}
for i = 1, #KEYS do
  local row = redis.call('HMGET', KEYS[i], 'v', 'x')
  local live = row[1] and (not row[2] or tonumber(row[2]) > now)
  values[i] = live and tonumber(row[1]) or 0
end
return values
"""

# KEYS: lease set. ARGV: holder, limit, now_ms, expires_ms.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
local held = redis.call('ZCARD', KEYS[1])
local acquired = 0
if mine or held < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  if not mine then held = held + 1 end
  acquired = 1
  local ttl = tonumber(ARGV[4]) - tonumber(ARGV[3]) + GRACE_MS
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {acquired, held, first[2] or ''}
""".replace("GRACE_MS", str(_GRACE_MS))

# KEYS: lease set. ARGV: holder, now_ms, expires_ms.
_RENEW = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
local ttl = tonumber(ARGV[3]) - tonumber(ARGV[2]) + GRACE_MS
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
""".replace("GRACE_MS", str(_GRACE_MS))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def split_prefix(url: str, default: str) -> tuple[str, str]:
    """Take our ``prefix`` query parameter out of the URL; the rest goes to redis-py."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), default)
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisState(BackendBase):
    """``timeout_s`` bounds each command and ``connect_timeout_s`` each connection attempt; a
    call, once it has a connection, never takes longer than their sum. No retries here: a
    failure is a ``StateError`` at once, and ``FailoverState`` decides.

    At most ``max_connections`` calls run at once; the others wait for a slot, for up to
    ``pool_wait_s``. That wait is ours, not Redis's: it is outside the call's bound, and running
    out of it raises ``StateBusy`` (refuse this one request), never the ``StateError`` that
    starts an outage. A burst of thousands of requests on a healthy Redis therefore queues
    instead of tripping a false outage.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "llmd:",
        max_connections: int = 64,
        timeout_s: float = 0.5,
        connect_timeout_s: float = 0.5,
        pool_wait_s: float = 5.0,
    ) -> None:
        self.url = _redact(url)
        redis_url, self.prefix = split_prefix(url, prefix)
        self._call_timeout_s = timeout_s + connect_timeout_s
        self._pool_wait_s = pool_wait_s
        self._max_connections = max_connections
        # The slots keep the pool from ever blocking: the pool's own wait would count against
        # the call's bound and look like a dead Redis.
        self._slots = asyncio.Semaphore(max_connections)
        pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=connect_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self.redis = Redis(connection_pool=pool)
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in {
                "add": _ADD_WITHIN,
                "adjust": _ADJUST,
                "get": _GET,
                "acquire": _ACQUIRE,
                "renew": _RENEW,
            }.items()
        }

    async def add_within(self, adds: Sequence[CounterAdd], now: float) -> AddResult:
        check_adds(adds)
        if not adds:
            return AddResult(ok=True, values=())
        args: list[str | int] = [_ms(now)]
        for add in adds:
            args += [
                str(add.amount),
                "" if add.limit is None else str(add.limit),
                "" if add.expires_at is None else _ms(add.expires_at),
            ]
        ok, values = await self._eval("add", [add.key for add in adds], args)
        return AddResult(ok=bool(ok), values=tuple(int(v) for v in values))

    async def adjust(self, key: str, delta: int, now: float) -> int | None:
        value = await self._eval("adjust", [key], [_ms(now), str(delta)])
        return None if value is None else int(value)

    async def get(self, keys: Sequence[str], now: float) -> tuple[int, ...]:
        if not keys:
            return ()
        values = await self._eval("get", list(keys), [_ms(now)])
        return tuple(int(v) for v in values)

    async def acquire_lease(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> LeaseResult:
        args: list[str | int] = [holder, str(limit), _ms(now), _ms(expires_at)]
        acquired, held, first = await self._eval("acquire", [key], args)
        next_expiry = float(first) / 1000 if first else None
        return LeaseResult(bool(acquired), int(held), next_expiry)

    async def renew_lease(self, key: str, holder: str, now: float, expires_at: float) -> bool:
        return bool(await self._eval("renew", [key], [holder, _ms(now), _ms(expires_at)]))

    async def release_lease(self, key: str, holder: str) -> bool:
        return bool(await self._bounded(lambda: self.redis.zrem(self.prefix + key, holder)))

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)

    async def _eval(self, script: str, keys: list[str], args: list[str | int]) -> Any:
        keys = [self.prefix + k for k in keys]
        return await self._bounded(lambda: self._scripts[script](keys=keys, args=args))

    async def _bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call()`` once a slot is free (made only then, so a refused call sends nothing)."""
        try:
            async with asyncio.timeout(self._pool_wait_s):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise StateBusy(
                f"Redis state {self._where()}: all {self._max_connections} connections stayed busy "
                f"for {self._pool_wait_s:g}s: Redis is slow or this replica is overloaded"
            ) from exc
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await call()
        except TimeoutError as exc:
            raise StateError(
                f"Redis state {self._where()}: no answer within {self._call_timeout_s:g}s "
                "(state_timeout_s + state_connect_timeout_s)"
            ) from exc
        except (RedisError, OSError) as exc:
            raise StateError(f"Redis state {self._where()}: {exc}") from exc
        finally:
            self._slots.release()

    def _where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
