"""Spend budgets per user, API key, model group or globally, per UTC day, month or in total.

A request is checked against every budget that applies to it before it is sent: its worst-case
cost (estimated prompt + ``max_tokens`` at the model's prices) is added to each budget's spend
for the current period in one atomic check-and-add, or, if any budget would go over, to none and
``BudgetExceeded`` is raised. After the response, ``reconcile`` replaces the worst case with the
actual cost. Spend lives in the state backend, so the budgets hold across replicas; with atomic
reservations the combined spend stays within the limit exactly, unless a real cost exceeds its
worst-case estimate (a prompt estimated too low), by that excess.

Money is integer micro-dollars in the state backend, ``Decimal`` at the API, never ``float``.
Costs are rounded up to the micro-dollar and limits down, so rounding never admits too much.

Usage::

    budgets = [Budget("user:alice", 5, "day"), Budget("global", 500, "month")]
    tracker = BudgetTracker(state, clock, budgets)
    reservation = await tracker.reserve(["user:alice", "key:k1", "group:gpt"], worst_case)
    ...
    await tracker.reconcile(reservation, actual_cost)   # Decimal("0") if nothing was billed
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Literal

from .clock import Clock, SystemClock
from .errors import BudgetExceeded
from .state.base import CounterAdd, StateBackend

Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "month", "total")
SCOPE_KINDS = ("user", "key", "group", "team")
_MICRO = Decimal("0.000001")


@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A spend limit in US dollars for one scope and period.

    ``scope`` is ``"user:<id>"``, ``"key:<id>"`` (a gateway API key), ``"group:<name>"`` (a model
    group), ``"team:<name>"`` (the team of a stored gateway key) or ``"global"``; ``period`` is
    ``"day"`` or ``"month"`` (UTC calendar) or ``"total"``.
    ``limit_usd`` accepts ``Decimal``, ``int``, ``str`` or ``float`` (read through ``str``, so
    ``5.1`` is exactly 5.1) and is kept as a ``Decimal``.
    """

    scope: str
    limit_usd: Decimal
    period: Period

    def __init__(self, scope: str, limit_usd: Decimal | int | float | str, period: Period) -> None:
        object.__setattr__(self, "scope", _check_scope(scope))
        object.__setattr__(self, "limit_usd", _check_limit(limit_usd))
        if period not in PERIODS:
            raise ValueError(f"budget.period: {period!r} is not one of {', '.join(PERIODS)}")
        object.__setattr__(self, "period", period)

    @property
    def limit_micros(self) -> int:
        return to_micros(self.limit_usd, ROUND_FLOOR)

    def applies_to(self, scopes: Sequence[str]) -> bool:
        return self.scope == "global" or self.scope in scopes

    def __str__(self) -> str:
        per = "in total" if self.period == "total" else f"per {self.period}"
        return f"{self.scope} ({usd(self.limit_usd)} {per})"


@dataclass(eq=False, slots=True)
class BudgetReservation:
    """What ``reserve`` took: micro-dollars per budget counter."""

    micros: int
    keys: tuple[str, ...] = ()
    budgets: tuple[Budget, ...] = ()
    reconciled: bool = field(default=False)


class BudgetTracker:
    """Checks and records spend against ``budgets`` in a ``StateBackend``."""

    def __init__(
        self, state: StateBackend, clock: Clock | None = None, budgets: Sequence[Budget] = ()
    ) -> None:
        self.state = state
        self.clock: Clock = clock or SystemClock()
        self.budgets = tuple(budgets)

    def applicable(self, scopes: Sequence[str]) -> tuple[Budget, ...]:
        """The budgets a request with these scopes is counted against (``global`` always)."""
        return tuple(budget for budget in self.budgets if budget.applies_to(scopes))

    async def reserve(
        self, scopes: Sequence[str], worst_case_usd: Decimal, extra: Sequence[Budget] = ()
    ) -> BudgetReservation:
        """Add ``worst_case_usd`` to every applicable budget (and every one of ``extra``: budgets
        known only at run time, such as a stored gateway key's), or raise ``BudgetExceeded``."""
        micros = to_micros(_check_amount(worst_case_usd, "worst_case_usd"), ROUND_CEILING)
        budgets = self.applicable(scopes) + tuple(extra)
        if not budgets:
            return BudgetReservation(micros)
        wall = self.clock.wall()
        adds = [
            CounterAdd(key, micros, budget.limit_micros, ends)
            for budget in budgets
            for key, ends in [period_key(budget, wall)]
        ]
        result = await self.state.add_within(adds, wall)
        if not result.ok:
            raise self._exceeded(budgets, adds, result.values, wall, micros)
        return BudgetReservation(micros, tuple(add.key for add in adds), budgets)

    async def reconcile(self, reservation: BudgetReservation, actual_usd: Decimal) -> None:
        """Replace the worst case with the actual cost. Once per reservation."""
        micros = to_micros(_check_amount(actual_usd, "actual_usd"), ROUND_CEILING)
        if reservation.reconciled:
            raise ValueError("budget reservation is already reconciled")
        reservation.reconciled = True
        delta = micros - reservation.micros
        if delta and reservation.keys:
            wall = self.clock.wall()
            await asyncio.gather(*(self.state.adjust(key, delta, wall) for key in reservation.keys))

    async def spent(self, budget: Budget) -> Decimal:
        """Spend (reserved and reconciled) in the budget's current period."""
        wall = self.clock.wall()
        (micros,) = await self.state.get([period_key(budget, wall)[0]], wall)
        return from_micros(micros)

    async def remaining(self, budget: Budget) -> Decimal:
        return max(Decimal(0), budget.limit_usd - await self.spent(budget))

    def _exceeded(
        self,
        budgets: Sequence[Budget],
        adds: Sequence[CounterAdd],
        values: Sequence[int],
        wall: float,
        micros: int,
    ) -> BudgetExceeded:
        over = [
            (budget, spent, add.expires_at)
            for budget, add, spent in zip(budgets, adds, values, strict=True)
            if spent + micros > budget.limit_micros
        ]
        budget, spent, ends = min(over, key=lambda item: item[0].limit_micros - item[1])
        spent_usd = from_micros(spent)
        remaining = from_micros(max(0, budget.limit_micros - spent))
        requested = from_micros(micros)
        resets_in = None if ends is None else ends - wall
        resets = "" if resets_in is None else f"; resets in {_duration(resets_in)}"
        return BudgetExceeded(
            f"budget {budget} exceeded: spent {usd(spent_usd)}, remaining {usd(remaining)}, "
            f"this request may cost up to {usd(requested)}{resets}",
            budget=budget,
            spent=spent_usd,
            remaining=remaining,
            requested=requested,
            resets_in=resets_in,
        )


def period_key(budget: Budget, wall: float) -> tuple[str, float | None]:
    """The counter key of the budget's period containing ``wall``, and when it ends (UTC)."""
    return scope_period_key(budget.scope, budget.period, wall)


def scope_period_key(scope: str, period: Period, wall: float) -> tuple[str, float | None]:
    """``period_key`` for a scope and period (no ``Budget`` needed: a stored key's usage
    counters are keyed like its budgets, on every request)."""
    if period == "total":
        return f"budget:{scope}:total", None
    label, ends = _period_bounds(period, int(wall // 86_400))
    return f"budget:{scope}:{period}:{label}", ends


@functools.lru_cache(maxsize=64)
def _period_bounds(period: Period, day: int) -> tuple[str, float]:
    """The label and end of the day or month holding UTC day number ``day`` (Unix time has
    no leap seconds, so day ``n`` starts at ``n * 86400``): memoised, since every request
    with a budget or a stored key asks, and a ``datetime`` costs more than the lookup."""
    start = datetime.fromtimestamp(day * 86_400, UTC)
    if period == "day":
        return f"{start:%Y-%m-%d}", day * 86_400 + 86_400.0
    first = start.replace(day=1)
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return f"{first:%Y-%m}", following.timestamp()


def to_micros(amount: Decimal, rounding: str) -> int:
    return int((amount / _MICRO).to_integral_value(rounding=rounding))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros) * _MICRO


def usd(amount: Decimal) -> str:
    """``$4.80``; sub-cent amounts keep their digits (``$0.000125``)."""
    cents = amount.quantize(Decimal("0.01"))
    if cents == amount:
        return f"${cents:,}"
    return f"${amount.quantize(_MICRO).normalize():,f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _check_scope(scope: str) -> str:
    kind, sep, name = scope.partition(":")
    if scope == "global" or (sep and kind in SCOPE_KINDS and name.strip() == name and name):
        return scope
    raise ValueError(
        f"budget.scope: {scope!r} must be 'global' or one of user:<id>, key:<id>, group:<name>, "
        "team:<name>"
    )


def _check_limit(value: Decimal | int | float | str) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if isinstance(value, bool) or not amount.is_finite() or amount <= 0:
        raise ValueError(f"budget.limit_usd: must be a positive number of dollars, got {value!r}")
    return amount


def _check_amount(value: Decimal, name: str) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise TypeError(f"{name}: must be a Decimal (money is never a float), got {value!r}")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name}: must be a finite amount >= 0, got {value}")
    return value
