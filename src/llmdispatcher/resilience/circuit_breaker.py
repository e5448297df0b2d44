"""Circuit breaking per deployment: stop sending to what is failing, probe it, come back.

::

    closed ──(failure_threshold consecutive vendor faults, or the error rate over the
    │         last window_s above error_rate_threshold with min_requests seen)──▶ open
    open ──(cooldown_s passed, or the vendor's Retry-After if longer)──▶ half-open
    half-open: one probe request goes through; success ──▶ closed, failure ──▶ open again

Only vendor faults count (5xx, timeouts, connection failures): a caller's bad request says
nothing about the vendor's health, and a 429 is the vendor asking us to slow down, not a
fault — it ``pause``s the deployment for its Retry-After instead, without opening anything.
When every candidate of a request has its breaker open, ``admit(early_probe=True)`` lets that
request through as the half-open probe rather than failing it: at most one such early probe
per ``probe_every_s``, and never while a Retry-After the vendor sent with its failure runs.

Replicas (``routing.shared_health``): ``on_open`` is told of every breaker this board opens, so
it can be published; ``open_remotely`` applies one another replica opened. A breaker opened
remotely is open for the same remaining cooldown, then probed by this replica on its own
schedule; publishing nothing back, so the replicas never echo each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..clock import Clock
from ..settings.resilience import CircuitBreaker
from .window import WindowCounter

BreakerState = Literal["closed", "open", "half_open"]
# (deployment id, seconds it stays open, why): what a board tells of a breaker it opened
OpenListener = Callable[[str, float, str], None]
MAX_BREAKERS = 4096  # past this many, idle breakers are forgotten (see BreakerBoard._forget_idle)


@dataclass(slots=True)
class _Breaker:
    state: BreakerState = "closed"
    consecutive: int = 0
    open_until: float = 0.0
    reason: str = ""
    probing: bool = False
    paused_until: float = 0.0  # a vendor's 429 Retry-After: new requests wait until then
    hinted_until: float = 0.0  # the Retry-After sent with the failure that opened it
    probed_at: float = float("-inf")  # when the last early probe went through
    # Outcomes over the error-rate window (only kept when an error-rate threshold is set).
    seen: WindowCounter | None = None
    failed: WindowCounter | None = None


class BreakerBoard:
    """Every deployment's breaker, on the injected clock."""

    def __init__(self, settings: CircuitBreaker, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self.on_open: OpenListener | None = None

    def _get(self, key: str) -> _Breaker:
        found = self._breakers.get(key)
        if found is None:
            if len(self._breakers) >= MAX_BREAKERS:
                self._forget_idle()
            found = self._breakers[key] = _Breaker()
        return found

    def _forget_idle(self) -> None:
        """Keys can come from clients (a model name per deployment id): drop the breakers that
        hold nothing a new one would not (closed, no faults counted, no pause, no window)."""
        now = self._clock.now()
        idle = [
            key
            for key, b in self._breakers.items()
            if b.state == "closed" and not b.consecutive and b.seen is None
            and b.paused_until <= now
        ]  # fmt: skip
        for key in idle:
            del self._breakers[key]

    def keys(self) -> list[str]:
        return list(self._breakers)

    def state(self, key: str) -> BreakerState:
        breaker = self._breakers.get(key)
        return "closed" if breaker is None else self._state(breaker)

    def _state(self, breaker: _Breaker) -> BreakerState:
        if breaker.state == "open" and self._clock.now() >= breaker.open_until:
            return "half_open"
        return breaker.state

    def blocked(self, key: str) -> str | None:
        """Why ``key`` may not take a request now, or None when it may (peek, no change)."""
        if not self.settings.enabled:
            return None
        breaker = self._breakers.get(key)
        # Asked for every candidate of every request: a closed breaker answers at once.
        if breaker is None or breaker.state == "closed":
            return None
        state = self._state(breaker)
        if state == "open":
            wait = breaker.open_until - self._clock.now()
            return f"circuit breaker open for {wait:.1f}s more ({breaker.reason})"
        return (
            "circuit breaker half-open: its probe request is in flight" if breaker.probing else None
        )

    def admit(self, key: str, *, early_probe: bool = False) -> bool:
        """Take the slot: in half-open state exactly one caller becomes the probe. With
        ``early_probe`` an open breaker whose probe is not in flight is probed before its
        cooldown ends."""
        breaker = self._breakers.get(key)
        if early_probe and breaker is not None and self._may_probe_early(breaker):
            breaker.state, breaker.probing = "half_open", True
            breaker.probed_at = self._clock.now()
            return True
        if self.blocked(key) is not None:
            return False
        if breaker is not None and self._state(breaker) == "half_open":
            breaker.state, breaker.probing = "half_open", True
        return True

    def _may_probe_early(self, breaker: _Breaker) -> bool:
        now = self._clock.now()
        return (
            breaker.state == "open"
            and not breaker.probing
            and now >= breaker.hinted_until
            and now - breaker.probed_at >= self.settings.probe_every_s
        )

    def pause(self, key: str, seconds: float) -> None:
        """The vendor asked (429 Retry-After) that ``key`` take nothing for ``seconds``."""
        breaker = self._get(key)
        breaker.paused_until = max(breaker.paused_until, self._clock.now() + seconds)

    def paused_for(self, key: str) -> float:
        """Seconds left of the pause a vendor asked for (0 when none)."""
        breaker = self._breakers.get(key)
        if breaker is None or not breaker.paused_until:
            return 0.0
        return max(0.0, breaker.paused_until - self._clock.now())

    def record_success(self, key: str) -> None:
        breaker = self._get(key)
        breaker.consecutive = 0
        breaker.probing = False
        breaker.state = "closed"
        self._remember(breaker, True)

    def record_failure(self, key: str, reason: str, retry_after: float | None = None) -> None:
        if not self.settings.enabled:
            return
        breaker = self._get(key)
        breaker.consecutive += 1
        self._remember(breaker, False)
        was_probe = breaker.probing or self._state(breaker) == "half_open"
        if (
            was_probe
            or breaker.consecutive >= self.settings.failure_threshold
            or self._rate_tripped(breaker)
        ):
            now = self._clock.now()
            breaker.state, breaker.probing = "open", False
            breaker.open_until = now + max(self.settings.cooldown_s, retry_after or 0.0)
            breaker.hinted_until = now + (retry_after or 0.0)
            breaker.reason = reason if not was_probe else f"probe failed: {reason}"
            if self.on_open is not None:
                self.on_open(key, breaker.open_until - now, breaker.reason)

    def open_remotely(self, key: str, open_for_s: float, reason: str) -> None:
        """Another replica opened its breaker for ``key``: open this one until the same time,
        unless it is open longer already or this replica's own probe is in flight (its verdict
        decides). Not told to ``on_open``."""
        if not self.settings.enabled:
            return
        breaker = self._get(key)
        until = self._clock.now() + open_for_s
        if breaker.probing or (breaker.state == "open" and breaker.open_until >= until):
            return
        breaker.state, breaker.open_until, breaker.reason = "open", until, reason
        breaker.consecutive = 0

    def release_probe(self, key: str) -> None:
        """A probe that ended without a verdict (cancelled, caller's error) frees the slot."""
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.probing = False

    def _remember(self, breaker: _Breaker, ok: bool) -> None:
        if self.settings.error_rate_threshold is None:
            return
        if breaker.seen is None or breaker.failed is None:
            breaker.seen = WindowCounter(self.settings.window_s, self._clock)
            breaker.failed = WindowCounter(self.settings.window_s, self._clock)
        breaker.seen.add()
        if not ok:
            breaker.failed.add()

    def _rate_tripped(self, breaker: _Breaker) -> bool:
        threshold = self.settings.error_rate_threshold
        if threshold is None or breaker.seen is None or breaker.failed is None:
            return False
        seen = breaker.seen.count()
        if seen < self.settings.min_requests:
            return False
        return breaker.failed.count() / seen > threshold

    def open_until(self, key: str) -> float | None:
        breaker = self._breakers.get(key)
        return breaker.open_until if breaker is not None and breaker.state == "open" else None
