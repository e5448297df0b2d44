"""Did a change make the gateway slower? Old commit against the working tree, in one run.

Starts the same gateway config twice, once from a detached checkout of ``--old`` (a git ref)
and once from this tree, against one zero-delay mock upstream, and measures the gateway
process's CPU per request (user + system, /proc) under wrk, and the time to first token it
adds at concurrency 1 (p50 of ``--ttft`` sequential streams, less the upstream's own), alternating
old and new for ``--rounds`` rounds so that drift on a shared machine hits both alike:

    .venv/bin/python bench/ab.py --old main~3                    # c=64 posts and c=16 streams
    .venv/bin/python bench/ab.py --old v0.1 --rounds 5 --seconds 10

Prints the median per side and the ratio new / old; a ratio above 1 is a slowdown. The
gateway is pinned to CPU 0, the mock and wrk to CPU 1 (as in bench/gateway.py).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import (
    GATEWAY_CPU,
    KEY,
    LOAD_CPU,
    MESSAGES,
    ROOT,
    lua,
    start,
    stop,
    ttft_pair,
    wrk,
)

CELLS = (("post c=64", "post", 64), ("stream 20 chunks c=16", "stream", 16))


@contextmanager
def old_tree(ref: str) -> Iterator[Path]:
    """A detached checkout of ``ref``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(where), ref],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield where
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False
            )


@contextmanager
def gateway(tree: Path, config: Path) -> Iterator[tuple[str, int]]:
    command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
    proc, url = start(
        [*command, "--port", "0"],
        GATEWAY_CPU,
        rb"listening on (http://\S+)",
        env={"PYTHONPATH": str(tree / "src")},
    )
    try:
        yield url, proc.pid
    finally:
        stop(proc)


def config_for(workdir: Path, upstream: str) -> Path:
    path = workdir / "gateway.yaml"
    path.write_text(
        "\n".join(
            [
                "fallback_vendors: [backup]",
                "gateway:",
                f"  api_keys: [{{name: bench, key: {KEY}}}]",
                "vendors:",
                f"  openai: {{type: openai, base_url: {upstream}, api_key: sk-up-0123456789}}",
                f"  backup: {{type: openai, base_url: {upstream}, api_key: sk-up-0123456789}}",
            ]
        )
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="git ref of the baseline")
    parser.add_argument("--new", help="git ref to compare (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--ttft", type=int, default=50, help="streams per side and round (0: none)")
    args = parser.parse_args()
    mock = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    upstream, port = start([*mock, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    cpu: dict[tuple[str, str], list[float]] = {}
    added: dict[str, list[float]] = {"old": [], "new": []}  # ms of time to first token
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            old_tree(args.old) as old,
            old_tree(args.new or args.old) as other,
        ):
            new = other if args.new else ROOT
            work = Path(tmp)
            config = config_for(work, f"http://127.0.0.1:{port}/v1")
            scripts = {
                "post": lua(work, "post", {"model": "gpt-4o-mini", "messages": MESSAGES}),
                "stream": lua(
                    work, "stream", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
                ),
            }
            for round_ in range(args.rounds):
                for side, tree in (("old", old), ("new", new)):
                    with gateway(tree, config) as (url, pid):
                        wrk(url, scripts["post"], 16, 2, pid)  # warm up
                        for label, script, conc in CELLS:
                            found = wrk(url, scripts[script], conc, args.seconds, pid)
                            cpu.setdefault((label, side), []).append(found.cpu_us or 0.0)
                            print(
                                f"round {round_ + 1} {side}: {label:<24}{found.rps:8.0f} req/s "
                                f"{found.cpu_us:6.0f} us CPU/request, {found.errors} errors",
                                flush=True,
                            )
                        if args.ttft:
                            mock_url = f"http://127.0.0.1:{port}"
                            direct, via = ttft_pair(mock_url, url, args.ttft, KEY)
                            added[side].append(via - direct)
                            print(
                                f"round {round_ + 1} {side}: time to first token added "
                                f"{via - direct:.3f} ms (direct {direct:.3f} ms)",
                                flush=True,
                            )
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(15)
    print(f"\nmedian gateway CPU per request, {args.rounds} rounds (old = {args.old}):")
    for label, _, _ in CELLS:
        old_us = statistics.median(cpu[(label, "old")])
        new_us = statistics.median(cpu[(label, "new")])
        print(
            f"{label:<24} old {old_us:6.0f} us   new {new_us:6.0f} us   "
            f"new/old {new_us / old_us:.3f}"
        )
    if args.ttft:
        old_ms, new_ms = statistics.median(added["old"]), statistics.median(added["new"])
        print(f"{'time to first token added':<24} old {old_ms:6.3f} ms   new {new_ms:6.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
