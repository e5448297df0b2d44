"""CI smoke of the soak (bench/soak.py): the real gateway, three chaos fakes, a few hundred
requests, every invariant checked. Bounded: each run is a subprocess with a timeout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Small sizes for the heavy faults, so that a smoke costs seconds, not minutes.
SMALL = '{"bomb_bytes": 67108864, "long_line_bytes": 8388608, "oversized_bytes": 4194304}'
# Invariants a 500-request smoke cannot judge: its first memory sample is taken while the
# gateway still warms up (52 -> 87 MiB seen under load), so growth is measured by the full soak
# (`make soak`), not here. Every other invariant must hold.
KNOWN: set[str] = {"RSS grew"}


def soak(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--quiet", "--json", str(out),
               "--sample-s", "1", "--settle-s", "1", "--chaos", SMALL, *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=170, check=False)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def test_without_faults_every_invariant_holds(tmp_path: Path) -> None:
    result = soak(tmp_path, "--faults", "none", "--requests", "300", "--concurrency", "8")
    assert result["violations"] == {}
    outcomes = result["outcomes"]
    assert sum(outcomes.values()) == outcomes["stream ok"] + outcomes["plain ok"] == 300
    assert result["ledger"]["rows"] == 300


@pytest.mark.parametrize("seed", [1])
def test_under_faults_only_known_defects_break_invariants(tmp_path: Path, seed: int) -> None:
    result = soak(tmp_path, "--requests", "500", "--concurrency", "16", "--seed", str(seed))
    assert set(result["violations"]) <= KNOWN, result["examples"]
    # Faults really were injected. Not per fake, nor a fixed total: the breaker moves traffic
    # off the faultiest vendor, so how many requests reach each fake (and fail) depends on
    # timing; under load the 1 % fake has served no fault at all. Vendor a (20 %) takes every
    # request's first try until its breaker opens, so it always injects some.
    injected = {name: sum(f["faults"].values()) for name, f in result["fakes"].items()}
    assert injected["a"] > 0, injected
    assert result["ledger"] == result["ledger"] | {"rows": 500, "missing": 0, "doubled": 0}
