"""The response cache at the HTTP edge: a client's ``Cache-Control: no-cache`` (do not answer
from the cache; the fresh answer is still stored) and ``no-store`` (keep this answer out of
it) become the request's ``CacheControl``; ``x-llmdispatcher-cache: hit | miss | bypass``
tells the client what the cache did (absent when the gateway has no cache)."""

from __future__ import annotations

from ..types import CacheControl

CACHE_HEADER = "x-llmdispatcher-cache"


def cache_control(header: str | None) -> CacheControl | None:
    """The request's ``Cache-Control`` header as a ``CacheControl``; None when it asks for
    nothing we act on (other directives, e.g. ``max-age``, are ignored)."""
    if not header:
        return None
    directives = {part.strip().lower().partition("=")[0] for part in header.split(",")}
    no_cache, no_store = "no-cache" in directives, "no-store" in directives
    if not (no_cache or no_store):
        return None
    return CacheControl(no_cache=no_cache, no_store=no_store)
