"""Fuzz one target until a run of ``--seconds`` finds nothing new; record each new crash
(signature, input file, first line of the error) in ``fuzz/known_crashes.toml``::

    python fuzz/triage.py openai_response --seconds 60 --rounds 20

For code this suite does not own: the bugs are reported, not fixed, and their inputs replayed
as strict xfails by ``tests/chaos/test_fuzz.py`` until someone fixes them.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CRASH = re.compile(r"Broken: (\S+): (.*)")
UNIT = re.compile(r"Test unit written to (\S+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for _ in range(args.rounds):
        command = [
            sys.executable,
            str(HERE / "run.py"),
            args.target,
            "--seconds",
            str(args.seconds),
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        output = done.stdout + done.stderr
        crash, unit = CRASH.search(output), UNIT.search(output)
        if done.returncode == 0 or crash is None or unit is None:
            print(f"{args.target}: nothing new in {args.seconds} s" if done.returncode == 0
                  else output[-3000:])  # fmt: skip
            sys.exit(done.returncode)
        signature, detail = crash.groups()
        path = Path(unit.group(1)).relative_to(ROOT)
        note = detail.replace("\\", "\\\\").replace('"', '\\"')[:200]
        with (HERE / "known_crashes.toml").open("a") as known:
            known.write(
                f'\n[[crash]]\ntarget = "{args.target}"\nsignature = "{signature}"\n'
                f'input = "{path}"\nnote = "{note}"\n'
            )
        print(f"{args.target}: {signature} ({path})")
    sys.exit(1)


if __name__ == "__main__":
    main()
