"""Stored keys' own limits and usage, in the dispatcher's state backend (``state_url``).

Per request, not per attempt: ``reserve`` takes one request, the worst-case tokens (estimated
prompt + ``max_tokens``, else the router's default) and a concurrency slot under the key's
``rpm``/``tpm``/``max_concurrency`` (scope ``apikey:<id>``), or raises a 429 with
``Retry-After``; ``finish`` (after the response, or the stream's end) reconciles the tokens with
what the vendor billed, frees the slot and adds the request, its tokens and its cost to the
key's usage counters of the current budget period (read back by the admin API). Because the
windows, leases and counters live in the shared state, they hold across replicas on Redis.
Budgets are not here: the dispatcher's budget machinery counts them (``KeyCache.budgets``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from ..budgets import Budget, Period, from_micros, period_key, scope_period_key, to_micros
from ..clock import Clock
from ..routing.router import DEFAULT_MAX_TOKENS
from ..state.base import CounterAdd
from ..tokens import estimate_prompt_tokens
from ..types import Request
from .auth import ApiKey
from .errors import ApiError

if TYPE_CHECKING:
    from ..resilience.rate_limit import RateLimiter, Reservation
    from ..state.base import StateBackend

USAGE_FIELDS = ("requests", "tokens", "cost_micros")


@dataclass(slots=True)
class KeyLease:
    """What ``reserve`` took for one request of a stored key."""

    key: ApiKey
    period: Period
    reservation: Reservation | None


@dataclass(frozen=True, slots=True)
class KeyUse:
    """A key's use in its current budget period."""

    requests: int
    tokens: int
    spent_usd: Decimal


class KeyUsage:
    def __init__(self, state_url: str, clock: Clock) -> None:
        self.state_url = state_url
        self.clock = clock
        self._state: StateBackend | None = None
        self._limiter: RateLimiter | None = None

    def state(self) -> StateBackend:
        if self._state is None:
            from ..state import open_state

            self._state = open_state(self.state_url)
        return self._state

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            from ..resilience.rate_limit import RateLimiter

            self._limiter = RateLimiter(self.state(), self.clock)
        return self._limiter

    async def reserve(self, key: ApiKey, request: Request, period: Period) -> KeyLease:
        """Take the request under the key's limits, or raise ``ApiError(429)``."""
        if key.limits is None:
            return KeyLease(key, period, None)
        from ..resilience.rate_limit import Refusal

        tokens = estimate_prompt_tokens(request) + (request.max_tokens or DEFAULT_MAX_TOKENS)
        found = await self.limiter().reserve(f"apikey:{key.id}", key.limits, tokens)
        if isinstance(found, Refusal):
            wait = None if math.isinf(found.frees_in) else found.frees_in
            raise ApiError(
                429,
                f"the API key {key.name!r} is over its {found.which} limit: {found.used:,} of "
                f"{found.limit:,}" + ("" if wait is None else f"; retry in {math.ceil(wait)}s"),
                code="rate_limit_exceeded",
                retry_after=wait,
            )
        return KeyLease(key, period, found)

    async def finish(self, lease: KeyLease, tokens: int, cost_usd: Decimal) -> None:
        """Settle the request: reconcile and free its reservation, count its use."""
        try:
            if lease.reservation is not None:
                await self.limiter().finish(lease.reservation, tokens)
        finally:
            wall = self.clock.wall()
            micros = to_micros(cost_usd, ROUND_CEILING)
            keys, ends = _usage_keys(lease.key, lease.period, wall)
            adds = [
                CounterAdd(name, amount, None, ends)
                for name, amount in zip(keys, (1, tokens, micros), strict=True)
            ]
            await self.state().add_within(adds, wall)

    async def use(self, key_id: str, period: Period) -> KeyUse:
        wall = self.clock.wall()
        keys, _ = _usage_keys_by_id(key_id, period, wall)
        requests, tokens, micros = await self.state().get(keys, wall)
        return KeyUse(requests, tokens, from_micros(micros))

    async def spent(self, budget: Budget) -> Decimal:
        wall = self.clock.wall()
        (micros,) = await self.state().get([period_key(budget, wall)[0]], wall)
        return from_micros(micros)

    async def aclose(self) -> None:
        if self._state is not None:
            await self._state.close()
            self._state = None


def _usage_keys(key: ApiKey, period: Period, wall: float) -> tuple[Sequence[str], float | None]:
    return _usage_keys_by_id(key.id or key.name, period, wall)


def _usage_keys_by_id(
    key_id: str, period: Period, wall: float
) -> tuple[Sequence[str], float | None]:
    base, ends = scope_period_key(f"key:{key_id}", period, wall)
    return [f"usage:{base}:{name}" for name in USAGE_FIELDS], ends
