"""Rate limits per vendor or deployment, held in shared state so replicas obey them together.

Limits: requests and tokens per minute and per day (``rpm``, ``tpm``, ``rpd``, ``tpd``) and
concurrent requests (``max_concurrency``). Around each attempt the dispatcher calls::

    outcome = await limiter.reserve("openai", limits, tokens=prompt_estimate + max_tokens)
    # or, a vendor's and a deployment's limits together, all or none:
    # await limiter.reserve_many([("openai", vendor_limits), ("openai/gpt-4o", limits)], n)
    if isinstance(outcome, Refusal):
        ...  # try another deployment, or wait ``outcome.frees_in`` (``outcome.to_error()``)
    try:
        response = await send()
    finally:
        await limiter.finish(outcome, actual_tokens)   # reconcile + release; 0 if nothing billed
    limiter.observe_headers("openai", response_headers)

**Window algorithm: fixed windows**, aligned to UTC (minute windows start at :00, day windows at
00:00 UTC), one counter per scope, limit and window. Chosen because it makes "N replicas
together never exceed the limit" exact at O(1) cost, whatever the replicas' clocks say:

* each admission is one atomic check-and-add on the window's counter (``add_within``), so at
  every instant the counter — reserved tokens of requests in flight plus actual tokens of
  finished ones — is ``<= limit``; clock skew between replicas only moves a request into a
  neighbouring window, it never lets one counter pass its limit;
* a sliding-window log is exact too but keeps one entry per request (a day window holds
  millions) and must sum them at each check;
* the sliding-window counter (previous window weighted by overlap) is an estimate that assumes
  uniform traffic and can admit more than the limit;
* GCRA / token bucket is smooth and O(1), but each decision uses the caller's clock, so a replica
  whose clock runs ahead admits early: the bound is no longer exact across machines.

The price of fixed windows: a burst straddling a boundary can use up to twice the limit within
one 60-second span. The vendor's own view (``observe_headers``) and the router falling back on a
vendor 429 cover that; set the limit a little below the vendor's to keep a margin.

**Reserve, then reconcile.** ``reserve`` adds the worst case (estimated prompt tokens +
``max_tokens``) to the token counters and 1 to the request counters, all or nothing.
``reconcile`` adds ``actual - reserved`` to the *same* windows (not the current ones); a window
that closed in the meantime has nothing left to correct. Admitted tokens stay within the limit
exactly whenever the real usage is at most the reservation; the only tolerance is a prompt
estimate below the real prompt, which overshoots by that difference. Requests are not refunded
when an attempt fails: vendors count failed requests against their request limits too.

**Concurrency** is a lease per request in flight (``lease_ttl``, 10 minutes by default;
``renew`` it for longer streams): a replica that crashes holding slots frees them when the
leases expire. The lease is taken before the windows; if a window refuses, it is released, so a
refusal leaves nothing behind.

**The vendor's view.** ``observe_headers`` reads OpenAI's ``x-ratelimit-remaining-*`` /
``x-ratelimit-reset-*`` and Anthropic's ``anthropic-ratelimit-*-remaining`` / ``-reset`` and keeps,
per scope and in this process only, "N remaining until T". ``reserve`` refuses what the vendor
would refuse and debits the view, so we slow down before the vendor answers 429; each response's
headers replace the view (the vendor's counters are the shared truth).
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..clock import Clock, SystemClock
from ..errors import LocalRateLimited, StateError, StateUnavailable
from ..limits import MAX_VENDOR_DELAY_S, Limits
from ..state.base import CounterAdd, StateBackend

LimitName = Literal[
    "rpm",
    "tpm",
    "rpd",
    "tpd",
    "max_concurrency",
    "vendor_requests",
    "vendor_tokens",
    "state_unavailable",
]
STATE_RETRY_S = 1.0  # the retry hint of a refusal because the state backend is down
WindowName = Literal["rpm", "tpm", "rpd", "tpd"]

# name -> (window length in seconds, counts tokens rather than requests)
WINDOWS: dict[WindowName, tuple[int, bool]] = {
    "rpm": (60, False),
    "tpm": (60, True),
    "rpd": (86_400, False),
    "tpd": (86_400, True),
}
_DESCRIBE = {
    "rpm": "requests used this minute",
    "tpm": "tokens used this minute",
    "rpd": "requests used today (UTC)",
    "tpd": "tokens used today (UTC)",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: which limit of which scope, its use and when it frees.

    ``frees_in`` is seconds until the request could pass (the latest of the failing limits);
    ``math.inf`` when it never can (more tokens than the limit itself). For ``max_concurrency``
    it is an upper bound: a slot usually frees sooner, when a request in flight finishes.
    ``state_unavailable``: the limits could not be checked (the state backend is down and
    ``state_failure`` is closed); ``detail`` says why.
    """

    scope: str
    which: LimitName
    used: int
    limit: int
    requested: int
    frees_in: float
    detail: str = ""

    @property
    def name(self) -> str:
        return f"{self.which} of {self.scope}"

    @property
    def permanent(self) -> bool:
        return math.isinf(self.frees_in)

    def __str__(self) -> str:
        if self.which == "state_unavailable":
            return f"the limits of {self.scope} cannot be checked: {self.detail}"
        if self.permanent:
            return (
                f"{self.name}: {self.requested:,} requested exceeds the limit of "
                f"{self.limit:,}; this request can never be admitted"
            )
        if self.which == "max_concurrency":
            return (
                f"{self.name}: {self.used:,} of {self.limit:,} requests in flight; a slot frees "
                f"when one finishes (at the latest in {self.frees_in:.1f}s)"
            )
        if self.which.startswith("vendor_"):
            unit = self.which.removeprefix("vendor_")
            return (
                f"{self.name}: the vendor reports {self.used:,} {unit} remaining, "
                f"{self.requested:,} requested; resets in {self.frees_in:.1f}s"
            )
        return (
            f"{self.name}: {self.used:,} of {self.limit:,} {_DESCRIBE[self.which]}, "
            f"{self.requested:,} more requested; frees in {self.frees_in:.1f}s"
        )

    def to_error(self) -> LocalRateLimited:
        """The error to raise once no deployment is left and the queue time is spent."""
        error_class = StateUnavailable if self.which == "state_unavailable" else LocalRateLimited
        return error_class(
            str(self),
            vendor=self.scope,
            retry_after=None if self.permanent else self.frees_in,
            limit=self.which,
            permanent=self.permanent,
        )


@dataclass(eq=False, slots=True)
class Reservation:
    """What ``reserve`` took; hand it back to ``reconcile`` / ``release`` (or ``finish``)."""

    scopes: tuple[str, ...]
    tokens: int
    token_keys: tuple[str, ...] = ()
    lease_keys: tuple[str, ...] = ()
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)
    reconciled: bool = False
    released: bool = False


@dataclass(slots=True)
class _VendorWindow:
    remaining: int
    resets_at: float  # Clock.now() seconds


_Debits = list[tuple[_VendorWindow, int]]


class RateLimiter:
    """Checks and records use against ``Limits`` in a ``StateBackend`` (see the module doc)."""

    def __init__(
        self, state: StateBackend, clock: Clock | None = None, *, lease_ttl: float = 600.0
    ) -> None:
        if lease_ttl <= 0:
            raise ValueError("lease_ttl: must be > 0 seconds")
        self.state = state
        self.clock: Clock = clock or SystemClock()
        self.lease_ttl = lease_ttl
        self._vendor: dict[tuple[str, str], _VendorWindow] = {}

    async def reserve(self, scope: str, limits: Limits, tokens: int) -> Reservation | Refusal:
        """Take one request and ``tokens`` worst-case tokens under every limit, or none."""
        return await self.reserve_many([(scope, limits)], tokens)

    async def reserve_many(
        self, targets: Sequence[tuple[str, Limits]], tokens: int
    ) -> Reservation | Refusal:
        """``reserve`` under several scopes at once — a vendor and the deployment the request
        goes to — all or none: the window counters of every scope in one atomic add."""
        if tokens < 0:
            raise ValueError("tokens: must be >= 0")
        scopes = tuple(scope for scope, _ in targets)
        if len(set(scopes)) != len(scopes):
            raise ValueError(f"reserve_many: scopes must be distinct, got {scopes}")
        reservation = Reservation(scopes, tokens)
        debits: _Debits = []
        refusal = self._debit_vendor_views(scopes, tokens, debits)
        try:
            if refusal is None:
                refusal = await self._acquire_slots(reservation, targets)
            if refusal is None:
                refusal = await self._add_windows(reservation, targets)
        except StateError as exc:
            refusal = Refusal(scopes[0], "state_unavailable", 0, 0, 1, STATE_RETRY_S, str(exc))
        if refusal is None:
            return reservation
        await self.release(reservation)
        for view, amount in debits:
            view.remaining += amount
        return refusal

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct the token counters from the reservation to ``actual_tokens`` (what the vendor
        billed; 0 for an attempt that failed before any work). Once per reservation."""
        if actual_tokens < 0:
            raise ValueError("actual_tokens: must be >= 0")
        if reservation.reconciled:
            raise ValueError(f"reservation for {', '.join(reservation.scopes)} already reconciled")
        reservation.reconciled = True
        delta = actual_tokens - reservation.tokens
        if delta and reservation.token_keys:
            now = self.clock.wall()
            await asyncio.gather(
                *(self.state.adjust(key, delta, now) for key in reservation.token_keys)
            )

    async def release(self, reservation: Reservation) -> None:
        """Give the concurrency slots back. Idempotent."""
        if reservation.lease_keys and not reservation.released:
            reservation.released = True
            await asyncio.gather(
                *(
                    self.state.release_lease(key, reservation.holder)
                    for key in reservation.lease_keys
                )
            )

    async def finish(self, reservation: Reservation, actual_tokens: int) -> None:
        """``reconcile`` then ``release``: the one call after an attempt, success or not."""
        try:
            await self.reconcile(reservation, actual_tokens)
        finally:
            await self.release(reservation)

    async def renew(self, reservation: Reservation) -> bool:
        """Extend the concurrency leases by ``lease_ttl`` (long streams); ``False`` if one had
        already expired (or there are none)."""
        if not reservation.lease_keys or reservation.released:
            return False
        now = self.clock.wall()
        renewed = await asyncio.gather(
            *(
                self.state.renew_lease(key, reservation.holder, now, now + self.lease_ttl)
                for key in reservation.lease_keys
            )
        )
        return all(renewed)

    async def usage(self, scope: str, limits: Limits) -> dict[str, int]:
        """Current use of each configured window limit, e.g. ``{"tpm": 1200, "rpm": 3}``."""
        now = self.clock.wall()
        names = [name for name in WINDOWS if getattr(limits, name) is not None]
        keys = [window_key(scope, name, now)[0] for name in names]
        return dict(zip(names, await self.state.get(keys, now), strict=True))

    def observe_headers(self, scope: str, headers: Mapping[str, str]) -> None:
        """Record the vendor's remaining requests/tokens and their reset times."""
        lowered = {name.lower(): value for name, value in headers.items()}
        now, wall = self.clock.now(), self.clock.wall()
        for kind in ("requests", "tokens"):
            seen = _openai_view(lowered, kind) or _anthropic_view(lowered, kind, wall)
            if seen is not None:
                remaining, reset_in = seen
                self._vendor[(scope, kind)] = _VendorWindow(remaining, now + max(0.0, reset_in))

    def headroom(self, scope: str) -> list[tuple[str, int, float]]:
        """What the vendor's headers last said is left: (``requests`` | ``tokens``, remaining,
        seconds until it resets); a window past its reset is not reported."""
        now = self.clock.now()
        return [
            (kind, window.remaining, window.resets_at - now)
            for (seen, kind), window in self._vendor.items()
            if seen == scope and window.resets_at > now
        ]

    # -- internals ----------------------------------------------------------------------------

    async def _acquire_slots(
        self, reservation: Reservation, targets: Sequence[tuple[str, Limits]]
    ) -> Refusal | None:
        for scope, limits in targets:
            if limits.max_concurrency is None:
                continue
            key, now = f"conc:{scope}", self.clock.wall()
            result = await self.state.acquire_lease(
                key, reservation.holder, limits.max_concurrency, now, now + self.lease_ttl
            )
            if not result.acquired:
                ends = now + self.lease_ttl if result.next_expiry is None else result.next_expiry
                held, limit = result.held, limits.max_concurrency
                return Refusal(scope, "max_concurrency", held, limit, 1, ends - now)
            reservation.lease_keys += (key,)
        return None

    async def _add_windows(
        self, reservation: Reservation, targets: Sequence[tuple[str, Limits]]
    ) -> Refusal | None:
        now = self.clock.wall()
        adds: list[CounterAdd] = []
        names: list[tuple[str, WindowName]] = []
        for scope, limits in targets:
            for name, (_, per_token) in WINDOWS.items():
                limit = getattr(limits, name)
                if limit is None:
                    continue
                amount = reservation.tokens if per_token else 1
                if amount > limit:
                    return Refusal(scope, name, 0, limit, amount, math.inf)
                key, ends = window_key(scope, name, now)
                adds.append(CounterAdd(key, amount, limit, ends))
                names.append((scope, name))
        if not adds:
            return None
        result = await self.state.add_within(adds, now)
        if result.ok:
            reservation.token_keys = tuple(
                add.key for add, (_, name) in zip(adds, names, strict=True) if WINDOWS[name][1]
            )
            return None
        refusals: list[Refusal] = []
        for add, (scope, name), used in zip(adds, names, result.values, strict=True):
            limit, ends = add.limit or 0, add.expires_at or now
            if used + add.amount > limit:
                refusals.append(Refusal(scope, name, used, limit, add.amount, ends - now))
        return max(refusals, key=lambda refusal: refusal.frees_in)

    def _debit_vendor_views(
        self, scopes: Sequence[str], tokens: int, debits: _Debits
    ) -> Refusal | None:
        """Check and debit what the vendors said remains; ``debits`` records what to give back
        if the reservation is refused further on."""
        now = self.clock.now()
        for scope in scopes:
            for kind, need in (("requests", 1), ("tokens", tokens)):
                view = self._vendor.get((scope, kind))
                if view is not None and view.resets_at <= now:
                    del self._vendor[(scope, kind)]
                elif view is not None and view.remaining < need:
                    which: LimitName = "vendor_requests" if kind == "requests" else "vendor_tokens"
                    frees_in = view.resets_at - now
                    return Refusal(scope, which, view.remaining, view.remaining, need, frees_in)
                elif view is not None:
                    view.remaining -= need
                    debits.append((view, need))
        return None


def window_key(scope: str, name: WindowName, now: float) -> tuple[str, float]:
    """The counter key of window ``name`` containing wall time ``now``, and when it ends."""
    length = WINDOWS[name][0]
    start = math.floor(now / length) * length
    return f"rl:{scope}:{name}:{start}", float(start + length)


# -- vendor headers ---------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """OpenAI's reset durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else max(0, int(text.strip()))
    except ValueError:
        return None


def _openai_view(headers: Mapping[str, str], kind: str) -> tuple[int, float] | None:
    remaining = _int(headers.get(f"x-ratelimit-remaining-{kind}"))
    reset = headers.get(f"x-ratelimit-reset-{kind}")
    reset_in = None if reset is None else parse_duration(reset)
    if remaining is None or reset_in is None:
        return None
    return remaining, min(reset_in, MAX_VENDOR_DELAY_S)  # a reset in 1e9 s must not shut us out


def _anthropic_view(headers: Mapping[str, str], kind: str, wall: float) -> tuple[int, float] | None:
    """Anthropic reports requests, tokens, input-tokens and output-tokens; for tokens the most
    restrictive one wins (our reservation is compared with it whole: conservative)."""
    names = ("requests",) if kind == "requests" else ("tokens", "input-tokens", "output-tokens")
    seen: list[tuple[int, float]] = []
    for name in names:
        remaining = _int(headers.get(f"anthropic-ratelimit-{name}-remaining"))
        reset = headers.get(f"anthropic-ratelimit-{name}-reset")
        try:
            reset_at = None if reset is None else datetime.fromisoformat(reset.strip())
        except ValueError:
            reset_at = None
        if remaining is not None and reset_at is not None and reset_at.tzinfo is not None:
            seen.append((remaining, min(reset_at.timestamp() - wall, MAX_VENDOR_DELAY_S)))
    return min(seen, default=None)
