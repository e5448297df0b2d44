"""The gateway's instructions per request: old commit against the working tree, noise-free.

``bench/ab.py`` times the gateway under wrk, and on a shared 2-core machine those times move
by 10-20 % from round to round. Instruction counts do not: this runs ``llmdispatcher serve``
under ``valgrind --tool=callgrind`` (every thread of the gateway process, the ledger writer's
included), sends it requests one at a time over keep-alive HTTP from this process, stops it,
and reads the instructions it executed. Three runs per side (n posts and n streams, 2n and n,
2n and 2n), so that start-up and shutdown cancel out and posts and streams are told apart:

    .venv/bin/python bench/ab_instructions.py --old main~3            # 200 posts, 200 streams
    .venv/bin/python bench/ab_instructions.py --old main~3 -n 400

The pipeline is issue #21's: a stored key (in a throwaway ``LLMDISPATCHER_HOME``) and the
ledger on, the upstream the zero-delay mock; the hash seed is fixed, and the gateway's own
periodic work (readiness checks, the key cache's poll) costs about 1 M instructions per wall
second, against 1-4 M per request. Instructions are not time (a cache miss costs
more than an add), but a change that removes work shows here however busy the machine is.
Needs valgrind (Debian package ``valgrind``); one run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import old_tree

from gateway import LOAD_CPU, MESSAGES, ROOT, _stored_key, start

KINDS = ("post", "stream")


def config_for(workdir: Path, upstream: str) -> Path:
    path = workdir / "gateway.yaml"
    vendor = f"{{type: openai, base_url: {upstream}, api_key: sk-up-0123456789}}"
    lines = ["fallback_vendors: [backup]", "vendors:", f"  openai: {vendor}", f"  backup: {vendor}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def send(port: int, key: str, kind: str, count: int) -> None:
    """``count`` requests of ``kind`` on one keep-alive connection; each must succeed."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": kind == "stream"})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(count):
            conn.request("POST", "/v1/chat/completions", body, headers)
            answer = conn.getresponse()
            text = answer.read()
            if answer.status != 200 or (kind == "stream" and b"[DONE]" not in text):
                raise RuntimeError(f"{kind}: HTTP {answer.status}: {text[:300]!r}")
    finally:
        conn.close()


def instructions(tree: Path, config: Path, home: Path, key: str, counts: tuple[int, int]) -> int:
    """What the gateway executed from start to stop, having served ``counts`` posts and
    streams."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
    # A fixed hash seed: with random ones, dict and set layouts (and so the instructions of
    # every lookup) differ from run to run by far more than a request costs.
    env = {"LLMDISPATCHER_HOME": str(home), "PYTHONPATH": str(tree / "src"), "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert proc.stdout is not None
    seen = b""
    while (found := re.search(rb"listening on http://[\d.]+:(\d+)", seen)) is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the gateway did not start: {seen.decode()[-2000:]}")
        seen += line
    try:
        port = int(found.group(1))
        for kind, count in zip(KINDS, counts, strict=True):
            send(port, key, kind, count)
        time.sleep(0.5)  # the ledger's last batch (written every 0.2 s) counts too
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=300)[0]
    total = re.search(rb"Collected : (\d+)", seen + output)
    if total is None:
        raise RuntimeError(f"callgrind printed no total: {output.decode()[-2000:]}")
    return int(total.group(1))


def per_request(tree: Path, config: Path, workdir: Path, n: int) -> tuple[float, float]:
    """Instructions per post and per stream (differences between runs that served more)."""
    # Byte-compile first: otherwise the first run alone compiles every module it imports.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "src")], check=True)
    totals = []
    for run, served in enumerate(((n, n), (2 * n, n), (2 * n, 2 * n))):
        home = workdir / f"home-{run}"
        home.mkdir(parents=True)
        key = asyncio.run(_stored_key(home))
        totals.append(instructions(tree, config, home, key, served))
    return (totals[1] - totals[0]) / n, (totals[2] - totals[1]) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="git ref of the baseline")
    parser.add_argument("--new", help="git ref to compare (default: this working tree)")
    parser.add_argument("-n", type=int, default=200, help="posts (and as many streams)")
    args = parser.parse_args()
    mock = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    upstream, port = start([*mock, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            old_tree(args.old) as old,
            old_tree(args.new or args.old) as other,
        ):
            work = Path(tmp)
            config = config_for(work, f"http://127.0.0.1:{port}/v1")
            old_count = per_request(old, config, work / "old", args.n)
            new_count = per_request(other if args.new else ROOT, config, work / "new", args.n)
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(15)
    new = args.new or "this tree"
    print(f"gateway instructions per request, {args.n} more of each (old {args.old}, new {new}):")
    for kind, old_i, new_i in zip(KINDS, old_count, new_count, strict=True):
        print(f"{kind:<7} old {old_i:12,.0f}   new {new_i:12,.0f}   new/old {new_i / old_i:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
