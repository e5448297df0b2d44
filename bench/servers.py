"""Which HTTP server for the gateway: aiohttp.web (today), Granian (RSGI, ASGI) or uvicorn?

The same pipeline runs behind each server: this module's ``Core`` is the gateway's
non-streaming ``POST /v1/chat/completions`` path without aiohttp: a request id and ``Trace``,
the gateway's ``KeyStore`` (a stored key from the key store's cache, beside a configured one),
``parse_chat``, ``relay.send`` (the key's checks and usage lease, ``Dispatcher.send`` with the
ledger on, metrics), ``completion_body``, the ``x-llmdispatcher-*`` headers, the error table's
body, and settling the stored key's usage (``tenancy.finish``). The ``Gateway`` it uses is
built by ``create_app`` and started by aiohttp's ``AppRunner`` (which loads the key cache),
whichever server then serves it. Only the HTTP layer differs:

* ``aiohttp``: ``aiohttp.web`` with one route and no middleware (the layer a swap replaces);
* ``uvicorn``: uvicorn (``http="httptools"``, uvloop) over an ASGI callable;
* ``granian-rsgi`` / ``granian-asgi``: Granian (Rust, hyper + tokio; one worker, a
  single-threaded runtime, uvloop) over RSGI, or the same ASGI callable;
* ``gateway``: ``llmdispatcher serve`` itself, for reference (its middleware, router,
  response hook: what the others leave out).

One zero-delay mock upstream (``mock_upstream.py``) and wrk run on CPU 1; each server on CPU 0.
Rounds alternate the servers (a fresh process each, 2 s of warm-up) so that drift on a shared
machine hits all alike; medians are reported with their spread. "CPU/request" is the user +
system time of the server's whole process tree (Granian's supervisor and worker) over the
requests wrk completed:

    .venv/bin/python bench/servers.py                       # 3 rounds of 8 s, about 4 minutes
    .venv/bin/python bench/servers.py --rounds 1 --seconds 2

Needs the ``bench`` extra (granian, uvicorn) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workers import tree_cpu

from gateway import (
    GATEWAY_CPU,
    LOAD_CPU,
    ROOT,
    _drain,
    _stored_key,
    free_port,
    lua,
    start,
    wrk,
)
from llmdispatcher.gateway import tenancy
from llmdispatcher.gateway.errors import ApiError, api_error
from llmdispatcher.gateway.openai_api import completion_body, parse_chat
from llmdispatcher.gateway.relay import send
from llmdispatcher.gateway.state import CURRENT, GATEWAY, Trace
from llmdispatcher.gateway.validation import check_depth

SERVERS = ("aiohttp", "uvicorn", "granian-rsgi", "granian-asgi", "gateway")
CONCURRENCY = 64
WARMUP_S = 2.0
Headers = list[tuple[str, str]]


# --- the pipeline every server runs -------------------------------------------------------------
class Core:
    """The gateway's chat-completions path, framework-free; started on the first request."""

    def __init__(self, config_path: str) -> None:
        from llmdispatcher.gateway.app import create_app
        from llmdispatcher.gateway.server import build_dispatcher
        from llmdispatcher.home import key_store_url
        from llmdispatcher.keys import open_key_store

        dispatcher = build_dispatcher(config_path)
        settings = dispatcher.config.gateway
        store = open_key_store(key_store_url(settings.key_store_url, dispatcher.config.ledger_url))
        self.app = create_app(dispatcher, settings, key_store=store)
        self.gateway = self.app[GATEWAY]
        self.prefix, self.counter = os.urandom(6).hex(), itertools.count(1)
        self.started: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """aiohttp's runner runs the app's start-up (the key cache's first load, its poller)
        without serving anything; then ``gc.freeze`` as ``serve_app`` does."""
        from aiohttp import web

        if self.started is None:
            self.started = asyncio.get_running_loop().create_future()
            await web.AppRunner(self.app, handle_signals=False).setup()
            gc.collect()
            gc.freeze()
            self.started.set_result(None)
        await self.started

    async def chat(
        self, authorization: str, content_type: str, raw: bytes
    ) -> tuple[int, bytes, Headers]:
        if self.started is None or not self.started.done():
            await self.start()
        gateway = self.gateway
        trace = Trace(f"{self.prefix}{next(self.counter):012x}", time.perf_counter())
        token = CURRENT.set(trace)
        gateway.metrics.in_flight.inc()
        try:
            request = SimpleNamespace(headers={"Authorization": authorization})
            trace.key = gateway.keys.authenticate(request)  # type: ignore[arg-type]
            if content_type != "application/json":
                raise ApiError(415, "send the body as application/json", code="unsupported_media")
            body = orjson.loads(raw)
            check_depth(raw, body)
            call = parse_chat(body, gateway.settings.passthrough_fields, trace)
            response = await send(gateway, trace, call.request)
            status, out = 200, orjson.dumps(completion_body(response, trace.request_id))
        except Exception as exc:
            found = api_error(exc) or ApiError(500, f"internal error ({trace.request_id})")
            status, out = found.status, orjson.dumps(found.openai_body())
        finally:
            gateway.metrics.in_flight.dec()
            CURRENT.reset(token)
            if trace.lease is not None:
                await tenancy.finish(gateway, trace)
        overhead = trace.overhead_s(time.perf_counter())
        if trace.attempts:
            gateway.metrics.observe_overhead(trace.vendor, trace.model, overhead)
        return status, out, [
            ("content-type", "application/json"),
            ("x-request-id", trace.request_id),
            ("x-llmdispatcher-vendor", trace.vendor),
            ("x-llmdispatcher-model", trace.model),
            ("x-llmdispatcher-attempts", str(trace.attempts)),
            ("x-llmdispatcher-overhead-ms", f"{overhead * 1000:.3f}"),
        ]  # fmt: skip


# --- the servers' adapters (module level: Granian imports them by name) -------------------------
CORE: Core | None = None


def core() -> Core:
    global CORE  # noqa: PLW0603  (Granian's workers import this module and build one each)
    if CORE is None:
        CORE = Core(os.environ["BENCH_SERVERS_CONFIG"])
    return CORE


async def asgi(scope: dict[str, Any], receive: Any, send_: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send_({"type": "lifespan.startup.complete"})
        await send_({"type": "lifespan.shutdown.complete"})
        return
    authorization = content_type = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
    raw, more = b"", True
    while more:
        message = await receive()
        raw += message.get("body", b"")
        more = message.get("more_body", False)
    status, out, headers = await core().chat(authorization, content_type, raw)
    encoded = [(k.encode(), v.encode("latin-1")) for k, v in headers]
    await send_({"type": "http.response.start", "status": status, "headers": encoded})
    await send_({"type": "http.response.body", "body": out})


class Rsgi:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        raw = await protocol()
        headers = scope.headers
        status, out, found = await core().chat(
            headers.get("authorization", ""), headers.get("content-type", ""), raw
        )
        protocol.response_bytes(status, found, out)


rsgi = Rsgi()


def serve_aiohttp(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        status, out, headers = await core().chat(
            request.headers.get("Authorization", ""), request.content_type, raw
        )
        return web.Response(status=status, body=out, headers=dict(headers))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        await asyncio.Event().wait()

    uvloop.run(main())


def serve_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(
        "servers:asgi", host="127.0.0.1", port=port, http="httptools", loop="uvloop",
        access_log=False, log_level="warning", lifespan="on", backlog=2048,
    )  # fmt: skip


# --- the driver ---------------------------------------------------------------------------------


def command_for(server: str, port: int, config: Path) -> list[str]:
    here = [sys.executable, str(Path(__file__).resolve())]
    if server in ("aiohttp", "uvicorn"):
        return [*here, "--serve", server, "--port", str(port)]
    if server == "gateway":
        return [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config),
                "--port", str(port)]  # fmt: skip
    interface = server.split("-")[1]
    return [
        sys.executable, "-m", "granian", "--interface", interface, "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--runtime-mode", "st", "--runtime-threads", "1",
        "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
        "--backlog", "2048", f"servers:{interface}",
    ]  # fmt: skip


@contextmanager
def server(name: str, config: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", str(GATEWAY_CPU), *command_for(name, port, config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(port, proc)
        import threading

        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT if name.startswith("granian") else signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-2000:]}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after 60 s")


def check_answer(url: str, key: str) -> None:
    """One request through the server: a chat completion with the gateway's headers."""
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = orjson.loads(reply.read())
        if answer["object"] != "chat.completion" or not reply.headers["x-llmdispatcher-vendor"]:
            raise RuntimeError(f"{url}: unexpected answer {answer}")


def write_config(workdir: Path, upstream: str) -> Path:
    path = workdir / "gateway.yaml"
    path.write_text(
        "\n".join(
            [
                "fallback_vendors: [backup]",
                "gateway:",
                "  api_keys: [{name: bench, key: sk-bench-configured-0123456789}]",
                "vendors:",
                *(
                    f"  {name}: {{type: openai, base_url: {upstream}/v1, api_key: sk-up-0123}}"
                    for name in ("openai", "backup")
                ),
            ]
        )
        + "\n"
    )
    return path


def run(args: argparse.Namespace) -> int:
    mock_command = [sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", "0"]
    mock, mock_port = start([*mock_command, "--latency-ms", "0"], LOAD_CPU, rb"port (\d+)")
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name in args.servers}
    errors = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "home").mkdir()
            key = asyncio.run(_stored_key(work / "home"))
            config = write_config(work, f"http://127.0.0.1:{mock_port}")
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 128}  # fmt: skip
            script = lua(work, "post", body, key)
            env = {
                "LLMDISPATCHER_HOME": str(work / "home"),
                "BENCH_SERVERS_CONFIG": str(config),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT / "src")]),
            }
            print(f"load average {os.getloadavg()[0]:.2f} at the start; c={CONCURRENCY}, "
                  f"{args.seconds:g} s per cell, {args.rounds} rounds\n")  # fmt: skip
            print(f"{'round':<6}{'server':<14}{'req/s':>8}{'CPU/req us':>11}{'p50 ms':>8}"
                  f"{'errs':>6}{'load':>6}")  # fmt: skip
            for round_ in range(args.rounds):
                for name in args.servers:
                    with server(name, config, env) as (url, pid):
                        check_answer(url, key)
                        wrk(url, script, CONCURRENCY, WARMUP_S)
                        _, before = tree_cpu(pid)
                        cell = wrk(url, script, CONCURRENCY, args.seconds)
                        _, after = tree_cpu(pid)
                    cpu_us = (after - before) / max(1, cell.requests) * 1e6
                    found[name].append((cell.rps, cpu_us, cell.p50_ms))
                    errors += cell.errors
                    print(f"{round_ + 1:<6}{name:<14}{cell.rps:8.0f}{cpu_us:11.0f}"
                          f"{cell.p50_ms:8.2f}{cell.errors:6d}{os.getloadavg()[0]:6.2f}",
                          flush=True)  # fmt: skip
    finally:
        mock.send_signal(signal.SIGTERM)
        mock.wait(15)
    report(found, args.servers[0])
    print(f"\nerrors: {errors}; load average {os.getloadavg()[0]:.2f} at the end")
    return 1 if errors else 0


def report(found: dict[str, list[tuple[float, float, float]]], base: str) -> None:
    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in found[name])

    def spread(name: str, i: int) -> str:
        values = [r[i] for r in found[name]]
        return f"{min(values):.0f}-{max(values):.0f}"

    print(f"\nmedians ({base} = 1.00)")
    print(f"{'server':<14}{'req/s':>8}{'range':>13}{'CPU/req us':>11}{'range':>11}"
          f"{'req/s x':>9}{'CPU x':>7}")  # fmt: skip
    for name in found:
        print(f"{name:<14}{med(name, 0):8.0f}{spread(name, 0):>13}{med(name, 1):11.0f}"
              f"{spread(name, 1):>11}{med(name, 0) / med(base, 0):9.2f}"
              f"{med(name, 1) / med(base, 1):7.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--serve", choices=("aiohttp", "uvicorn"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aiohttp":
        serve_aiohttp(args.port)
    elif args.serve == "uvicorn":
        serve_uvicorn(args.port)
    else:
        sys.exit(run(args))


if __name__ == "__main__":
    main()
