"""What one stream's decoding and re-encoding cost, old tree against this one, in one run.

The gateway's CPU per stream under wrk moves by 10-20 % on a shared machine; this measures only
the per-chunk work of an OpenAI stream (bytes -> ``StreamChunk`` -> the client's SSE bytes), in
one process per tree, alternating trees for ``--rounds`` rounds so drift hits both alike:

    .venv/bin/python bench/stream_codec.py --old main

The stream is ``mock_upstream.py``'s (a role chunk, 20 text chunks, a finish chunk, a usage
chunk, ``[DONE]``), fed as one read, as a zero-delay upstream delivers it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import old_tree

from gateway import ROOT

CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
from mock_upstream import sse_frames
from llmdispatcher.gateway.openai_api import OpenAIStreamEncoder
from llmdispatcher.vendors.openai import OpenAIStreamDecoder, OpenAIVendor

vendor = OpenAIVendor(api_key="sk-x", base_url="http://127.0.0.1:9/v1")
body = b"".join(sse_frames(20))

def one() -> None:
    decoder = OpenAIStreamDecoder(vendor, "gpt-4o-mini")
    encoder = OpenAIStreamEncoder("chatcmpl-1", "gpt-4o-mini", False)
    for chunk in [*decoder.feed(body), *decoder.finish()]:
        encoder.chunk(chunk)

for _ in range(2000):
    one()
started = time.process_time()
for _ in range({count}):
    one()
print((time.process_time() - started) / {count} * 1e6)
"""


def run(tree: Path, count: int) -> float:
    code = CHILD.format(bench=str(ROOT / "bench"), count=count)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tree / "src")},
        capture_output=True,
        check=True,
        text=True,
    )
    return float(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="git ref of the baseline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=20000, help="per side and round")
    args = parser.parse_args()
    found: dict[str, list[float]] = {"old": [], "new": []}
    with old_tree(args.old) as old:
        for round_ in range(args.rounds):
            for side, tree in (("old", old), ("new", ROOT)):
                found[side].append(run(tree, args.streams))
                print(f"round {round_ + 1} {side}: {found[side][-1]:6.1f} us CPU per stream")
    old_us, new_us = statistics.median(found["old"]), statistics.median(found["new"])
    print(f"\nmedian: old {old_us:.1f} us, new {new_us:.1f} us per stream; new/old "
          f"{new_us / old_us:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
