"""Hedging: when the first deployment is slow, start the second too; the first to answer wins.

The delay is the request's group's ``hedge_after_s``: a number of seconds, or ``"p90"`` for
the deployment's live 90th percentile (of time to first token for a stream, of the whole
answer for a send). The loser is cancelled at once; its try is recorded as ``cancelled``, which
is neither a success nor a failure of its vendor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import VendorError
from ..routing.health import HealthTracker
from ..settings.routing import Deployment, ModelGroup

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Hedge:
    """Start ``partner`` too if the first has not won after ``delay`` seconds."""

    partner: Deployment
    delay: float


@dataclass(frozen=True, slots=True)
class RaceLost:
    """Both racers failed: their errors, in the order they failed (each already recorded)."""

    errors: tuple[VendorError, ...]


@dataclass(frozen=True, slots=True)
class Racer(Generic[T]):
    """How to start one racer, and how to hand back one that finished but lost."""

    start: Callable[[Deployment], Coroutine[object, object, T]]
    discard: Callable[[T], Coroutine[object, object, None]]


def hedge_delay(
    group: ModelGroup | None, health: HealthTracker, deployment: Deployment, *, stream: bool
) -> float | None:
    setting = group.hedge_after_s if group is not None else None
    if setting == "p90":
        view = health.view(deployment.id)
        return view.ttft_p90_s if stream else view.latency_p90_s
    return float(setting) if setting is not None else None


async def race(
    racer: Racer[T],
    first: Deployment,
    second: Deployment,
    delay: float,
    may_start: Callable[[Deployment], bool],
    losers: set[str],
) -> T | RaceLost:
    """Start ``first``; if it has not won after ``delay``, start ``second`` too (when
    ``may_start`` says so). Without a race this is just ``first``'s try, its error raised as
    usual. ``losers`` collects the deployments cancelled because the other won."""
    first_task: asyncio.Task[T] = asyncio.create_task(racer.start(first))
    try:
        done, _ = await asyncio.wait({first_task}, timeout=delay)
    except BaseException:
        await _cancel({first_task})
        raise
    if done or not may_start(second):
        return await first_task
    racers = {first_task: first, asyncio.create_task(racer.start(second)): second}
    return await _finish(racer, racers, losers)


async def _finish(
    racer: Racer[T], racers: dict[asyncio.Task[T], Deployment], losers: set[str]
) -> T | RaceLost:
    """Both run: the first to win takes it and the other is cancelled (or, had it won in the
    same instant, discarded); a racer that fails leaves the race to the other."""
    pending: set[asyncio.Task[T]] = set(racers)
    errors: list[VendorError] = []
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=list(racers).index):
                error = task.exception()
                if error is None:
                    losers.update(racers[t].id for t in racers if t is not task)
                    await _cancel(pending)
                    pending = set()
                    for late in done - {task}:  # it won in the same instant: hang up
                        if late.exception() is None:
                            await racer.discard(late.result())
                    return task.result()
                if not isinstance(error, VendorError):
                    raise error
                errors.append(error)
    finally:
        await _cancel(pending)  # the deadline ran out (or the caller left) mid-race
    return RaceLost(tuple(errors))


async def _cancel(tasks: set[asyncio.Task[T]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
