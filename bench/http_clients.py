"""Which HTTP client for the vendor adapters, and why our own: ours, aiohttp, pyreqwest or httpx?

One run measures the four against the same local upstream (an aiohttp.web + uvloop server in
a separate process pinned to CPU 1; the client is pinned to CPU 0) and prints ratios:

    .venv/bin/python bench/http_clients.py            # full run, < 90 s
    .venv/bin/python bench/http_clients.py --quick    # ~10 s smoke run

Clients, each pooled, reused and HTTP/1.1: "ours" (``llmdispatcher.vendors.http.HttpClient``,
asyncio transports + httptools, what the vendor adapters use: with its proxy support and its
default ``ResponseBounds`` and process-wide ``BUFFERS`` budget, as the gateway runs it),
aiohttp.ClientSession, pyreqwest (Rust: reqwest + hyper on a tokio runtime thread; its default
single-threaded runtime, so its CPU includes that thread) and httpx.AsyncClient. Cells:
non-streaming POST at concurrency 1, 16, 64 (body read and orjson-parsed) and SSE streaming at
concurrency 16 (raw chunks split into lines, ``data:`` lines counted), on uvloop; plus ours,
aiohttp and pyreqwest at c=64 on the default asyncio loop (uvloop is optional for the gateway).
Cells alternate over ``--repeats`` rounds (median reported), each capped so the run fits
``--budget``. "srv cpu" is the upstream's CPU during a cell: near 100 % means the upstream was
the limit and throughput ratios understate the gap.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing.connection import Connection

import aiohttp
import httptools
import httpx
import orjson
import uvloop
from aiohttp import web
from pyreqwest.client import ClientBuilder

from llmdispatcher.vendors.http import HttpClient, HttpOptions

HOST, PATH = "127.0.0.1", "/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
RESPONSE = orjson.dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1764115200,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0123456789",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "refusal": None,
                    "content": "The quick brown fox jumps over the lazy dog. " * 7,
                },
            }
        ],
        "usage": {"prompt_tokens": 57, "completion_tokens": 73, "total_tokens": 130},
    }
)
SSE = [
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": 1764115200,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": {"content": f"token{i} "}, "finish_reason": None}],
        }
    )
    + b"\n\n"
    for i in range(20)
] + [b"data: [DONE]\n\n"]
_MESSAGES = [
    {"role": "system", "content": "You are a terse assistant. Answer in one line."},
    {"role": "user", "content": "Summarise the plot of Hamlet for a busy reader, " * 3},
]
REQUEST = orjson.dumps({"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 128})
STREAM_REQUEST = orjson.dumps({"model": "gpt-4o-mini", "messages": _MESSAGES, "stream": True})

Call = Callable[[], Awaitable[None]]
Calls = Callable[[str, int], AbstractAsyncContextManager[tuple[Call, Call]]]
Spec = tuple[str, str, str, int]  # client, loop, mode, concurrency


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        with suppress(OSError):
            os.sched_setaffinity(0, {cpu})


# --- upstream (separate process) -------------------------------------------------------------


async def _handle(request: web.Request) -> web.StreamResponse:
    if not orjson.loads(await request.read()).get("stream"):
        return web.Response(body=RESPONSE, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in SSE:
        await response.write(chunk)
    await response.write_eof()
    return response


async def _serve_forever(conn: Connection) -> None:
    app = web.Application()
    app.router.add_post(PATH, _handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0, backlog=1024).start()
    conn.send(runner.addresses[0][1])
    await asyncio.Event().wait()


def _upstream(conn: Connection) -> None:
    _pin(1)
    uvloop.run(_serve_forever(conn))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count_events(lines: int, buf: bytes, chunk: bytes) -> tuple[int, bytes]:
    *done, rest = (buf + chunk).split(b"\n")
    return lines + sum(1 for line in done if line.startswith(b"data:")), rest


def _check(body: bytes) -> None:
    if orjson.loads(body)["object"] != "chat.completion":
        raise RuntimeError("unexpected body")


def _check_events(events: int) -> None:
    if events != len(SSE):
        raise RuntimeError(f"stream: {events} events, expected {len(SSE)}")


def _check_status(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"HTTP {status}")


@asynccontextmanager
async def ours_calls(url: str, conc: int) -> AsyncIterator[tuple[Call, Call]]:
    client = HttpClient("bench", HttpOptions(max_connections=conc))

    async def post() -> None:
        result = await client.request("POST", url, headers=HEADERS, body=REQUEST)
        _check_status(result.status)
        _check(result.body)

    async def stream() -> None:
        events, buf = 0, b""
        async with client.stream("POST", url, headers=HEADERS, body=STREAM_REQUEST) as response:
            _check_status(response.status)
            async for chunk in response.chunks():
                events, buf = _count_events(events, buf, chunk)
        _check_events(events)

    try:
        yield post, stream
    finally:
        await client.aclose()


@asynccontextmanager
async def aiohttp_calls(url: str, conc: int) -> AsyncIterator[tuple[Call, Call]]:
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",)
    ) as session:

        async def post() -> None:
            async with session.post(url, data=REQUEST, headers=HEADERS) as response:
                response.raise_for_status()
                _check(await response.read())

        async def stream() -> None:
            events, buf = 0, b""
            async with session.post(url, data=STREAM_REQUEST, headers=HEADERS) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_any():
                    events, buf = _count_events(events, buf, chunk)
            _check_events(events)

        yield post, stream


@asynccontextmanager
async def httpx_calls(url: str, conc: int) -> AsyncIterator[tuple[Call, Call]]:
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=30) as client:

        async def post() -> None:
            response = await client.post(url, content=REQUEST, headers=HEADERS)
            response.raise_for_status()
            _check(response.content)

        async def stream() -> None:
            events, buf = 0, b""
            async with client.stream(
                "POST", url, content=STREAM_REQUEST, headers=HEADERS
            ) as response:
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    events, buf = _count_events(events, buf, chunk)
            _check_events(events)

        yield post, stream


@asynccontextmanager
async def pyreqwest_calls(url: str, conc: int) -> AsyncIterator[tuple[Call, Call]]:
    builder = ClientBuilder().max_connections(conc).http1_only().error_for_status(True)
    async with builder.build() as client:

        async def post() -> None:
            response = await client.post(url).headers(HEADERS).body_bytes(REQUEST).build().send()
            _check(bytes(await response.bytes()))

        async def stream() -> None:
            events, buf = 0, b""
            request = client.post(url).headers(HEADERS).body_bytes(STREAM_REQUEST)
            async with request.build_streamed() as response:
                reader = response.body_reader
                while (chunk := await reader.read_chunk()) is not None:
                    events, buf = _count_events(events, buf, bytes(chunk))
            _check_events(events)

        yield post, stream


CLIENTS: dict[str, Calls] = {
    "ours": ours_calls,
    "aiohttp": aiohttp_calls,
    "pyreqwest": pyreqwest_calls,
    "httpx": httpx_calls,
}
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@dataclass
class Cell:
    client: str
    loop: str
    mode: str
    conc: int
    runs: list[tuple[float, ...]] = field(default_factory=list)  # n, req/s, cpu us/req, srv %
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r[1] for r in self.runs)

    @property
    def cpu_us(self) -> float:
        return statistics.median(r[2] for r in self.runs)

    def pct(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1e3


async def _drive(call: Call, n: int, conc: int, deadline: float, lat: list[float]) -> int:
    started = 0

    async def worker() -> None:
        nonlocal started
        while started < n and time.perf_counter() < deadline:
            started += 1
            t0 = time.perf_counter()
            await call()
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return started


async def _measure(cell: Cell, url: str, n: int, budget: float, srv_pid: int) -> None:
    async with CLIENTS[cell.client](url, cell.conc) as (post, stream):
        call = stream if cell.mode == "stream" else post
        await _drive(call, max(50, 4 * cell.conc), cell.conc, float("inf"), [])  # warm up
        lat: list[float] = []
        s0, c0, t0 = _cpu_seconds(srv_pid), time.process_time(), time.perf_counter()
        done = await _drive(call, n, cell.conc, t0 + budget, lat)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        srv = _cpu_seconds(srv_pid) - s0
        cell.runs.append((done, done / wall, cpu / done * 1e6, srv / wall * 100))
        if cell.conc == 1:
            cell.latencies += lat


def _import_probe(stmt: str, runs: int) -> tuple[float, float, float]:
    # Peak RSS from VmHWM: getrusage's ru_maxrss survives execve, so it reports our own peak.
    code = (
        "import time; t = time.perf_counter(); " + stmt + "; dt = time.perf_counter() - t; "
        "print(dt, [ln.split()[1] for ln in open('/proc/self/status') if 'VmHWM' in ln][0])"
    )
    imp, wall, rss = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
        wall.append(time.perf_counter() - t0)
        imp.append(float(out[0]))
        rss.append(int(out[1]) / 1024)
    return statistics.median(imp) * 1e3, statistics.median(wall) * 1e3, statistics.median(rss)


def _report(cells: dict[Spec, Cell]) -> None:
    print(
        f"\n{'client':<10}{'loop':<8}{'mode':<7}{'conc':>5}{'n':>6}{'req/s':>9}"
        f"{'cpu us/req':>11}{'srv cpu':>8}{'p50 ms':>8}{'p99 ms':>8}"
    )
    for (client, loop, mode, conc), c in cells.items():
        lat = f"{c.pct(50):>8.2f}{c.pct(99):>8.2f}" if c.latencies else ""
        srv = statistics.median(r[3] for r in c.runs)
        print(
            f"{client:<10}{loop:<8}{mode:<7}{conc:>5}{min(r[0] for r in c.runs):>6.0f}"
            f"{c.rps:>9.0f}{c.cpu_us:>11.0f}{srv:>7.0f}%{lat}"
        )

    def uv(client: str, mode: str, conc: int) -> Cell:
        return cells[client, "uvloop", mode, conc]

    print()
    for mode, conc in [("post", 1), ("post", 16), ("post", 64), ("stream", 16)]:
        o, a, r, h = (uv(c, mode, conc) for c in CLIENTS)
        print(
            f"{mode + ' c=' + str(conc):<12}cpu per request ours/aiohttp "
            f"{o.cpu_us / a.cpu_us:4.2f}x, ours/pyreqwest {o.cpu_us / r.cpu_us:4.2f}x, "
            f"httpx/aiohttp {h.cpu_us / a.cpu_us:5.2f}x; throughput ours/aiohttp "
            f"{o.rps / a.rps:4.2f}x, ours/pyreqwest {o.rps / r.rps:4.2f}x"
        )
    o, a, r, h = (uv(c, "post", 1) for c in CLIENTS)
    print(
        f"{'post c=1':<12}latency p50 ours/aiohttp {o.pct(50) / a.pct(50):4.2f}x, "
        f"ours/pyreqwest {o.pct(50) / r.pct(50):4.2f}x, httpx/aiohttp "
        f"{h.pct(50) / a.pct(50):4.2f}x; p99 ours/aiohttp {o.pct(99) / a.pct(99):4.2f}x, "
        f"ours/pyreqwest {o.pct(99) / r.pct(99):4.2f}x, httpx/aiohttp {h.pct(99) / a.pct(99):4.2f}x"
    )
    for client in ("ours", "aiohttp", "pyreqwest"):
        default = cells[client, "asyncio", "post", 64]
        print(
            f"{'post c=64':<12}{client} uvloop/asyncio-loop throughput "
            f"{uv(client, 'post', 64).rps / default.rps:4.2f}x, cpu per request "
            f"{uv(client, 'post', 64).cpu_us / default.cpu_us:4.2f}x"
        )
    busy = [
        f"{client} {loop} {mode} c={conc} ({max(r[3] for r in c.runs):.0f} %)"
        for (client, loop, mode, conc), c in cells.items()
        if max(r[3] for r in c.runs) > 90
    ]
    if busy:
        print(
            "note: upstream near 100 % CPU in a round of " + ", ".join(busy) + ": their "
            "throughput ratios are a floor"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="~10 s smoke run")
    ap.add_argument("-n", type=int, help="requests per cell (streams: n/3)")
    ap.add_argument("--repeats", type=int, help="alternating rounds; the median is reported")
    ap.add_argument("--budget", type=float, help="seconds for all load cells (each is capped)")
    args = ap.parse_args()
    n = args.n or (300 if args.quick else 3000)
    repeats = args.repeats or (1 if args.quick else 3)
    budget = args.budget or (5.0 if args.quick else 65.0)
    started = time.perf_counter()
    _pin(0)

    print(
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, httpx "
        f"{httpx.__version__}, pyreqwest {version('pyreqwest')}, httptools "
        f"{httptools.__version__}, uvloop {uvloop.__version__}; "
        f"load {os.getloadavg()[0]:.2f}; cpus {os.cpu_count()}, client "
        f"on {sorted(os.sched_getaffinity(0))}; n={n}, repeats={repeats}\n"
    )
    print(f"{'import':<25}{'import ms':>10}{'proc ms':>9}{'maxRSS MB':>11}")
    for label, stmt in [
        ("(bare python)", "pass"),
        ("llmdispatcher.vendors.http", "import llmdispatcher.vendors.http"),
        ("aiohttp", "import aiohttp"),
        ("pyreqwest", "import pyreqwest.client"),
        ("httpx", "import httpx"),
    ]:
        imp, wall, rss = _import_probe(stmt, 5)
        print(f"{label:<25}{imp:>10.1f}{wall:>9.1f}{rss:>11.1f}")

    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=_upstream, args=(child,), daemon=True)
    server.start()
    url = f"http://{HOST}:{parent.recv()}{PATH}"
    specs = [(c, "uvloop", "post", k) for k in (1, 16, 64) for c in CLIENTS]
    specs += [(c, "uvloop", "stream", 16) for c in CLIENTS]
    specs += [(c, "asyncio", "post", 64) for c in ("ours", "aiohttp", "pyreqwest")]
    cells: dict[Spec, Cell] = {spec: Cell(*spec) for spec in specs}
    todo, spent = len(specs) * repeats, 0.0
    try:
        for _ in range(repeats):
            for cell in cells.values():
                cap = max(0.5, (budget - spent) / todo)
                count = n // 3 if cell.mode == "stream" else n
                t0 = time.perf_counter()
                with asyncio.Runner(loop_factory=LOOPS[cell.loop]) as runner:
                    runner.run(_measure(cell, url, count, cap, server.pid or 0))
                spent, todo = spent + time.perf_counter() - t0, todo - 1
    finally:
        server.terminate()
        server.join()

    _report(cells)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
