"""Response cache settings (``Config.cache``): plain values; ``cache/`` does the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CacheWhen = Literal["deterministic", "always"]
CACHE_WHENS: tuple[str, ...] = ("deterministic", "always")
CACHE_SCHEMES: tuple[str, ...] = ("memory://", "sqlite:///", "redis://", "rediss://")


@dataclass(frozen=True, slots=True)
class Cache:
    """Answers kept and served again for identical requests. Off unless ``Config.cache`` is set.

    ``url`` picks the store: ``memory://`` (this process), ``sqlite:///path.db`` (survives
    restarts, shared by the processes of one machine), ``redis://host:6379/0`` (shared by
    replicas). An entry lives ``ttl_s`` seconds; past ``max_entries`` or ``max_bytes`` the
    entries closest to expiry (memory: least recently used) are evicted.

    ``when="deterministic"`` caches only requests at temperature 0 or with a ``seed``: a
    sampled answer served twice would change what the caller asked for. ``"always"`` caches
    every request. Entries are scoped to the gateway key that asked unless ``shared``.
    Answers cut by ``max_tokens`` (finish reason ``length``) are kept only with
    ``store_truncated``; errors and broken streams never are.
    """

    url: str = "memory://"
    ttl_s: float = 3600.0
    max_entries: int = 10_000
    max_bytes: int = 64 * 2**20
    when: CacheWhen = "deterministic"
    shared: bool = False
    store_truncated: bool = False

    def __post_init__(self) -> None:
        if not self.url.startswith(CACHE_SCHEMES):
            raise ValueError(
                f"cache.url: {self.url!r} is not memory://, sqlite:///path.db or redis://host"
            )
        if self.when not in CACHE_WHENS:
            raise ValueError(f"cache.when: must be one of {', '.join(CACHE_WHENS)}")
        if not self.ttl_s > 0:
            raise ValueError("cache.ttl_s: must be a positive number of seconds")
        for name in ("max_entries", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"cache.{name}: must be a positive integer")
