"""A total deadline shared by every attempt, backoff and fallback of one request."""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock


@dataclass(slots=True)
class Deadline:
    clock: Clock
    expires_at: float
    total_s: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        return cls(clock, clock.now() + seconds, seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock.now())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0
