"""Response cache settings (``Config.cache``): plain values; ``cache/`` does the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CacheWhen = Literal["deterministic", "always"]
CACHE_WHENS: tuple[str, ...] = ("deterministic", "always")
CACHE_SCHEMES: tuple[str, ...] = ("memory://", "sqlite:///", "redis://", "rediss://")


@dataclass(frozen=True, slots=True)
class SemanticCache:
    """Near-identical prompts served from the cache too: on an exact miss, the prompt is
    embedded with ``model`` (``local-embed``: the built-in all-MiniLM-L6-v2) and the stored
    answer whose prompt is nearest, by cosine similarity of at least ``threshold``, with the
    same model, tools, sampling and scope, is a hit. Off unless ``Cache.semantic`` is set."""

    model: str = "local-embed"
    threshold: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("cache.semantic.model: the name of an embedding model is required")
        if isinstance(self.threshold, bool) or not 0 < self.threshold <= 1:
            raise ValueError(
                "cache.semantic.threshold: a cosine similarity above 0 and at most 1 (0.95: "
                "near-identical wording)"
            )


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
    semantic: SemanticCache | None = None

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
