"""A budget's period key and end, against datetime arithmetic done independently."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from llmdispatcher.budgets import Budget, period_key, scope_period_key


def _expected(period: str, wall: float) -> tuple[str, float]:
    moment = datetime.fromtimestamp(wall, UTC)
    if period == "day":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return f"{start:%Y-%m-%d}", start.timestamp() + 86_400
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return f"{moment:%Y-%m}", datetime(year, month, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("period", ["day", "month"])
def test_the_key_and_end_match_the_calendar_at_random_moments_and_at_edges(period: str) -> None:
    rng = random.Random(7)
    edges = [
        datetime(2026, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC).timestamp(),  # year's last ms
        datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
        datetime(2028, 2, 29, 12, tzinfo=UTC).timestamp(),  # a leap day
        datetime(2028, 3, 1, tzinfo=UTC).timestamp() - 0.001,
        0.0,
    ]
    for wall in edges + [rng.uniform(0, 4_102_444_800) for _ in range(2_000)]:
        label, ends = _expected(period, wall)
        key, found_ends = period_key(Budget("team:a", 5, period), wall)  # type: ignore[arg-type]
        assert (key, found_ends) == (f"budget:team:a:{period}:{label}", ends), wall
        assert wall < found_ends


def test_a_total_budget_never_ends_and_scopes_stay_apart() -> None:
    assert scope_period_key("key:k1", "total", 1e9) == ("budget:key:k1:total", None)
    assert scope_period_key("key:k2", "day", 0.0) == ("budget:key:k2:day:1970-01-01", 86_400.0)
