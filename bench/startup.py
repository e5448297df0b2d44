"""How long `llmdispatcher serve` takes from exec to its first 200 on ``/readyz``.

Issue #21's target is 0.5 s without the local model. Each run starts a fresh gateway process
(the same configuration as bench/gateway.py: two OpenAI-compatible vendors on a mock upstream,
a stored key in a throwaway home, so the key store and the ledger open as in production),
polls ``GET /readyz`` every 5 ms until it answers 200, and stops the gateway. It also times
``python -c "import llmdispatcher"`` alone, so that start-up's share spent importing is seen:

    .venv/bin/python bench/startup.py             # 7 runs each, medians
    .venv/bin/python bench/startup.py --runs 2    # the CI smoke (tests/unit/test_bench_startup.py)

Start-up is a wall time on a shared machine: the median of several runs, with the load average
printed beside it. No timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import LOAD_CPU, ROOT, _stored_key, free_port, start, stop

TARGET_S = 0.5


def ready_after(command: list[str], env: dict[str, str], port: int) -> float:
    """Seconds from starting ``command`` to a 200 from ``/readyz`` on ``port``."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        command, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - began
            except OSError:
                pass
            time.sleep(0.005)
    finally:
        stop(proc)


def import_time(env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import llmdispatcher"], env={**os.environ, **env}, check=True
    )
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    mock = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    upstream, upstream_port = start([*mock, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            asyncio.run(_stored_key(home))  # the key store exists, as on a running gateway
            config = Path(tmp) / "gateway.yaml"
            url = f"http://127.0.0.1:{upstream_port}/v1"
            vendor = f"{{type: openai, base_url: {url}, api_key: sk-up-0123456789}}"
            config.write_text(f"vendors:\n  openai: {vendor}\n  backup: {vendor}\n")
            env = {"LLMDISPATCHER_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
            command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
            imports, ready = [], []
            for _ in range(args.runs):
                imports.append(import_time(env))
                port = free_port()
                ready.append(ready_after([*command, "--port", str(port)], env, port))
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(15)
    load = os.getloadavg()[0]
    print(f"{args.runs} runs; load average {load:.2f}")
    for label, times in (("import llmdispatcher", imports), ("exec to 200 from /readyz", ready)):
        print(f"{label:<26} median {statistics.median(times):.3f} s  (min {min(times):.3f})")
    met = "yes" if statistics.median(ready) <= TARGET_S else "NO"
    print(f"target (issue #21): start-up <= {TARGET_S} s without the local model: {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
