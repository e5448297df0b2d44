"""The models the gateway serves, for ``GET /v1/models``: every vendor's ``list_models()``
(local vendors list their aliases, such as ``local``), asked concurrently and cached for
``models_cache_s``. A vendor that cannot list its models (down, no listing endpoint) contributes
nothing and is asked again after ``RETRY_FAILED_S``. Model groups join this list later."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import DispatcherError
from ..vendors.base import Vendor

logger = logging.getLogger("llmdispatcher.gateway")
LIST_TIMEOUT_S = 5.0
RETRY_FAILED_S = 30.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    id: str
    vendor: str


@dataclass(slots=True)
class _Listing:
    models: tuple[str, ...]
    expires: float


class ModelCatalog:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._listings: dict[str, _Listing] = {}
        self._lock = asyncio.Lock()

    async def models(self, vendors: Mapping[str, Vendor]) -> list[ServedModel]:
        """Every (model, vendor) pair, vendors in registration order; cached."""
        async with self._lock:  # concurrent callers share one refresh
            now = time.monotonic()
            stale = [v for n, v in vendors.items() if self._expired(n, now)]
            if stale:
                listed = await asyncio.gather(*(self._list(v) for v in stale))
                for vendor, listing in zip(stale, listed, strict=True):
                    self._listings[vendor.name] = listing
        return [
            ServedModel(model, name) for name in vendors for model in self._listings[name].models
        ]

    def _expired(self, name: str, now: float) -> bool:
        listing = self._listings.get(name)
        return listing is None or listing.expires <= now

    async def _list(self, vendor: Vendor) -> _Listing:
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                found = await vendor.list_models()
        except (DispatcherError, TimeoutError) as exc:
            logger.warning("vendor %r: cannot list its models: %s", vendor.name, exc or "timeout")
            return _Listing((), time.monotonic() + RETRY_FAILED_S)
        return _Listing(tuple(found), time.monotonic() + self._ttl_s)
