"""``redis://host:6379/0``: entries shared by every replica; the soonest to expire are evicted
first.

Layout under a prefix (``llmd:cache:`` by default, ``?prefix=`` in the URL): each entry is a
hash ``{v: value, x: expiry in epoch ms}`` (read against the caller's ``now``, as the other
stores do; a Redis TTL of the expiry plus a grace minute reclaims it), the index ``idx`` a
sorted set of entry names by expiry, ``sizes`` a hash of their sizes and ``bytes`` their total.
A put is one Lua script: it drops expired entries, writes, then evicts the soonest to expire
until the bounds hold, so replicas never race on the bounds. Entry names are built inside the
script, so this layout is for a single Redis (not Cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from ..state.redis import split_prefix
from .store import Bounds, PutResult

_GRACE_MS = 60_000
_TIMEOUT_S = 1.0

# KEYS: idx, sizes, bytes. ARGV: prefix, name, value, expires_ms, now_ms, max_entries,
# max_bytes.
_PUT = """
local idx, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local prefix, name, value = ARGV[1], ARGV[2], ARGV[3]
local expires, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_entries, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])
local function drop(member)
  local size = tonumber(redis.call('HGET', sizes, member) or '0')
  redis.call('HDEL', sizes, member)
  redis.call('ZREM', idx, member)
  redis.call('DEL', prefix .. member)
  redis.call('DECRBY', total, size)
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', now)) do drop(member) end
if redis.call('HEXISTS', sizes, name) == 1 then drop(name) end
local stored = 0
if #value <= max_bytes then
  redis.call('HSET', prefix .. name, 'v', value, 'x', expires)
  redis.call('PEXPIRE', prefix .. name, expires - now + GRACE_MS)
  redis.call('ZADD', idx, expires, name)
  redis.call('HSET', sizes, name, #value)
  redis.call('INCRBY', total, #value)
  stored = 1
end
local function size() return tonumber(redis.call('GET', total) or '0') end
local evicted = 0
while redis.call('ZCARD', idx) > max_entries or size() > max_bytes do
  drop(redis.call('ZRANGE', idx, 0, 0)[1])
  evicted = evicted + 1
end
return {stored, evicted, redis.call('ZCARD', idx), size()}
""".replace("GRACE_MS", str(_GRACE_MS))


class RedisCacheStore:
    def __init__(self, url: str, bounds: Bounds, prefix: str) -> None:
        self.url = url.rsplit("@", maxsplit=1)[-1]  # never the password
        url, prefix = split_prefix(url, prefix)  # ``?prefix=app1:`` in the URL wins
        self._bounds, self._prefix = bounds, prefix
        self._redis = Redis.from_url(
            url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
        )
        self._put = self._redis.register_script(_PUT)

    async def get(self, key: str, now: float) -> bytes | None:
        value, expires = await self._bounded(self._redis.hmget(self._prefix + key, "v", "x"))
        if value is None or expires is None or int(expires) <= int(now * 1000):
            return None
        return bytes(value)

    async def put(self, key: str, value: bytes, expires_at: float, now: float) -> PutResult:
        keys = [self._prefix + name for name in ("idx", "sizes", "bytes")]
        bounds = self._bounds
        args: list[Any] = [
            self._prefix, key, value, int(expires_at * 1000), int(now * 1000),
            bounds.max_entries, bounds.max_bytes,
        ]  # fmt: skip
        stored, evicted, entries, size = await self._bounded(self._put(keys=keys, args=args))
        return PutResult(bool(stored), int(evicted), int(entries), int(size))

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        async with asyncio.timeout(_TIMEOUT_S * 2):
            return await call
