"""CI smoke of the cache benchmark (bench/cache.py): the real gateway and the mock upstream, a
few hundred misses and hits. It fails on errors and on a cache over its byte bound, never on
timings (the CI machine is shared)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_hits_and_misses_through_the_gateway_without_errors_within_max_bytes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "cache.json"
    command = [sys.executable, str(ROOT / "bench" / "cache.py"), "--requests", "300",
               "--rounds", "1", "--max-bytes", "65536", "--json", str(out)]  # fmt: skip
    env = {**os.environ, "LLMDISPATCHER_HOME": str(tmp_path / "home"),
           "LLMDISPATCHER_NO_LEDGER": "1"}  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=170, env=env, check=False
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = orjson.loads(out.read_bytes())
    assert result["problems"] == []
    assert 0 < result["cache_bytes"] <= 65536
    assert result["evictions"] > 0  # 300 distinct answers do not fit in 64 KiB
    assert done.returncode == 0
