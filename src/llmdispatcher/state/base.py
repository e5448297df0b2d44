"""The state protocol: a few atomic primitives that rate limits and budgets are built from.

Every backend (``memory://``, ``sqlite:///``, ``redis://``) implements ``StateBackend`` and passes
the same contract tests (tests/state/test_contract.py). Strategies (fixed windows, calendar
budgets, concurrency slots) live in ``resilience.rate_limit`` and ``budgets``; a backend only
stores integers and leases and knows nothing about minutes, tokens or dollars.

Two kinds of records:

**Counters** — an integer under a key, with an optional expiry (``expires_at``, epoch seconds).
A counter whose ``expires_at <= now`` is *absent*: it reads as 0, ``adjust`` leaves it alone and
the next ``add_within`` starts it afresh. Expiry is decided by the ``now`` the caller passes, never
by the backend's own clock, so every backend behaves the same under a ``FakeClock``; backends may
also drop expired records to reclaim space (Redis key TTLs, periodic sweeps), which is invisible.

**Leases** — holders of a limited number of slots under a key (concurrent requests). Each lease
has an expiry; a lease whose ``expires_at <= now`` no longer holds its slot. A replica that
crashes mid-request therefore loses its slots after the lease TTL instead of leaking them.

Times are epoch seconds (``Clock.wall()``) because they are compared across processes and
machines; monotonic clocks are per process. Amounts are integers (tokens, micro-dollars):
backends never see floats for money. Redis evaluates Lua with doubles, so amounts and limits must
stay below 2**53 (9e15 micro-dollars is $9 billion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self


@dataclass(frozen=True, slots=True)
class CounterAdd:
    """One counter in an ``add_within`` call: add ``amount`` to ``key`` if the result stays
    ``<= limit`` (``limit=None``: add without a check). ``expires_at`` is set when the counter
    is created (or re-created after expiring); ``None`` means it never expires."""

    key: str
    amount: int
    limit: int | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_within`` did. ``values`` follow the order of the adds: the new values when
    ``ok``, else the current values, unchanged (so the caller can tell which limit failed)."""

    ok: bool
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LeaseResult:
    """What ``acquire_lease`` did: whether the slot was taken, how many live leases the key
    holds now, and the earliest expiry among them (``None`` when there are none)."""

    acquired: bool
    held: int
    next_expiry: float | None


class StateBackend(Protocol):
    """Shared state for rate limits and budgets. Every method is a coroutine and atomic as
    described; concurrent calls from any number of tasks, processes or (for Redis) machines
    never observe a half-applied call."""

    url: str

    async def add_within(self, adds: Sequence[CounterAdd], now: float) -> AddResult:
        """Check-and-add, all or nothing.

        Atomically: read every counter (absent or expired counts as 0); if for every add with a
        limit ``value + amount <= limit``, add every amount and return ``ok=True`` with the new
        values; otherwise change nothing and return ``ok=False`` with the current values. Keys
        must be distinct; amounts must be ``>= 0``. Between the check and the add no other
        call can change these counters, which is what makes N replicas together stay within
        the limit exactly.
        """
        ...

    async def adjust(self, key: str, delta: int, now: float) -> int | None:
        """Add ``delta`` (may be negative) to a live counter and return its new value.

        Atomic per key. An absent or expired counter is left alone and ``None`` returned: a
        reconciliation that arrives after its window closed has nothing left to correct.
        """
        ...

    async def get(self, keys: Sequence[str], now: float) -> tuple[int, ...]:
        """Current values (absent or expired: 0), read at one instant."""
        ...

    async def acquire_lease(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> LeaseResult:
        """Take one of ``limit`` slots under ``key`` for ``holder`` until ``expires_at``.

        Atomically: drop the leases that expired at ``now``; if ``holder`` already holds a
        lease, extend it; else if fewer than ``limit`` are live, add one; else refuse.
        """
        ...

    async def renew_lease(self, key: str, holder: str, now: float, expires_at: float) -> bool:
        """Move a live lease's expiry to ``expires_at``; ``False`` if it had already expired
        or was released (the slot may have gone to someone else: it is not taken back)."""
        ...

    async def release_lease(self, key: str, holder: str) -> bool:
        """Give the slot back; ``False`` when ``holder`` held none. Idempotent."""
        ...

    async def close(self) -> None:
        """Release connections and files. The backend is unusable afterwards."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BackendBase:
    """Shared argument checks and ``async with`` support for the concrete backends."""

    url: str = ""

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def check_adds(adds: Sequence[CounterAdd]) -> None:
    """Reject what the atomicity contract does not cover: repeated keys, negative amounts."""
    keys = [add.key for add in adds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"add_within: keys must be distinct, got {keys}")
    for add in adds:
        if add.amount < 0:
            raise ValueError(f"add_within: amount for {add.key!r} must be >= 0")


def is_live(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


FailurePolicy = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class StatePolicy:
    """What a shared backend (Redis, an SQLite file) does when it cannot answer, and how long
    it may take to answer at all.

    ``failure="open"``: serve on with limits and budgets kept in this process only (each replica
    then enforces the full limits by itself) until the backend is back; ``"closed"``: refuse
    whatever needs a limit or a budget (``StateError``, a 503 at the gateway) until then.
    ``timeout_s`` bounds every command and ``connect_timeout_s`` every connection attempt, so
    no request waits on a dead or black-holed server longer than about their sum.
    """

    failure: FailurePolicy = "open"
    timeout_s: float = 1.0
    connect_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if self.failure not in ("open", "closed"):
            raise ValueError(f"state_failure: {self.failure!r} is not one of open, closed")
        for name in ("timeout_s", "connect_timeout_s"):
            if not 0 < getattr(self, name) <= 60:
                raise ValueError(f"state_{name}: must be between 0 and 60 seconds")
