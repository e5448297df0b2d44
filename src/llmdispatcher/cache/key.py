"""The cache key: a stable hash of what decides the answer, and whether a request may use one.

What goes in: the resolved model (the group, or the model when no group serves it), a forced
vendor, the messages, tools, tool choice, response format, the sampling parameters,
``parallel_tool_calls`` and the passthrough body fields (``seed``...), and the scope (the
gateway key, unless the cache is shared). What stays out: the request id, ``user``,
``metadata``, the timeout and stream options, which change nothing about the answer. The
encoding is canonical JSON (sorted keys, dataclasses by field), so the same request hashes the
same in every process and version of Python; ``KEY_VERSION`` changes when the encoding does, so
old entries are never misread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from ..settings.cache import Cache
from ..types import Request

KEY_VERSION = "v1"  # bump when the encoding or the fields change


def deterministic(request: Request) -> bool:
    """Temperature 0, or a ``seed``: the caller asked for a repeatable answer."""
    return request.temperature == 0 or bool(request.extra and "seed" in request.extra)


def eligible(settings: Cache, request: Request) -> bool:
    """Whether the cache may answer ``request``: deterministic (or ``when="always"``), and
    asking for one answer without log probabilities, which is what an entry keeps."""
    if request.n not in (None, 1) or request.logprobs:
        return False
    return settings.when == "always" or deterministic(request)


def scope_of(settings: Cache, request: Request) -> str:
    """Whose entries these are: the gateway key (its id, else its name), or all callers'."""
    if settings.shared:
        return "*"
    tags = request.metadata or {}
    return str(tags.get("api_key_id") or tags.get("api_key") or "")


def cache_key(settings: Cache, request: Request, model: str) -> str:
    """The hex digest under which ``request``'s answer is kept; ``model`` is the resolved
    model group or model name."""
    body = (
        KEY_VERSION,
        scope_of(settings, request),
        model,
        request.vendor,
        request.message_list,
        request.tool_list,
        request.tool_choice,
        request.response_format,
        request.temperature,
        request.top_p,
        request.max_tokens,
        request.stop_list,
        request.parallel_tool_calls,
        request.extra,
    )
    encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=_plain)
    return hashlib.sha256(encoded).hexdigest()


def _plain(value: Any) -> Any:
    """What orjson does not encode itself: read-only mappings (``Tool.parameters``)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot hash a {type(value).__name__} in a cache key")
