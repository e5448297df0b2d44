"""The StateBackend contract, run unchanged against memory, SQLite and a real Redis server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from llmdispatcher.errors import ConfigError
from llmdispatcher.state import CounterAdd, StateBackend, open_state

NOW = 1_750_000_000.0


# -- counters ---------------------------------------------------------------------------------


async def test_add_within_adds_and_reports_new_values(state: StateBackend) -> None:
    result = await state.add_within([CounterAdd("a", 3, 10), CounterAdd("b", 5, 10)], NOW)
    assert result.ok
    assert result.values == (3, 5)
    result = await state.add_within([CounterAdd("a", 7, 10)], NOW)
    assert (result.ok, result.values) == (True, (10,))
    assert await state.get(["a", "b", "never-written"], NOW) == (10, 5, 0)


async def test_refusal_changes_nothing_and_reports_current_values(state: StateBackend) -> None:
    await state.add_within([CounterAdd("a", 8, 10), CounterAdd("b", 1, 10)], NOW)
    result = await state.add_within([CounterAdd("a", 1, 10), CounterAdd("b", 3, 3)], NOW)
    assert not result.ok
    assert result.values == (8, 1)  # b would reach 4 > 3; a is left alone too (all or nothing)
    assert await state.get(["a", "b"], NOW) == (8, 1)


async def test_limit_is_inclusive(state: StateBackend) -> None:
    assert (await state.add_within([CounterAdd("a", 10, 10)], NOW)).ok
    assert not (await state.add_within([CounterAdd("a", 1, 10)], NOW)).ok
    assert (await state.add_within([CounterAdd("a", 0, 10)], NOW)).ok


async def test_an_add_without_a_limit_always_passes(state: StateBackend) -> None:
    result = await state.add_within([CounterAdd("a", 10**6), CounterAdd("b", 1, 5)], NOW)
    assert result == type(result)(ok=True, values=(10**6, 1))


async def test_large_amounts_stay_exact(state: StateBackend) -> None:
    big = 9 * 10**15 + 1  # micro-dollars near the documented 2**53 ceiling
    assert (await state.add_within([CounterAdd("a", big, big + 1)], NOW)).values == (big,)
    assert await state.adjust("a", -big + 7, NOW) == 7
    assert await state.get(["a"], NOW) == (7,)


async def test_expired_counters_read_as_absent_and_restart(state: StateBackend) -> None:
    await state.add_within([CounterAdd("w", 9, 10, expires_at=NOW + 60)], NOW)
    assert await state.get(["w"], NOW + 59.999) == (9,)
    assert await state.get(["w"], NOW + 60) == (0,)
    assert await state.adjust("w", -5, NOW + 60) is None  # nothing left to correct
    result = await state.add_within([CounterAdd("w", 4, 10, expires_at=NOW + 120)], NOW + 60)
    assert result.values == (4,)  # a new window starts from zero, with the new expiry
    assert await state.get(["w"], NOW + 119) == (4,)
    assert await state.get(["w"], NOW + 120) == (0,)


async def test_expiry_is_set_when_a_counter_is_created(state: StateBackend) -> None:
    await state.add_within([CounterAdd("w", 1, None, expires_at=NOW + 10)], NOW)
    await state.add_within([CounterAdd("w", 1, None, expires_at=NOW + 99)], NOW + 1)
    assert await state.get(["w"], NOW + 10) == (0,)


async def test_counters_without_expiry_live_forever(state: StateBackend) -> None:
    await state.add_within([CounterAdd("total", 5, 100)], NOW)
    assert await state.get(["total"], NOW + 10 * 365 * 86_400) == (5,)


async def test_adjust_moves_a_live_counter_either_way(state: StateBackend) -> None:
    await state.add_within([CounterAdd("t", 100, 1000, expires_at=NOW + 60)], NOW)
    assert await state.adjust("t", -60, NOW + 1) == 40
    assert await state.adjust("t", 25, NOW + 2) == 65
    assert await state.get(["t"], NOW + 3) == (65,)


async def test_adjust_leaves_an_absent_counter_absent(state: StateBackend) -> None:
    assert await state.adjust("missing", 5, NOW) is None
    assert await state.get(["missing"], NOW) == (0,)


async def test_bad_adds_are_rejected(state: StateBackend) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await state.add_within([CounterAdd("a", 1), CounterAdd("a", 1)], NOW)
    with pytest.raises(ValueError, match=">= 0"):
        await state.add_within([CounterAdd("a", -1)], NOW)


# -- atomicity under concurrency --------------------------------------------------------------


async def test_200_concurrent_check_and_adds_never_pass_the_limit(state: StateBackend) -> None:
    add = [CounterAdd("hot", 1, 50, expires_at=NOW + 60)]
    results = await asyncio.gather(*(state.add_within(add, NOW) for _ in range(200)))
    assert sum(result.ok for result in results) == 50
    assert sorted(r.values[0] for r in results if r.ok) == list(range(1, 51))
    assert await state.get(["hot"], NOW) == (50,)


async def test_concurrent_multi_counter_adds_are_all_or_nothing(state: StateBackend) -> None:
    rng = random.Random(7)
    amounts = [rng.randint(1, 40) for _ in range(200)]
    calls = [
        state.add_within([CounterAdd("req", 1, 120), CounterAdd("tok", amount, 2_000)], NOW)
        for amount in amounts
    ]
    results = await asyncio.gather(*calls)
    admitted = [amount for amount, result in zip(amounts, results, strict=True) if result.ok]
    assert await state.get(["req", "tok"], NOW) == (len(admitted), sum(admitted))
    assert len(admitted) <= 120
    assert sum(admitted) <= 2_000


async def test_concurrent_adjusts_are_not_lost(state: StateBackend) -> None:
    await state.add_within([CounterAdd("t", 0, None, expires_at=NOW + 60)], NOW)
    await asyncio.gather(*(state.adjust("t", 1 if i % 2 else 3, NOW) for i in range(100)))
    assert await state.get(["t"], NOW) == (200,)


async def test_replicas_sharing_a_store_see_one_counter(
    state_factory: Callable[[], StateBackend],
) -> None:
    replicas = [state_factory() for _ in range(3)]
    add = [CounterAdd("shared", 1, 30)]
    results = await asyncio.gather(*(r.add_within(add, NOW) for r in replicas for _ in range(20)))
    assert sum(result.ok for result in results) == 30
    assert [await r.get(["shared"], NOW) for r in replicas] == [(30,)] * 3


# -- leases -----------------------------------------------------------------------------------


async def test_leases_fill_up_to_the_limit(state: StateBackend) -> None:
    first = await state.acquire_lease("c", "h1", 2, NOW, NOW + 30)
    second = await state.acquire_lease("c", "h2", 2, NOW + 1, NOW + 31)
    third = await state.acquire_lease("c", "h3", 2, NOW + 2, NOW + 32)
    assert (first.acquired, first.held, first.next_expiry) == (True, 1, NOW + 30)
    assert (second.acquired, second.held) == (True, 2)
    assert (third.acquired, third.held, third.next_expiry) == (False, 2, NOW + 30)


async def test_acquiring_again_extends_instead_of_taking_a_second_slot(
    state: StateBackend,
) -> None:
    await state.acquire_lease("c", "h1", 2, NOW, NOW + 30)
    again = await state.acquire_lease("c", "h1", 2, NOW + 1, NOW + 40)
    assert (again.acquired, again.held, again.next_expiry) == (True, 1, NOW + 40)


async def test_release_frees_a_slot_and_is_idempotent(state: StateBackend) -> None:
    await state.acquire_lease("c", "h1", 1, NOW, NOW + 30)
    assert not (await state.acquire_lease("c", "h2", 1, NOW, NOW + 30)).acquired
    assert await state.release_lease("c", "h1") is True
    assert await state.release_lease("c", "h1") is False
    assert await state.release_lease("c", "never-held") is False
    assert (await state.acquire_lease("c", "h2", 1, NOW, NOW + 30)).acquired


async def test_expired_leases_free_their_slots(state: StateBackend) -> None:
    """A replica that crashed holding a slot loses it when the lease expires."""
    await state.acquire_lease("c", "crashed", 1, NOW, NOW + 30)
    assert not (await state.acquire_lease("c", "h2", 1, NOW + 29.9, NOW + 60)).acquired
    late = await state.acquire_lease("c", "h2", 1, NOW + 30, NOW + 60)
    assert (late.acquired, late.held, late.next_expiry) == (True, 1, NOW + 60)


async def test_renew_keeps_a_live_lease_and_refuses_an_expired_one(state: StateBackend) -> None:
    await state.acquire_lease("c", "h1", 1, NOW, NOW + 30)
    assert await state.renew_lease("c", "h1", NOW + 20, NOW + 50) is True
    assert not (await state.acquire_lease("c", "h2", 1, NOW + 40, NOW + 70)).acquired
    assert await state.renew_lease("c", "h1", NOW + 50, NOW + 80) is False
    assert await state.renew_lease("c", "nobody", NOW, NOW + 80) is False
    assert (await state.acquire_lease("c", "h2", 1, NOW + 50, NOW + 80)).acquired


async def test_100_concurrent_acquires_take_exactly_the_limit(state: StateBackend) -> None:
    calls = [state.acquire_lease("c", f"h{i}", 10, NOW, NOW + 30) for i in range(100)]
    results = await asyncio.gather(*calls)
    assert sum(result.acquired for result in results) == 10
    assert (await state.acquire_lease("c", "late", 10, NOW, NOW + 30)).held == 10


async def test_lease_keys_are_independent(state: StateBackend) -> None:
    assert (await state.acquire_lease("a", "h", 1, NOW, NOW + 30)).acquired
    assert (await state.acquire_lease("b", "h", 1, NOW, NOW + 30)).acquired


# -- URLs and lifecycle -----------------------------------------------------------------------


async def test_sqlite_state_survives_a_restart(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/persist.db"
    async with open_state(url) as first:
        await first.add_within([CounterAdd("spend", 1234, None)], NOW)
        await first.acquire_lease("c", "h", 1, NOW, NOW + 30)
    async with open_state(url) as second:
        assert await second.get(["spend"], NOW) == (1234,)
        assert not (await second.acquire_lease("c", "other", 1, NOW, NOW + 30)).acquired


def test_unknown_schemes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"memory://, sqlite:///path\.db, redis://"):
        open_state("postgres://db/x")
    with pytest.raises(ConfigError, match="sqlite:///relative"):
        open_state("sqlite://")


def test_redis_passwords_stay_out_of_repr() -> None:
    backend = open_state("redis://user:hunter2@127.0.0.1:6379/0?prefix=app:")
    assert "hunter2" not in repr(backend)
    assert "***" in repr(backend)


async def test_unreachable_redis_is_a_state_error() -> None:
    from llmdispatcher.state import StateError

    async with open_state("redis://127.0.0.1:1/0") as backend:
        with pytest.raises(StateError, match=r"127\.0\.0\.1:1") as caught:
            await backend.get(["k"], NOW)
    assert caught.value.__cause__ is not None
