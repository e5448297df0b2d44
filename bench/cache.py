"""What does a response-cache hit cost through the gateway, against a miss, in one run?

Starts the zero-delay mock upstream (``mock_upstream.py``) and ``llmdispatcher serve`` with a
``memory://`` cache bounded by ``--max-bytes``, then drives the gateway with an aiohttp client
(``--concurrency`` in flight), alternating for ``--rounds`` rounds:

* misses: every request's prompt is new (a counter in it), so each goes upstream and its
  answer is stored, evicting older ones once ``--max-bytes`` is reached;
* hits: the same prompt every time, answered from the cache.

It reports, per kind, the gateway process's CPU per request (user + system from /proc: holds
on a shared machine) and the client's median latency, and the ratio hit / miss. Afterwards it
reads ``/metrics``: the bytes the cache holds must stay within ``--max-bytes``, and evictions
must have happened. The gateway runs pinned to CPU 0, the mock and the client to CPU 1.

    .venv/bin/python bench/cache.py                      # about 30 s
    .venv/bin/python bench/cache.py --requests 200 --rounds 1 --json out.json   # CI smoke

Exits non-zero on an error response, a missing ``x-llmdispatcher-cache`` outcome, or a cache
larger than ``--max-bytes`` (never on timings: the CI machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import GATEWAY_CPU, KEY, LOAD_CPU, MESSAGES, ROOT, cpu_seconds, pin, rss_mib, start


@contextmanager
def servers(workdir: Path, max_bytes: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    mock = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    upstream, port = start([*mock, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    config = workdir / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                f"cache: {{url: 'memory://', max_bytes: {max_bytes}, max_entries: 1000000}}",
                "gateway:",
                f"  api_keys: [{{name: bench, key: {KEY}}}]",
                "vendors:",
                f"  openai: {{type: openai, base_url: 'http://127.0.0.1:{port}/v1',"
                " api_key: sk-up-0123456789}",
            ]
        )
    )
    command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config)]
    gateway, url = start([*command, "--port", "0"], GATEWAY_CPU, rb"listening on (http://\S+)")
    try:
        yield gateway, url
    finally:
        for proc in (gateway, upstream):
            proc.send_signal(signal.SIGTERM)
        for proc in (gateway, upstream):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Problems(list[str]):
    """What went wrong (the smoke fails on any)."""


async def drive(
    session: aiohttp.ClientSession, url: str, kind: str, total: int, conc: int, problems: Problems
) -> list[float]:
    """``total`` requests, ``conc`` in flight: misses (a new prompt each) or hits (one prompt)."""
    counter = itertools.count()
    seconds: list[float] = []

    async def one() -> None:
        while (n := next(counter)) < total:
            prompt = f"miss {n} {time.time_ns()}" if kind == "miss" else "the same question"
            body = {
                "model": "gpt-4o-mini",
                "temperature": 0,
                "messages": [*MESSAGES, {"role": "user", "content": prompt}],
            }
            started = time.perf_counter()
            async with session.post(f"{url}/v1/chat/completions", data=orjson.dumps(body)) as r:
                await r.read()
                outcome = r.headers.get("x-llmdispatcher-cache")
            seconds.append(time.perf_counter() - started)
            if r.status != 200:
                problems.append(f"{kind}: HTTP {r.status}")
            elif outcome != kind and not (kind == "hit" and n < conc):  # the first may miss
                problems.append(f"{kind}: x-llmdispatcher-cache was {outcome!r}")

    await asyncio.gather(*(one() for _ in range(conc)))
    return seconds


def metric(text: str, name: str) -> float:
    line = next((x for x in text.splitlines() if x.startswith(name + " ")), f"{name} nan")
    return float(line.split()[1])


async def measure(args: argparse.Namespace, pid: int, url: str) -> dict[str, object]:
    problems = Problems()
    cpu: dict[str, list[float]] = {"miss": [], "hit": []}
    latency: dict[str, list[float]] = {"miss": [], "hit": []}
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(args.rounds):
            for kind in ("miss", "hit"):
                before = cpu_seconds(pid)
                times = await drive(session, url, kind, args.requests, args.concurrency, problems)
                cpu[kind].append((cpu_seconds(pid) - before) / args.requests * 1e6)
                latency[kind] += times
        async with session.get(f"{url}/metrics") as reply:
            text = await reply.text()
    held, evicted = (
        metric(text, "llmdispatcher_cache_bytes"),
        metric(text, "llmdispatcher_cache_evictions_total"),
    )
    if not held <= args.max_bytes:
        problems.append(f"the cache holds {held:.0f} bytes, over max_bytes {args.max_bytes}")
    miss_cpu, hit_cpu = statistics.median(cpu["miss"]), statistics.median(cpu["hit"])
    return {
        "requests_per_kind": args.requests * args.rounds,
        "miss_cpu_us": round(miss_cpu, 1),
        "hit_cpu_us": round(hit_cpu, 1),
        "hit_over_miss_cpu": round(hit_cpu / miss_cpu, 3),
        "miss_p50_ms": round(statistics.median(latency["miss"]) * 1000, 3),
        "hit_p50_ms": round(statistics.median(latency["hit"]) * 1000, 3),
        "cache_bytes": held,
        "max_bytes": args.max_bytes,
        "evictions": evicted,
        "gateway_rss_mib": round(rss_mib(pid), 1),
        "problems": list(problems[:20]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=256 * 1024)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    pin(LOAD_CPU)
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp), args.max_bytes) as (proc, url):
        result = asyncio.run(measure(args, proc.pid, url))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.write_bytes(orjson.dumps(result))
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
