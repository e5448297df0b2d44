"""Optional: does ``llmdispatcher serve --workers N`` scale near-linearly with cores?

On a 2-core machine the load generator cannot get cores of its own, so absolute throughput
cannot double. What does carry over is the gateway's CPU time per request, summed over all its
processes (the supervisor and every worker, found as the supervisor's descendants in /proc): if
two workers each pay about what one pays, N workers on N free cores serve about N times as much,
and nothing shared (Prometheus multiprocess files, the stats publisher, the SQLite state) makes
each request dearer. Workers scale near-linearly when CPU/request with 2 workers is within
~10-15 % of 1 worker, with no errors.

    .venv/bin/python bench/workers.py               # about 1.5 minutes
    .venv/bin/python bench/workers.py --seconds 4   # shorter cells

One 0 ms mock OpenAI upstream (``mock_upstream.py``) and ``llmdispatcher serve`` with the
config of ``bench/gateway.py`` (API-key auth, two OpenAI vendors on the mock, fallback). For
``--workers 1`` then ``2``, twice (1, 2, 1, 2), a fresh gateway gets a 2 s warm-up, then wrk
drives non-streaming requests at concurrency 64 for 8 s. The mock and wrk are pinned to CPU 1;
the gateway is not pinned, so its workers may use both CPUs (with one worker, the kernel keeps
it mostly on CPU 0). Requests/s is therefore capped by the shared cores: the mock and wrk take
part of the CPUs the second worker would need. "procs" counts the processes whose CPU is summed:
the single process, or the supervisor, its workers and multiprocessing's resource tracker.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from gateway import KEY, LOAD_CPU, ROOT, _drain, cpu_seconds, scripts, start, wrk

WARMUP_S = 2.0
CONCURRENCY = 64


@dataclass
class Cell:
    workers: int
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_s: float
    processes: int

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / max(1, self.requests) * 1e6


# --- processes --------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (workers, multiprocessing's resource tracker), from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with suppress(OSError):
                children = [int(c) for c in task.read_text().split()]
                found += children
                todo += children
    return found


def tree_cpu(pid: int) -> tuple[dict[int, float], float]:
    """User + system CPU seconds of ``pid`` and each of its descendants, and their sum."""
    used: dict[int, float] = {}
    for p in (pid, *descendants(pid)):
        with suppress(OSError):  # a process that just exited
            used[p] = cpu_seconds(p)
    return used, sum(used.values())


def write_config(workdir: Path, upstream: str) -> Path:
    """The gateway config of ``bench/gateway.py``'s ``servers()`` minus its 200 ms vendor."""
    config = workdir / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                "fallback_vendors: [backup]",
                "gateway:",
                f"  api_keys: [{{name: bench, key: {KEY}}}]",
                "vendors:",
                *(
                    f"  {name}: {{type: openai, base_url: {upstream}/v1, "
                    "api_key: sk-up-0123456789}"
                    for name in ("openai", "backup")
                ),
            ]
        )
        + "\n"
    )
    return config


@contextmanager
def gateway(config: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``llmdispatcher serve --workers N``, unpinned; yields once all N workers listen."""
    command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
    command += ["--port", "0", "--workers", str(workers)]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        seen, urls = b"", list[str]()
        deadline = time.monotonic() + 60
        while len(urls) < workers:  # each worker logs "listening on URL (pid N, ...)"
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"gateway with {workers} workers did not start: {seen.decode()}")
            seen += line
            if found := re.search(rb"listening on (http://\S+) \(pid \d+", line):
                urls.append(found.group(1).decode())
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        yield proc, urls[0]
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the supervisor (it stops its workers); SIGKILL the whole tree if that hangs."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        tree = list({*tree, *descendants(proc.pid)})
        proc.kill()
        proc.wait()
    for pid in tree:  # normally gone already; never leave a worker behind
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the run ------------------------------------------------------------------------------------
def measure(config: Path, script: Path, workers: int, seconds: float) -> Cell:
    with gateway(config, workers) as (proc, url):
        wrk(url, script, CONCURRENCY, WARMUP_S)  # connections, first-request imports
        pids, before = tree_cpu(proc.pid)
        found = wrk(url, script, CONCURRENCY, seconds)
        after_pids, after = tree_cpu(proc.pid)
        if set(after_pids) != set(pids):
            raise RuntimeError(f"gateway processes changed during the cell: {pids} -> {after_pids}")
        return Cell(
            workers=workers,
            rps=found.rps,
            requests=found.requests,
            p50_ms=found.p50_ms,
            p99_ms=found.p99_ms,
            errors=found.errors,
            cpu_s=after - before,
            processes=len(pids),
        )


HEADER = (
    f"{'run':>3}{'workers':>8}{'procs':>6}{'req/s':>8}{'requests':>10}{'p50 ms':>8}"
    f"{'p99 ms':>8}{'CPU s':>7}{'CPU/req us':>11}{'errs':>6}"
)


def row(run: int, cell: Cell) -> str:
    return (
        f"{run:>3}{cell.workers:>8}{cell.processes:>6}{cell.rps:>8.0f}{cell.requests:>10}"
        f"{cell.p50_ms:>8.2f}{cell.p99_ms:>8.2f}{cell.cpu_s:>7.2f}{cell.cpu_us:>11.0f}"
        f"{cell.errors:>6}"
    )


def pooled(cells: list[Cell]) -> tuple[float, float]:
    """(CPU us per request over all the cells' requests, mean requests/s)."""
    requests = sum(c.requests for c in cells)
    cpu_us = sum(c.cpu_s for c in cells) / max(1, requests) * 1e6
    return cpu_us, sum(c.rps for c in cells) / len(cells)


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset: apt-get install -y wrk util-linux", file=sys.stderr)
        return 2
    # a SIGTERM to this script unwinds like an error, so the ``finally`` blocks stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average {load}; "
        f"mock and wrk on CPU {LOAD_CPU}, gateway unpinned; c={CONCURRENCY}, "
        f"{WARMUP_S:g} s warm-up + {args.seconds:g} s/cell\n"
    )
    mock_command = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    mock, port = start([*mock_command, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), f"http://127.0.0.1:{port}")
            script = scripts(Path(tmp))["post"]
            print(HEADER)
            cells: list[Cell] = []
            for i, workers in enumerate((1, 2, 1, 2), start=1):
                cells.append(measure(config, script, workers, args.seconds))
                print(row(i, cells[-1]), flush=True)
    finally:
        mock.send_signal(signal.SIGTERM)
        try:
            mock.wait(15)
        except subprocess.TimeoutExpired:
            mock.kill()
    one = [c for c in cells if c.workers == 1]
    two = [c for c in cells if c.workers == 2]
    (cpu1, rps1), (cpu2, rps2) = pooled(one), pooled(two)
    ratio = cpu2 / cpu1
    per_run = ", ".join(f"{b.cpu_us / a.cpu_us:.2f}" for a, b in zip(one, two, strict=True))
    errors = sum(c.errors for c in cells)
    print(
        f"\n1 worker:  {cpu1:4.0f} us CPU/request, {rps1:5.0f} req/s (mean of {len(one)} runs)"
        f"\n2 workers: {cpu2:4.0f} us CPU/request, {rps2:5.0f} req/s (mean of {len(two)} runs)"
        f"\nCPU/request 2 workers / 1 worker: {ratio:.2f} (run by run: {per_run}); "
        f"throughput {rps2 / rps1:.2f}x; errors {errors}"
    )
    near_linear = ratio <= 1.15 and errors == 0
    print(f"near-linear (ratio <= 1.15, no errors): {'yes' if near_linear else 'NO'}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each cell")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
