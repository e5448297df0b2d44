"""The semantic side of the response cache (``Cache.semantic``): near-identical prompts.

Each stored answer's prompt is embedded and kept, in this process, beside the exact key of its
entry and under a *context* key: the exact key's fields without the messages' text (the
roles stay), so only a request with the same model, tools, sampling and scope can match. On an
exact miss the request's prompt is embedded and compared, by cosine similarity, with the
prompts kept under its context; the nearest at or above the threshold names the entry to
serve. The index holds at most ``limit`` prompts (oldest dropped first; ``MAX_PROMPTS``) and
lives in memory: with a shared store (SQLite, Redis) each process matches against the prompts
it stored itself. The comparison is a plain scan of one context's prompts (2,000 prompts of 384
dimensions: tens of milliseconds), on top of embedding the prompt: a cost only misses pay, and
only when semantic matching is on.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import orjson

from ..settings.cache import Cache, SemanticCache
from ..types import Request
from .key import cache_key

Embed = Callable[[str], Awaitable[Sequence[float]]]
MAX_PROMPTS = 2_000  # kept per process, across contexts


def prompt_text(request: Request) -> str:
    """What is embedded: every message's role and text, in order."""
    return "\n".join(f"{m.role}: {m.text}" for m in request.message_list)


def context_key(settings: Cache, request: Request, model: str) -> str:
    """The exact key's fields with the messages reduced to their roles."""
    roles = orjson.dumps([m.role for m in request.message_list]).decode()
    blank = replace(request, messages=[{"role": "user", "content": roles}])
    return hashlib.sha256(b"semantic:" + cache_key(settings, blank, model).encode()).hexdigest()


def _unit(vector: Sequence[float]) -> tuple[float, ...]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return tuple(x / norm for x in vector)


class SemanticIndex:
    def __init__(self, settings: SemanticCache, embed: Embed, limit: int) -> None:
        self.settings = settings
        self._embed = embed
        self._limit = min(limit, MAX_PROMPTS)
        # context -> exact key -> unit vector; ``_order``: (context, key), oldest first
        self._by_context: dict[str, dict[str, tuple[float, ...]]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def vector(self, request: Request) -> tuple[float, ...]:
        return _unit(await self._embed(prompt_text(request)))

    def nearest(self, context: str, vector: tuple[float, ...]) -> str | None:
        """The exact key of the most similar kept prompt under ``context``, if similar enough."""
        best, found = self.settings.threshold, None
        for key, kept in self._by_context.get(context, {}).items():
            similarity = sum(x * y for x, y in zip(vector, kept, strict=False))
            if similarity >= best:
                best, found = similarity, key
        return found

    def add(self, context: str, key: str, vector: tuple[float, ...]) -> None:
        self._by_context.setdefault(context, {})[key] = vector
        self._order[(context, key)] = None
        self._order.move_to_end((context, key))
        while len(self._order) > self._limit:
            (old_context, old_key), _ = self._order.popitem(last=False)
            kept = self._by_context[old_context]
            del kept[old_key]
            if not kept:
                del self._by_context[old_context]
