"""Resilience settings: how retries wait, how much of the traffic retries may be, when a
circuit breaker opens. Plain values; ``resilience/`` does the work."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Backoff = Literal["exponential", "linear", "fixed"]
BACKOFFS: tuple[str, ...] = ("exponential", "linear", "fixed")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times one vendor is retried, and the wait before each retry.

    For retry number ``n`` (0 for the first retry) the ceiling is::

        exponential: min(max_delay, base_delay * 2**n)
        linear:      min(max_delay, base_delay * (n + 1))
        fixed:       min(max_delay, base_delay)

    With ``jitter`` the wait is drawn uniformly from ``[0, ceiling]`` ("full jitter", which
    spreads synchronized clients best); without it the wait is the ceiling. A server hint
    (``retry-after-ms``, ``Retry-After``, Gemini's ``retryDelay``) replaces the computed wait,
    capped by ``max_delay``. ``max_retries`` counts retries, so a vendor gets at most
    ``max_retries + 1`` attempts before the dispatcher falls back to the next one.
    """

    max_retries: int = 3
    backoff: Backoff = "exponential"
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError("retry_policy.max_retries: must be an integer >= 0")
        if self.backoff not in BACKOFFS:
            raise ValueError(
                f"retry_policy.backoff: {self.backoff!r} is not one of {', '.join(BACKOFFS)}"
            )
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("retry_policy.base_delay: must be >= 0 and <= max_delay")

    def ceiling(self, retry_number: int) -> float:
        if self.backoff == "exponential":
            raw = self.base_delay * 2.0 ** min(retry_number, 62)
        elif self.backoff == "linear":
            raw = self.base_delay * (retry_number + 1)
        else:
            raw = self.base_delay
        return min(self.max_delay, raw)

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before retry ``retry_number``, honouring a server hint when there is one."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay)
        ceiling = self.ceiling(retry_number)
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Retries per vendor over ``window_s``: at most ``ratio`` of its requests plus
    ``min_per_second`` (see resilience/retry_budget.py)."""

    ratio: float = 0.2
    min_per_second: float = 3.0
    window_s: float = 10.0

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_per_second < 0 or self.window_s <= 0:
            raise ValueError("retry_budget: ratio and min_per_second must be >= 0, window_s > 0")


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Breaker settings (one breaker per deployment is kept by the dispatcher)."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    error_rate_threshold: float | None = None
    window_s: float = 60.0
    min_requests: int = 20
    enabled: bool = True
    # With every candidate's breaker open, one request per this many seconds goes through as
    # the half-open probe instead of every request failing until a cooldown ends.
    probe_every_s: float = 1.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("circuit_breaker.failure_threshold: must be >= 1")
        if self.cooldown_s < 0:
            raise ValueError("circuit_breaker.cooldown_s: must be >= 0")
        if self.probe_every_s < 0:
            raise ValueError("circuit_breaker.probe_every_s: must be >= 0")
        if self.error_rate_threshold is not None and not 0 < self.error_rate_threshold <= 1:
            raise ValueError("circuit_breaker.error_rate_threshold: must be in (0, 1]")
