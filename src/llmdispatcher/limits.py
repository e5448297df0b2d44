"""Rate limits as values: what a vendor or deployment allows (``rpm=600, tpm=200_000``).

Enforcement (windows, reservations, the shared state) lives in ``resilience/rate_limit.py``;
this module only describes, so vendors can carry their limits without importing any of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LIMIT_NAMES = ("rpm", "tpm", "rpd", "tpd", "max_concurrency")
# The longest wait a vendor may impose (``Retry-After``, ``retry-after-ms``, Gemini's
# ``retryDelay``, rate-limit resets): one hour. A vendor (or a proxy) saying ``inf`` or ``1e9``
# must not hold a breaker open or a limit shut until restart.
MAX_VENDOR_DELAY_S = 3600.0


def bounded_delay(seconds: float) -> float | None:
    """A wait a vendor asked for, made safe to obey: NaN ignored (None), below zero 0, above
    ``MAX_VENDOR_DELAY_S`` (infinity included) that maximum."""
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_VENDOR_DELAY_S)


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one vendor or deployment; ``None`` means unlimited. ``rpm``/``rpd`` count
    requests per minute/day, ``tpm``/``tpd`` tokens (prompt + completion), and
    ``max_concurrency`` requests in flight at once."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ValueError(f"{name}: must be a positive integer or None, got {value!r}")

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in LIMIT_NAMES)
