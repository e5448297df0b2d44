"""CI smoke of bench/startup.py: it runs and prints its figures; never a timed assertion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_startup_benchmark_runs_and_reports_both_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "startup.py"), "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "import llmdispatcher" in done.stdout
    assert "exec to 200 from /readyz" in done.stdout
    assert "target (issue #21)" in done.stdout
