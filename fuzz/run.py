"""Run one fuzz target under atheris (libFuzzer, coverage-guided)::

    python fuzz/run.py sse --seconds 180          # what `make fuzz` does for every target
    python fuzz/run.py config --runs 2000         # the CI smoke
    python fuzz/run.py --list

Seeds are read from ``fuzz/seeds/<target>/``; new coverage goes to ``fuzz/.work/<target>/``
(not kept; ``--work`` puts it elsewhere: the smoke starts from an empty one, so that a run is
repeatable). An input that breaks the target's contract is written to
``fuzz/corpus/<target>/crash-<sha1>``, where ``tests/chaos/test_fuzz.py`` replays it. Crashes
already listed in ``fuzz/known_crashes.toml`` (by signature) are tolerated so that a run goes on
to find new ones; ``--strict`` stops at those too.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def known_signatures(target: str) -> set[str]:
    data = tomllib.loads((HERE / "known_crashes.toml").read_text())
    return {c["signature"] for c in data.get("crash", ()) if c["target"] == target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--runs", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strict", action="store_true", help="stop at known crashes too")
    parser.add_argument("--work", type=Path, default=None, help="the working corpus directory")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()

    import atheris

    with atheris.instrument_imports(include=["llmdispatcher", "fuzz"]):
        from fuzz.targets import TARGETS, Broken
    if args.list or args.target not in TARGETS:
        print("\n".join(TARGETS))
        sys.exit(0 if args.list else 2)
    target = TARGETS[args.target]
    known = set() if args.strict else known_signatures(args.target)

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except Broken as exc:
            if exc.signature not in known:
                raise

    work = args.work or HERE / ".work" / args.target
    seeds = HERE / "seeds" / args.target
    crashes = HERE / "corpus" / args.target
    for folder in (work, seeds, crashes):
        folder.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0], f"-artifact_prefix={crashes}/", f"-max_total_time={args.seconds}",
        f"-runs={args.runs}", f"-seed={args.seed}", "-max_len=8192", "-timeout=20",
        "-rss_limit_mb=2048", "-print_final_stats=1", str(work), str(seeds),
    ]  # fmt: skip
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
