"""Redis for tests: a real server (``LLMD_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``), each test under its own key prefix, deleted afterwards. Without a
reachable server these tests are skipped on a workstation but fail in CI (``CI`` set):
``scripts/services.sh`` starts one there, and a skip would hide that they never ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("LLMD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _redis_problem() -> str | None:
    """Why Redis cannot be used, or None when it answers PING."""
    try:
        import redis
    except ImportError:
        return "the redis client is not installed: pip install -e '.[redis]'"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"no Redis server at {REDIS_URL} ({exc}); start one with scripts/services.sh"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis URL; skips (or, in CI, fails) when no server answers."""
    problem = _redis_problem()
    if problem is not None:
        if in_ci():
            pytest.fail(f"CI requires Redis: {problem}", pytrace=False)
        pytest.skip(problem)
    return REDIS_URL


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"llmd-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)
