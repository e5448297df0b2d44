"""The CI smoke of bench/replay.py: a small synthetic ledger replayed end to end. It fails only
on errors (every row replayed on both sides), never on timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_replay_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replay.py"), "--rows", "2000"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2,000 rows:" in done.stdout
    assert "proposal: {'b': 2000}" in done.stdout
