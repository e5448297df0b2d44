"""Budgets: validation, calendar periods, refusals and reconciliation, against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from llmdispatcher.budgets import Budget, BudgetReservation, BudgetTracker, usd
from llmdispatcher.clock import FakeClock
from llmdispatcher.errors import BudgetExceeded, DispatcherError
from llmdispatcher.state import StateBackend


def clock_at(iso: str) -> FakeClock:
    return FakeClock(wall_start=datetime.fromisoformat(iso).timestamp())


def tracker(state: StateBackend, clock: FakeClock, *budgets: Budget) -> BudgetTracker:
    return BudgetTracker(state, clock, budgets)


D = Decimal

# -- the Budget value -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope", ["user:alice", "key:sk-gw-1", "group:gpt-4o", "team:web", "global"]
)
def test_scopes(scope: str) -> None:
    assert Budget(scope, 5, "day").scope == scope


@pytest.mark.parametrize("scope", ["alice", "user:", "tenant:x", "global:x", "user: alice", ""])
def test_bad_scopes(scope: str) -> None:
    with pytest.raises(ValueError, match=r"budget\.scope"):
        Budget(scope, 5, "day")


@pytest.mark.parametrize("limit", [0, -1, "nan", "inf", "five", True, float("nan")])
def test_bad_limits(limit: object) -> None:
    with pytest.raises(ValueError, match=r"budget\.limit_usd"):
        Budget("global", limit, "day")  # type: ignore[arg-type]


def test_bad_period() -> None:
    with pytest.raises(ValueError, match=r"budget\.period: 'week'"):
        Budget("global", 5, "week")  # type: ignore[arg-type]


def test_limits_are_exact_decimals() -> None:
    budget = Budget("user:alice", 5.1, "month")
    assert budget.limit_usd == D("5.1")
    assert budget.limit_micros == 5_100_000
    assert budget == Budget("user:alice", "5.10", "month")  # frozen, comparable, hashable
    assert len({budget, Budget("user:alice", D("5.1"), "month")}) == 1
    assert str(budget) == "user:alice ($5.10 per month)"


def test_money_is_formatted_without_losing_sub_cent_amounts() -> None:
    assert usd(D("4.8")) == "$4.80"
    assert usd(D("1234.5")) == "$1,234.50"
    assert usd(D("0.000125")) == "$0.000125"


# -- reserve and reconcile --------------------------------------------------------------------


async def test_a_request_over_the_remaining_budget_is_refused(state: StateBackend) -> None:
    clock = clock_at("2025-06-15T21:00:00+00:00")
    alice = Budget("user:alice", 5, "day")
    budgets = tracker(state, clock, alice)
    await budgets.reserve(["user:alice"], D("4.80"))
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.reserve(["user:alice"], D("0.35"))
    error = caught.value
    assert isinstance(error, DispatcherError)
    assert error.budget == alice
    assert (error.spent, error.remaining, error.requested) == (D("4.80"), D("0.20"), D("0.35"))
    assert error.resets_in == pytest.approx(3 * 3600)
    assert str(error) == (
        "budget user:alice ($5.00 per day) exceeded: spent $4.80, remaining $0.20, "
        "this request may cost up to $0.35; resets in 3h00m"
    )
    await budgets.reserve(["user:alice"], D("0.20"))  # exactly the remainder fits


async def test_reconcile_replaces_the_worst_case_with_the_actual_cost(
    state: StateBackend,
) -> None:
    alice = Budget("user:alice", 1, "total")
    budgets = tracker(state, FakeClock(), alice)
    reservation = await budgets.reserve(["user:alice"], D("0.90"))
    assert await budgets.remaining(alice) == D("0.10")
    await budgets.reconcile(reservation, D("0.25"))
    assert await budgets.spent(alice) == D("0.25")
    failed = await budgets.reserve(["user:alice"], D("0.75"))
    await budgets.reconcile(failed, D(0))  # the attempt failed: nothing billed
    assert await budgets.spent(alice) == D("0.25")
    with pytest.raises(ValueError, match="already reconciled"):
        await budgets.reconcile(failed, D(0))


async def test_every_applicable_budget_is_charged_or_none(state: StateBackend) -> None:
    user = Budget("user:alice", 1, "day")
    group = Budget("group:gpt", 10, "month")
    overall = Budget("global", 100, "total")
    other = Budget("user:bob", D("0.01"), "day")
    budgets = tracker(state, FakeClock(), user, group, overall, other)
    assert budgets.applicable(["user:alice", "group:gpt"]) == (user, group, overall)
    assert budgets.applicable(["key:k"]) == (overall,)  # global applies to every request
    await budgets.reserve(["user:alice", "group:gpt"], D("0.60"))
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.reserve(["user:alice", "group:gpt"], D("0.60"))
    assert caught.value.budget == user
    assert caught.value.resets_in is not None
    assert [await budgets.spent(b) for b in (user, group, overall, other)] == [D("0.6")] * 3 + [0]


async def test_the_tightest_budget_is_reported(state: StateBackend) -> None:
    day = Budget("user:alice", 1, "day")
    month = Budget("user:alice", D("1.5"), "month")
    budgets = tracker(state, FakeClock(), month, day)
    await budgets.reserve(["user:alice"], D("0.9"))
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.reserve(["user:alice"], D("0.7"))
    assert caught.value.budget == day


async def test_a_total_budget_never_resets(state: StateBackend) -> None:
    clock = FakeClock()
    overall = Budget("global", 1, "total")
    budgets = tracker(state, clock, overall)
    await budgets.reserve([], D(1))
    clock.advance(400 * 86_400)
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.reserve([], D("0.000001"))
    assert caught.value.resets_in is None
    assert "resets" not in str(caught.value)


async def test_day_budgets_reset_at_utc_midnight(state: StateBackend) -> None:
    clock = clock_at("2025-06-15T23:59:00+00:00")
    day = Budget("key:k1", 1, "day")
    budgets = tracker(state, clock, day)
    reservation = await budgets.reserve(["key:k1"], D(1))
    clock.advance(60)
    assert await budgets.spent(day) == 0
    await budgets.reserve(["key:k1"], D(1))
    await budgets.reconcile(reservation, D("0.1"))  # yesterday's spend is not today's
    assert await budgets.spent(day) == 1


async def test_month_budgets_reset_on_the_first_including_new_year(state: StateBackend) -> None:
    clock = clock_at("2025-12-31T23:30:00+00:00")
    month = Budget("group:claude", 2, "month")
    budgets = tracker(state, clock, month)
    await budgets.reserve(["group:claude"], D(2))
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.reserve(["group:claude"], D(1))
    assert caught.value.resets_in == pytest.approx(1800)
    clock.advance(1800)
    await budgets.reserve(["group:claude"], D(2))


async def test_costs_round_up_to_the_micro_dollar(state: StateBackend) -> None:
    overall = Budget("global", D("0.000003"), "day")
    budgets = tracker(state, FakeClock(), overall)
    reservation = await budgets.reserve([], D("0.0000001"))
    assert reservation.micros == 1
    assert await budgets.spent(overall) == D("0.000001")


async def test_money_is_never_a_float(state: StateBackend) -> None:
    budgets = tracker(state, FakeClock(), Budget("global", 1, "day"))
    with pytest.raises(TypeError, match="never a float"):
        await budgets.reserve([], 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        await budgets.reserve([], D(-1))
    assert (await budgets.reserve([], 1)).micros == 1_000_000  # type: ignore[arg-type]


async def test_without_budgets_no_state_is_used() -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"state.{name} was used")

    bob = Budget("user:bob", 1, "day")
    budgets = BudgetTracker(Untouchable(), FakeClock(), [bob])  # type: ignore[arg-type]
    reservation = await budgets.reserve(["user:alice"], D(100))
    assert isinstance(reservation, BudgetReservation)
    await budgets.reconcile(reservation, D(50))


async def test_concurrent_reserves_never_overspend(state: StateBackend) -> None:
    overall = Budget("global", 5, "day")
    budgets = tracker(state, FakeClock(), overall)
    outcomes = await asyncio.gather(
        *(budgets.reserve([], D("0.10")) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(o, BudgetReservation) for o in outcomes) == 50
    others = [o for o in outcomes if not isinstance(o, BudgetReservation | BudgetExceeded)]
    assert others == []
    assert await budgets.spent(overall) == 5


async def test_replicas_share_budgets(
    state_factory: Callable[[], StateBackend],
) -> None:
    clock = FakeClock()
    alice = Budget("user:alice", 1, "day")
    replicas = [tracker(state_factory(), clock, alice) for _ in range(3)]
    outcomes = await asyncio.gather(
        *(r.reserve(["user:alice"], D("0.25")) for r in replicas for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, BudgetReservation) for o in outcomes) == 4
    assert [await r.spent(alice) for r in replicas] == [D(1)] * 3
