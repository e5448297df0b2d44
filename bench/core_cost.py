"""The dispatcher core's cost per request, in instructions: old commit against this tree.

Times on a shared 2-core machine drift with whatever else runs; instruction counts do not.
This runs N sends and N streams through ``Dispatcher`` to an in-process vendor (no HTTP, so
only the core path is measured: routing, the lifecycle, events, stats) under
``valgrind --tool=callgrind``, once with N requests and once with none, for each tree, and
prints instructions per request and the ratio new / old:

    .venv/bin/python bench/core_cost.py --old main~3             # 2,000 of each
    .venv/bin/python bench/core_cost.py --old main~3 -n 5000

Needs valgrind (Debian package ``valgrind``). One run takes about a minute.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = """
import asyncio, sys
from llmdispatcher import Dispatcher, Request, Response, StreamChunk, Usage
from llmdispatcher.vendors import Capabilities, Vendor

class Echo(Vendor):
    name = "echo"
    capabilities = Capabilities()
    model_prefixes = ()

    async def send(self, request):
        return Response(content="hi", vendor="echo", model=request.model,
                        finish_reason="stop", usage=Usage(3, 1, 4))

    async def stream(self, request):
        for piece in ("a", "b", "c"):
            yield StreamChunk(delta=piece)
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 3, 6))

async def main(n):
    async with Dispatcher(vendors=[Echo()]) as d:
        request = Request(model="m", messages=[{"role": "user", "content": "hello"}])
        for _ in range(n):
            await d.send(request)
            async for _chunk in d.stream(request):
                pass

asyncio.run(main(int(sys.argv[1])))
"""


def instructions(tree: Path, count: int) -> int:
    done = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, "-c", WORKLOAD, str(count),
        ],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": str(tree / "src")},
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total: {done.stderr[-500:]}")
    return int(found.group(1))


def per_request(tree: Path, count: int) -> float:
    return (instructions(tree, count) - instructions(tree, 0)) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="git ref of the baseline")
    parser.add_argument("-n", type=int, default=2000, help="sends (and as many streams)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.old],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        try:
            before = per_request(old, args.n)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    after = per_request(ROOT, args.n)
    print(f"instructions per send + stream, {args.n} of each (old = {args.old}):")
    print(f"old {before:,.0f}   new {after:,.0f}   new/old {after / before:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
