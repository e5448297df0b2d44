"""Fixtures of the state contract: one ``state`` fixture parametrized over every backend.

Redis runs against a real server (``LLMD_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``),
each test under its own key prefix, deleted afterwards. Without a reachable server the Redis
cases are skipped on a workstation but fail in CI (``CI`` set): ``scripts/services.sh`` starts
one there, and a skip would hide that the shared-state tests never ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from llmdispatcher.state import StateBackend, StatePolicy, open_state
from tests.redis_fixtures import REDIS_URL, delete_prefix, in_ci

__all__ = ["REDIS_URL", "delete_prefix", "in_ci"]

BACKENDS = ("memory", "sqlite", "redis", "redis-failover")  # the last: Redis in FailoverState


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def state_factory(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[], StateBackend]]:
    """Opens backends that share one store, as replicas would (memory: the same instance,
    it cannot be shared). All are closed after the test."""
    opened: list[StateBackend] = []
    shared = open_state("memory://") if backend_name == "memory" else None
    url, prefix = "memory://", ""
    if backend_name == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'state.db'}", ""
    elif backend_name.startswith("redis"):
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    # The contract is about semantics, not outages (tests/state/test_outage.py): generous
    # bounds, so that 200 connections opened at once on a busy CI machine are not taken for a
    # dead Redis and served from the local fallback.
    # (Both Redis cases: plain Redis, under the default 1 s bound, once failed one of 100
    # concurrent budget reserves in a full CI run with an error that was no refusal.)
    policy = (
        StatePolicy(timeout_s=30.0, connect_timeout_s=30.0)
        if backend_name.startswith("redis")
        else None
    )

    def factory() -> StateBackend:
        backend = shared or open_state(url, prefix=prefix, policy=policy)
        opened.append(backend)
        return backend

    yield factory
    for backend in opened:
        await backend.close()


@pytest.fixture
def state(state_factory: Callable[[], StateBackend]) -> StateBackend:
    """A fresh, empty backend of each kind."""
    return state_factory()
