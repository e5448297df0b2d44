"""CI run of the cluster proof (bench/cluster.py): HAProxy in front of three ``llmdispatcher
serve`` replicas sharing Redis and PostgreSQL, fake vendors behind, under load: a rolling
restart, a SIGKILL, a fourth replica, a failing vendor, shared limits, and the ledger checked row
by row. Bounded: one subprocess with a timeout (about 40 s here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.ledger.test_ledger import postgres_server
from tests.redis_fixtures import in_ci

__all__ = ["postgres_server"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def haproxy() -> None:
    if shutil.which("haproxy") is None:
        problem = "haproxy is not installed: bash scripts/services.sh installs it"
        if in_ci():
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


def test_replicas_behind_haproxy_lose_nothing(
    haproxy: None, redis_url: str, postgres_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "cluster.json"
    command = [sys.executable, str(ROOT / "bench" / "cluster.py"), "--scenario", "proof",
               "--phase-s", "1.5", "--burst", "100", "--postgres", postgres_server,
               "--redis", redis_url, "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    found: dict[str, Any] = orjson.loads(out.read_bytes())
    assert found["violations"] == {}
    results = found["results"]
    # Every scenario really happened: the load ran through each action.
    assert results["rolling"]["failed"] == 0
    assert results["rolling"]["streams"] > 0
    assert results["kill"]["failed"] <= 8  # at most the requests in flight (concurrency 8)
    assert results["grow"]["served_by"].get("r3", 0) > 0
    assert results["vendor"]["calls_to_a_after_all_open"] == 0
    assert results["vendor"]["replicas_told_by_another"] >= 1
    limits = results["limits"]
    assert 0 < limits["limited_tokens"] <= limits["tpm"]
    assert limits["budgeted_ok"] > 0
    ledger = results["ledger"]
    assert 0 < ledger["budget_spent_nano_usd"] <= ledger["budget_nano_usd"]
    assert ledger["finished"] > 0
    assert done.returncode == 0
