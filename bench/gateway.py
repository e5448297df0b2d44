"""How much does the gateway add on top of talking to the upstream directly?

One run starts a fast mock OpenAI upstream (``mock_upstream.py``, 0 ms and 200 ms latency) and
``llmdispatcher serve`` with the full default pipeline (API-key auth, routing, retries and
fallback, stats, Prometheus metrics), then drives both with wrk (Debian package ``wrk``) and a
small aiohttp streaming client, and prints ratios gateway / direct measured back to back:

    .venv/bin/python bench/gateway.py            # full run, about 4 minutes
    .venv/bin/python bench/gateway.py --quick    # about 1 minute, shorter cells, 40k-request soak
    .venv/bin/python bench/gateway.py --smoke    # about 20 s: the CI smoke, fails only on errors

Cells: non-streaming at concurrency 1, 16 and 64; streaming (20 chunks) at 16; 256 in flight
against the 200 ms mock; time to first token (sequential streams); idle RSS and RSS over a soak
of 200,000 requests. The gateway is pinned to CPU 0; the mocks and the load generators to CPU 1.
The pipeline is issue #21's: a stored key (created in a throwaway ``LLMDISPATCHER_HOME``, whose
database is also the ledger, on by default) beside a configured one. The exit status is 1 when
any cell saw an error (a non-2xx answer, a socket error or an unfinished stream), never because
of a timing.
"Gateway CPU/request" is the gateway process's CPU time (user + system, /proc) divided by the
requests it served in the cell, so it holds even when other load shares the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import orjson

from llmdispatcher.home import database_url
from llmdispatcher.keys import open_key_store

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-gateway-0123456789"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant. Answer in one line."},
    {"role": "user", "content": "Summarise the plot of Hamlet for a busy reader, " * 3},
]
GATEWAY_CPU, LOAD_CPU = 0, 1


@dataclass
class Wrk:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None = None


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        with suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    found = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


# --- processes --------------------------------------------------------------------------------
def start(
    command: list[str], cpu: int, pattern: bytes, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server pinned to ``cpu``; wait for ``pattern`` (group 1: port or URL)."""
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 60
    while (found := re.search(pattern, seen)) is None:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"{command[:4]} did not start: {seen.decode()}")
        seen += line
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return proc, found.group(1).decode()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain(stream: IO[bytes]) -> None:
    """Keep reading a server's output so that a chatty one never blocks on a full pipe."""
    for _ in stream:
        pass


async def _stored_key(home: Path) -> str:
    """A stored key (no limits) in ``home``'s key store: the plaintext."""
    store = open_key_store(database_url({"LLMDISPATCHER_HOME": str(home)}))
    try:
        _, plaintext = await store.create({"name": "bench-stored"}, actor="bench")
    finally:
        await store.aclose()
    return plaintext


@contextmanager
def servers(workdir: Path) -> Iterator[dict[str, object]]:
    home = workdir / "home"
    home.mkdir()
    stored = asyncio.run(_stored_key(home))
    mock = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    fast, fast_port = start([*mock, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    slow, slow_port = start([*mock, "--latency-ms", "200"], LOAD_CPU, rb"port (\d+)")
    fast_v1, slow_v1 = (f"http://127.0.0.1:{p}/v1" for p in (fast_port, slow_port))
    config = workdir / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                "fallback_vendors: [backup]",
                "routing_rules:",
                '  - {vendor: slow, priority: 1, condition: {model_pattern: "slow-*"}}',
                "gateway:",
                f"  api_keys: [{{name: bench, key: {KEY}}}]",
                "vendors:",
                *(
                    f"  {name}: {{type: openai, base_url: {url}, api_key: sk-up-0123456789}}"
                    for name, url in (("openai", fast_v1), ("backup", fast_v1), ("slow", slow_v1))
                ),
            ]
        )
    )
    command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
    command += ["--port", "0"]
    env = {"LLMDISPATCHER_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    gateway, url = start(command, GATEWAY_CPU, rb"listening on (http://\S+)", env)
    fast_url = f"http://127.0.0.1:{fast_port}"
    proxy, proxy_port = start([*mock, "--proxy-to", fast_url], GATEWAY_CPU, rb"port (\d+)")
    try:
        yield {
            "gateway": gateway,
            "gateway_url": url,
            "proxy": proxy,
            "proxy_url": f"http://127.0.0.1:{proxy_port}",
            "fast_url": fast_url,
            "slow_url": f"http://127.0.0.1:{slow_port}",
            "stored_key": stored,
        }
    finally:
        for proc in (gateway, proxy, fast, slow):
            proc.send_signal(signal.SIGTERM)
        for proc in (gateway, proxy, fast, slow):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- wrk ----------------------------------------------------------------------------------------
def lua(workdir: Path, name: str, body: dict[str, object], key: str = KEY) -> Path:
    path = workdir / f"{name}.lua"
    text = orjson.dumps(body).decode().replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        f"wrk.body = '{text}'\n"
    )
    return path


def wrk(url: str, script: Path, conc: int, seconds: float, pid: int | None = None) -> Wrk:
    command = [
        "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s",
        "-s", str(script), f"{url}/v1/chat/completions",
    ]  # fmt: skip
    before = cpu_seconds(pid) if pid else 0.0
    done = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), *command], capture_output=True, text=True, check=True
    )
    used = cpu_seconds(pid) - before if pid else None
    out = done.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Wrk(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        requests=requests,
        p50_ms=_ms(re.search(r"50%\s+([\d.]+)(us|ms|s)", out)),
        p99_ms=_ms(re.search(r"99%\s+([\d.]+)(us|ms|s)", out)),
        errors=errors,
        cpu_us=None if used is None else used / max(1, requests) * 1e6,
    )


def _ms(found: re.Match[str] | None) -> float:
    if found is None:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# --- time to first token --------------------------------------------------------------------------
async def ttft(url: str, count: int, key: str) -> list[float]:
    """Sequential streamed requests; seconds from sending to the first content token."""
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    found: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", data=body, headers=headers) as r:
                seen = b""
                async for chunk in r.content.iter_any():
                    seen += chunk
                    if b'"content":"token0' in seen and not found[len(found) :]:
                        found.append(time.perf_counter() - started)
                if not seen.endswith(b"data: [DONE]\n\n"):
                    raise RuntimeError(f"stream from {url} did not finish: {seen[-200:]!r}")
    return found


def ttft_pair(direct: str, gateway: str, count: int, key: str) -> tuple[float, float]:
    pin(LOAD_CPU)
    d = asyncio.run(ttft(direct, count, key))
    g = asyncio.run(ttft(gateway, count, key))
    return statistics.median(d) * 1000, statistics.median(g) * 1000


# --- the run ------------------------------------------------------------------------------------
def row(label: str, direct: Wrk, gateway: Wrk) -> str:
    cpu = f"{gateway.cpu_us:7.0f}" if gateway.cpu_us is not None else "      -"
    return (
        f"{label:<28}{direct.rps:9.0f}{gateway.rps:9.0f}{gateway.rps / direct.rps:7.2f}x"
        f"{direct.p50_ms:8.2f}{gateway.p50_ms:8.2f}{direct.p99_ms:8.2f}{gateway.p99_ms:8.2f}"
        f"{cpu}{gateway.errors + direct.errors:6d}"
    )


CELLS = (  # label, body, concurrency, upstream ("fast" or "slow")
    ("post c=1", "post", 1, "fast"),
    ("post c=16", "post", 16, "fast"),
    ("post c=64", "post", 64, "fast"),
    ("stream 20 chunks c=16", "stream", 16, "fast"),
    ("256 in flight, 200 ms mock", "slow", 256, "slow"),
)
HEADER = (
    f"{'cell':<28}{'direct':>9}{'gateway':>9}{'ratio':>8}{'p50 d':>8}{'p50 g':>8}"
    f"{'p99 d':>8}{'p99 g':>8}{'cpu us':>7}{'errs':>6}"
)


def scripts(workdir: Path, key: str = KEY) -> dict[str, Path]:
    post = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 128}
    return {
        "post": lua(workdir, "post", post, key),
        "stream": lua(
            workdir, "stream", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}, key
        ),
        "slow": lua(workdir, "slow", {"model": "slow-model", "messages": MESSAGES}, key),
    }


def run_cells(
    s: dict[str, object], lua_files: dict[str, Path], seconds: float
) -> dict[str, tuple[Wrk, Wrk]]:
    gw, pid = str(s["gateway_url"]), _pid(s["gateway"])
    print(HEADER)
    results = {}
    for label, script, conc, upstream in CELLS:
        direct = wrk(str(s[f"{upstream}_url"]), lua_files[script], conc, seconds)
        through = wrk(gw, lua_files[script], conc, seconds, pid)
        results[label] = (direct, through)
        print(row(label, direct, through), flush=True)
    return results


def run_proxy(
    s: dict[str, object],
    lua_files: dict[str, Path],
    seconds: float,
    results: dict[str, tuple[Wrk, Wrk]],
) -> None:
    print("\nthe same cells through a bare aiohttp pass-through proxy on the gateway's CPU:")
    for label, script, conc, _ in CELLS[:4]:
        bare = wrk(str(s["proxy_url"]), lua_files[script], conc, seconds, _pid(s["proxy"]))
        gateway = results[label][1]
        cpu_ratio = (gateway.cpu_us or 0) / (bare.cpu_us or 1)
        print(
            f"{label:<28}proxy {bare.rps:7.0f} req/s, {bare.cpu_us:4.0f} us CPU, p50 "
            f"{bare.p50_ms:.2f} ms; gateway/proxy: throughput {gateway.rps / bare.rps:.2f}x, "
            f"CPU {cpu_ratio:.2f}x",
            flush=True,
        )


def soak(url: str, script: Path, pid: int, total: int, round_s: float) -> tuple[int, float, int]:
    """At least ``total`` requests at c=64 in ``round_s`` rounds: (requests, CPU us per
    request, errors)."""
    done, cpu_us, errors = 0, 0.0, 0
    while done < total:
        found = wrk(url, script, 64, round_s, pid)
        done += found.requests
        cpu_us += (found.cpu_us or 0) * found.requests
        errors += found.errors
    return done, cpu_us / done, errors


def _pid(proc: object) -> int:
    assert isinstance(proc, subprocess.Popen)
    return proc.pid


@dataclass(frozen=True)
class Plan:
    """How long each part runs: the full run, ``--quick`` or ``--smoke``."""

    seconds: float
    ttft_count: int
    soak_requests: int
    soak_round_s: float
    proxy: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        if args.smoke:
            return cls(1.0, 20, 1, 1.0, proxy=False)
        if args.quick:
            return cls(3.0, 100, args.soak or 40_000, 10.0, proxy=True)
        return cls(8.0, 300, args.soak or 200_000, 10.0, proxy=True)


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset: apt-get install -y wrk util-linux", file=sys.stderr)
        return 2
    plan = Plan.of(args)
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as s:
        key = str(s["stored_key"])
        lua_files, pid = scripts(Path(tmp), key), _pid(s["gateway"])
        gw, fast = str(s["gateway_url"]), str(s["fast_url"])
        idle_rss = rss_mib(pid)
        warm = wrk(gw, lua_files["post"], 16, 2, pid)  # warm up: connections, first imports
        warm_rss = rss_mib(pid)
        where = f"gateway on CPU {GATEWAY_CPU}, mocks and load on CPU {LOAD_CPU}"
        print(
            f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {where}; "
            f"{plan.seconds:g} s/cell; load average {os.getloadavg()[0]:.2f}; a stored key, "
            "the ledger on\n"
        )
        results = run_cells(s, lua_files, plan.seconds)
        if plan.proxy:
            run_proxy(s, lua_files, plan.seconds, results)
        ttft_d, ttft_g = ttft_pair(fast, gw, plan.ttft_count, key)
        print(f"\ntime to first token, p50 of {plan.ttft_count} sequential streams: direct "
              f"{ttft_d:.2f} ms, gateway {ttft_g:.2f} ms, "
              f"added {ttft_g - ttft_d:.2f} ms")  # fmt: skip
        before = rss_mib(pid)
        soaked, soak_cpu, soak_errors = soak(
            gw, lua_files["post"], pid, plan.soak_requests, plan.soak_round_s
        )
        after = rss_mib(pid)
        growth = (after / before - 1) * 100
        print(f"RSS: idle {idle_rss:.1f} MiB, after warm-up {warm_rss:.1f} MiB; over a soak of "
              f"{soaked} requests {before:.1f} -> {after:.1f} MiB ({growth:+.1f} %), "
              f"{soak_cpu:.0f} us CPU/request")  # fmt: skip
        summary(results, ttft_g - ttft_d, idle_rss, before, after)
    errors = warm.errors + soak_errors + sum(d.errors + g.errors for d, g in results.values())
    print(f"\nerrors: {errors}")
    return 1 if errors else 0


def summary(
    results: dict[str, tuple[Wrk, Wrk]], ttft_added: float, idle: float, before: float, after: float
) -> None:
    c1_d, c1_g = results["post c=1"]
    c64, stream = results["post c=64"][1], results["stream 20 chunks c=16"][1]
    slow_d, slow_g = results["256 in flight, 200 ms mock"]
    p50, p99 = c1_g.p50_ms - c1_d.p50_ms, c1_g.p99_ms - c1_d.p99_ms
    cpu, share, growth = c64.cpu_us or float("inf"), slow_g.rps / slow_d.rps, after / before - 1
    checks = [
        ("req/s at c=64 >= 5000", f"{c64.rps:.0f}", c64.rps >= 5000),
        ("gateway CPU/request <= 200 us", f"{cpu:.0f} us", cpu <= 200),
        ("stream CPU <= 300 us", f"{stream.cpu_us or 0:.0f} us", (stream.cpu_us or 0) <= 300),
        ("added p50 at c=1 <= 0.35 ms", f"{p50:.2f} ms", p50 <= 0.35),
        ("added p99 at c=1 <= 1.5 ms", f"{p99:.2f} ms", p99 <= 1.5),
        ("added time to first token <= 0.3 ms", f"{ttft_added:.2f} ms", ttft_added <= 0.3),
        ("256 in flight >= 95 % of direct", f"{share * 100:.1f} %", share >= 0.95),
        ("idle RSS <= 60 MiB", f"{idle:.1f} MiB", idle <= 60),
        ("RSS growth over the soak < 10 %", f"{growth * 100:+.1f} %", growth < 0.1),
    ]
    print("\ntarget (issue #21)                    measured      met")
    for name, value, met in checks:
        print(f"{name:<38}{value:>12}  {'yes' if met else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short cells and soak")
    parser.add_argument("--smoke", action="store_true", help="1 s cells, no soak (CI)")
    parser.add_argument(
        "--soak", type=int, help="requests in the RSS soak (200,000; issue #21's: 1000000)"
    )
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
