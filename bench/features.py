"""What do the stored key and the ledger cost the gateway per request? One run, A/B/C/D.

``llmdispatcher serve`` (one worker, pinned to CPU 0) against one zero-delay mock upstream, wrk at
concurrency 64 (CPU 1), in four set-ups that alternate round by round, each a fresh gateway
with 2 s of warm-up:

* ``config, no ledger``: a key from ``gateway.api_keys``, ``LLMDISPATCHER_NO_LEDGER=1``
  (the pipeline ``RESULTS-gateway.md`` measured in November);
* ``config, ledger``: the same key, the default ledger (the data directory's SQLite file);
* ``stored, no ledger``: a stored key (the key cache, its usage lease and settling);
* ``stored, ledger``: both: issue #21's "full default pipeline".

    .venv/bin/python bench/features.py                  # 3 rounds of 8 s, about 2.5 minutes
    .venv/bin/python bench/features.py --rounds 5 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import CONCURRENCY, WARMUP_S, check_answer, server, write_config
from workers import tree_cpu

from gateway import LOAD_CPU, ROOT, _stored_key, lua, start, wrk

CONFIGURED = "sk-bench-configured-0123456789"  # servers.write_config's key
SETUPS = ("config, no ledger", "config, ledger", "stored, no ledger", "stored, ledger")


def run(rounds: int, seconds: float) -> int:
    mock_command = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    mock, port = start([*mock_command, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in SETUPS}
    errors = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "home").mkdir()
            stored = asyncio.run(_stored_key(work / "home"))
            config = write_config(work, f"http://127.0.0.1:{port}")
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            keys = {"config": CONFIGURED, "stored": stored}
            scripts = {name: lua(work, name, body, key) for name, key in keys.items()}
            print(f"load average {os.getloadavg()[0]:.2f}; c={CONCURRENCY}, {seconds:g} s cells")
            print(f"{'round':<6}{'set-up':<20}{'req/s':>8}{'CPU/req us':>11}{'errs':>6}{'load':>6}")
            for round_ in range(rounds):
                for name in SETUPS:
                    key_kind, ledger = name.split(", ")
                    env = {
                        "LLMDISPATCHER_HOME": str(work / "home"),
                        "PYTHONPATH": str(ROOT / "src"),
                    }
                    if ledger == "no ledger":
                        env["LLMDISPATCHER_NO_LEDGER"] = "1"
                    with server("gateway", config, env) as (url, pid):
                        check_answer(url, keys[key_kind])
                        wrk(url, scripts[key_kind], CONCURRENCY, WARMUP_S)
                        _, before = tree_cpu(pid)
                        cell = wrk(url, scripts[key_kind], CONCURRENCY, seconds)
                        _, after = tree_cpu(pid)
                    cpu_us = (after - before) / max(1, cell.requests) * 1e6
                    found[name].append((cell.rps, cpu_us))
                    errors += cell.errors
                    print(f"{round_ + 1:<6}{name:<20}{cell.rps:8.0f}{cpu_us:11.0f}"
                          f"{cell.errors:6d}{os.getloadavg()[0]:6.2f}", flush=True)  # fmt: skip
    finally:
        mock.send_signal(signal.SIGTERM)
        mock.wait(15)
    base = statistics.median(r[1] for r in found[SETUPS[0]])
    print(f"\nmedian CPU per request ({SETUPS[0]} = 1.00):")
    for name in SETUPS:
        cpu = [r[1] for r in found[name]]
        print(f"{name:<20}{statistics.median(cpu):6.0f} us  (range {min(cpu):.0f}-{max(cpu):.0f})"
              f"  {statistics.median(cpu) / base:5.2f}x")  # fmt: skip
    print(f"errors: {errors}; load average {os.getloadavg()[0]:.2f} at the end")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    sys.exit(run(args.rounds, args.seconds))


if __name__ == "__main__":
    main()
