"""A shared backend that may go away: ``state_failure: open`` serves on, ``closed`` refuses.

``FailoverState`` wraps the backend ``open_state`` builds for ``redis://`` and ``sqlite:///``.
While the backend answers, every call goes to it. The first call that fails (a ``StateError``:
refused, reset, timed out) starts an *outage*, logged once as a warning; from then on no request
touches the backend:

* ``open``: calls go to a ``MemoryState`` of this process, fresh at the start of the outage, so
  each replica enforces the full limits and budgets by itself (N replicas may admit up to N
  times a limit while it lasts);
* ``closed``: checks raise ``StateError`` at once (the limiter turns it into a refusal that
  sends the request to its next candidate; the gateway answers 503 when none is left).

Settlements (``adjust``, ``release_lease``) never raise: one for a counter or lease taken during
the outage goes to the local store; one for the backend's own records is queued (bounded) and
replayed when it returns, so a concurrency slot is not held until its lease expires.

**Recovery without a restart.** While down, a call due for a probe starts one in the background
(a read of one key) and carries on without waiting; the probes back off from ``probe_after_s``,
doubling up to ``probe_max_s``. The first probe that succeeds replays the queue, ends the outage
and logs once. For ``settle_grace_s`` afterwards, settlements of records taken during the outage
still go to its local store, so a request in flight at recovery never corrects the backend's
counters for a reservation they never held (the backend may over-count briefly: the safe way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..clock import Clock, SystemClock
from ..errors import StateBusy, StateError
from .base import AddResult, BackendBase, CounterAdd, LeaseResult, StateBackend, StatePolicy
from .memory import MemoryState

T = TypeVar("T")
logger = logging.getLogger("llmdispatcher.state")

MAX_QUEUED = 10_000  # settlements kept for replay; beyond, the oldest are dropped (counted)
_PROBE_KEY = "probe"


@dataclass(frozen=True, slots=True)
class _Adjust:
    key: str
    delta: int
    now: float


@dataclass(frozen=True, slots=True)
class _Release:
    key: str
    holder: str


@dataclass(slots=True)
class Outage:
    """One outage: when it began (``Clock.now()``), why, and what was done meanwhile."""

    since: float
    cause: str
    backoff_s: float
    next_probe_at: float
    local: MemoryState = field(default_factory=MemoryState)
    served_locally: int = 0
    refused: int = 0


class FailoverState(BackendBase):
    def __init__(
        self,
        primary: StateBackend,
        policy: StatePolicy,
        *,
        clock: Clock | None = None,
        probe_after_s: float = 0.25,
        probe_max_s: float = 2.0,
        settle_grace_s: float = 120.0,
    ) -> None:
        self.url = primary.url
        self.primary = primary
        self.policy = policy
        self.outages = 0  # outages begun so far
        self.lost_settlements = 0  # queued settlements dropped because the queue was full
        self.outage: Outage | None = None
        self._clock: Clock = clock or SystemClock()
        self._probe_after_s = probe_after_s
        self._probe_max_s = probe_max_s
        self._settle_grace_s = settle_grace_s
        self._recent: tuple[MemoryState, float] | None = None  # last outage's store, until
        self._queued: deque[_Adjust | _Release] = deque()
        self._probe: asyncio.Task[None] | None = None

    # --- checks: the backend, or the policy while it is down -----------------------------------
    async def add_within(self, adds: Sequence[CounterAdd], now: float) -> AddResult:
        return await self._check(lambda store: store.add_within(adds, now))

    async def get(self, keys: Sequence[str], now: float) -> tuple[int, ...]:
        return await self._check(lambda store: store.get(keys, now))

    async def acquire_lease(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> LeaseResult:
        return await self._check(
            lambda store: store.acquire_lease(key, holder, limit, now, expires_at)
        )

    async def renew_lease(self, key: str, holder: str, now: float, expires_at: float) -> bool:
        return await self._check(lambda store: store.renew_lease(key, holder, now, expires_at))

    # --- settlements: never raise ---------------------------------------------------------------
    async def adjust(self, key: str, delta: int, now: float) -> int | None:
        local = self._local_store()
        if local is not None and local.holds(key, now):
            return await local.adjust(key, delta, now)
        return await self._settle(_Adjust(key, delta, now))

    async def release_lease(self, key: str, holder: str) -> bool:
        local = self._local_store()
        if local is not None and await local.release_lease(key, holder):
            return True
        return bool(await self._settle(_Release(key, holder)))

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.primary.close()

    # --- internals ------------------------------------------------------------------------------
    async def _check(self, call: Callable[[StateBackend], Awaitable[T]]) -> T:
        outage = self.outage
        if outage is None:
            try:
                return await call(self.primary)
            except StateBusy:
                raise  # a healthy backend, busy: refuse this call, start no outage
            except StateError as exc:
                outage = self._begin(exc)
        self._probe_if_due(outage)
        if self.policy.failure == "closed":
            outage.refused += 1
            raise StateError(self._refusal(outage))
        outage.served_locally += 1
        return await call(outage.local)

    async def _settle(self, item: _Adjust | _Release) -> int | bool | None:
        if self.outage is None:
            try:
                return await self._apply(item)
            except StateBusy:
                # Dropped: the counter over-counts until its window ends (the safe way), a
                # lease is held until it expires. Counted, like a full queue's losses.
                self.lost_settlements += 1
                return None
            except StateError as exc:
                self._probe_if_due(self._begin(exc))
        if len(self._queued) == MAX_QUEUED:
            self._queued.popleft()
            self.lost_settlements += 1
        self._queued.append(item)
        return None

    async def _apply(self, item: _Adjust | _Release) -> int | bool | None:
        if isinstance(item, _Adjust):
            return await self.primary.adjust(item.key, item.delta, item.now)
        return await self.primary.release_lease(item.key, item.holder)

    def _local_store(self) -> MemoryState | None:
        """Where settlements of records taken during an outage go: the outage's store, or the
        last one's for ``settle_grace_s`` after it ended."""
        if self.outage is not None:
            return self.outage.local
        if self._recent is not None and self._clock.now() < self._recent[1]:
            return self._recent[0]
        self._recent = None
        return None

    def _begin(self, exc: StateError) -> Outage:
        if self.outage is not None:  # calls in flight when it went down fail one by one
            return self.outage
        now = self._clock.now()
        self.outages += 1
        self.outage = Outage(now, str(exc), self._probe_after_s, now + self._probe_after_s)
        then = (
            "serving with limits and budgets local to this process (state_failure: open)"
            if self.policy.failure == "open"
            else "refusing requests under a limit or budget (state_failure: closed)"
        )
        logger.warning("state backend unavailable: %s; %s until it returns", exc, then)
        return self.outage

    def _refusal(self, outage: Outage) -> str:
        down_s = self._clock.now() - outage.since
        return (
            f"the shared state backend {self.url} has been unreachable for {down_s:.1f}s and "
            "state_failure is closed: requests under a rate limit or budget are refused until "
            f"it returns (next check in {self.retry_in():.1f}s)"
        )

    def retry_in(self) -> float:
        """Seconds until the next probe of a backend that is down (0 when it is up)."""
        if self.outage is None:
            return 0.0
        return max(0.0, self.outage.next_probe_at - self._clock.now())

    def _probe_if_due(self, outage: Outage) -> None:
        probing = self._probe is not None and not self._probe.done()
        if not probing and self._clock.now() >= outage.next_probe_at:
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_once(outage), name="llmdispatcher-state-probe"
            )

    async def _probe_once(self, outage: Outage) -> None:
        try:
            await self.primary.get([_PROBE_KEY], self._clock.wall())
            while self._queued:
                await self._apply(self._queued[0])
                self._queued.popleft()
        except StateError:
            outage.backoff_s = min(outage.backoff_s * 2, self._probe_max_s)
            outage.next_probe_at = self._clock.now() + outage.backoff_s
            return
        now = self._clock.now()
        self.outage = None
        self._recent = (outage.local, now + self._settle_grace_s)
        logger.warning(
            "state backend %s is back after %.1fs (%d checks served locally, %d refused); "
            "limits and budgets are shared again",
            self.url,
            now - outage.since,
            outage.served_locally,
            outage.refused,
        )
