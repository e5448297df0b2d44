"""The CI smoke of bench/gateway.py: every cell (posts, streams, 256 in flight, time to first
token, a short soak) through a real ``llmdispatcher serve`` with a stored key and the ledger on,
driven by wrk. It fails only on errors (a non-2xx answer, a socket error, an unfinished stream),
never on timing: the figures it prints are not checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_gateway_benchmark_runs_without_errors(tmp_path: Path) -> None:
    if shutil.which("wrk") is None and not os.environ.get("CI"):
        pytest.skip("needs wrk (scripts/services.sh installs it)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gateway.py"), "--smoke"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "LLMDISPATCHER_HOME": str(tmp_path / "unused-home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "errors: 0" in done.stdout
    for cell in ("post c=64", "stream 20 chunks c=16", "256 in flight", "time to first token"):
        assert cell in done.stdout
