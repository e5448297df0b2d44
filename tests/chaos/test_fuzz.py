"""The fuzz targets (fuzz/targets.py): every seed and every crash input kept under
fuzz/corpus/ replayed, and a short atheris run of each target (the CI smoke).

Crashes in code this suite does not fix are listed in fuzz/known_crashes.toml and replayed as
strict xfails: once the bug is fixed the replay passes, the xfail fails, and the entry goes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fuzz.targets import TARGETS, Broken

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
KNOWN = {
    crash["input"]: crash
    for crash in tomllib.loads((FUZZ / "known_crashes.toml").read_text()).get("crash", ())
}


def inputs() -> list[object]:
    cases: list[object] = []
    for target in TARGETS:
        for folder in ("seeds", "corpus"):
            for path in sorted((FUZZ / folder / target).glob("*")):
                name = str(path.relative_to(ROOT))
                known = KNOWN.get(name)
                marks = (
                    [pytest.mark.xfail(raises=Broken, strict=True, reason=known["signature"])]
                    if known
                    else []
                )
                cases.append(pytest.param(target, path, id=name, marks=marks))
    return cases


@pytest.mark.parametrize(("target", "path"), inputs())
def test_replay(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


def test_every_known_crash_has_its_input() -> None:
    for name, crash in KNOWN.items():
        assert (ROOT / name).is_file(), name
        assert crash["target"] in TARGETS


# In CI (make setup installs the fuzz extra) the smoke must run, never skip.
@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None and os.environ.get("CI", "") in ("", "0", "false"),
    reason="pip install -e '.[fuzz]'",
)
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_smoke(target: str, tmp_path: Path) -> None:
    command = [sys.executable, str(FUZZ / "run.py"), target, "--runs", "1500", "--seconds", "30",
               "--work", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
