"""Backoff arithmetic (the formula in RetryPolicy's docstring)."""

import random

import pytest

from llmdispatcher import RetryPolicy


def test_exponential_ceiling_doubles_and_caps() -> None:
    policy = RetryPolicy(backoff="exponential", base_delay=0.5, max_delay=3.0, jitter=False)
    assert [policy.delay(n, None, random.Random(0)) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_linear_and_fixed() -> None:
    linear = RetryPolicy(backoff="linear", base_delay=1.0, max_delay=10.0, jitter=False)
    fixed = RetryPolicy(backoff="fixed", base_delay=1.5, max_delay=10.0, jitter=False)
    assert [linear.delay(n, None, random.Random(0)) for n in range(3)] == [1.0, 2.0, 3.0]
    assert [fixed.delay(n, None, random.Random(0)) for n in range(3)] == [1.5, 1.5, 1.5]


def test_full_jitter_stays_within_the_ceiling_and_varies() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0)
    rng = random.Random(42)
    delays = [policy.delay(3, None, rng) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 150
    assert max(delays) > 6.0


def test_server_hint_wins_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert policy.delay(0, 2.5, random.Random(0)) == 2.5
    assert policy.delay(0, 60.0, random.Random(0)) == 5.0


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert RetryPolicy(jitter=False, max_delay=30.0).delay(10_000, None, random.Random()) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"backoff": "fibonacci"}, "backoff"),
        ({"base_delay": 10.0, "max_delay": 1.0}, "base_delay"),
    ],
)
def test_bad_policies_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)
