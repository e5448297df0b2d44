"""How the dashboard writes numbers and times (Jinja filters): units always shown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DASH = "\u2013"  # an en dash: "no value"


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds (under 10 s) or seconds."""
    if seconds is None:
        return DASH
    if seconds < 10:
        return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:,.1f} s"


def usd(value: Decimal | float | str | None) -> str:
    if value is None:
        return DASH
    amount = Decimal(str(value))
    return f"${amount:,.4f}" if amount < 1 else f"${amount:,.2f}"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.1%}"


def count(value: int | float | None) -> str:
    return DASH if value is None else f"{value:,}"


def when(ts: float | None) -> str:
    """Epoch seconds as UTC, to the second."""
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


FILTERS: dict[str, Any] = {
    "ms": ms, "usd": usd, "pct": pct, "count": count, "when": when, "duration": duration,
}  # fmt: skip
