"""Running the gateway: one process, or ``workers`` processes sharing one port.

* **One worker** binds, logs ``listening on http://HOST:PORT``, serves until SIGTERM or SIGINT,
  then drains: ``/readyz`` answers 503 at once while requests are still served for
  ``drain_s`` (so a load balancer notices and stops sending; a second signal cuts it short);
  then it stops accepting, lets in-flight requests and streams finish for up to
  ``shutdown_grace_s`` (then cancels them, which hangs up on their vendors) and closes the
  vendor connections. uvloop is used when it is installed.
* **N workers** (``--workers N``): the parent reserves the port, then starts N processes that
  each bind it with ``SO_REUSEPORT`` (the kernel spreads connections across them) and build
  their own dispatcher from the same config. The parent forwards SIGTERM/SIGINT, waits for the
  workers' graceful shutdown and restarts a worker that dies on its own.

What workers share: the port, the config, the Prometheus metrics (each worker writes to a
``PROMETHEUS_MULTIPROC_DIR`` the parent creates, and ``/metrics`` on any worker reports the
sum), and rate limits and budgets: through the config's ``state_url``, or, when that is the
default ``memory://`` (which one process cannot share), through a SQLite file in the parent's
run directory, so that N workers never grant N times a limit. ``/api/v1/stats``: each worker
publishes its statistics to the run directory about once a second (``worker_stats``), and any
worker answers with its own merged with the others', which lag by up to ~1 s. With a ``redis://``
``state_url`` they (and every other replica) also share breaker openings and latency health
(``routing.shared_health``); otherwise each worker learns those itself. Never shared: retry
budgets and the model cache.

Exposure: without API keys the gateway listens only on loopback unless
``allow_unauthenticated`` says otherwise (``check_exposure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from ..config import Config, GatewayConfig
from ..dispatcher import Dispatcher
from ..errors import ConfigError
from ..home import ledger_url
from ..settings.tracing import OTLP_ENV, Tracing
from ..vendors.heap import HEAP
from .app import create_app
from .auth import digests_only
from .health import READINESS, Readiness
from .origin import is_loopback
from .worker_stats import WORKER_STATS, WorkerStats

logger = logging.getLogger("llmdispatcher.gateway")
BACKLOG = 2048
RESTART_PAUSE_S = 1.0
RESTARTS_PER_WORKER = 5  # then the supervisor gives up: something is wrong beyond one worker


def check_exposure(settings: GatewayConfig) -> None:
    """Refuse a non-loopback host without API keys (configured, or managed through the admin
    API), unless told to allow it."""
    if settings.api_keys or settings.allow_unauthenticated or is_loopback(settings.host):
        return
    if settings.admin_key is not None or settings.admin_key_sha256 is not None:
        return  # keys are managed at run time: the gateway requires one from the start
    raise ConfigError(
        f"refusing to listen on {settings.host} without API keys: anyone who can reach it could "
        "spend your vendor credits. Add gateway.api_keys (or LLMDISPATCHER_API_KEYS), listen on "
        "127.0.0.1, or pass --allow-unauthenticated"
    )


def build_dispatcher(config_path: str | None, shared_state: str | None = None) -> Dispatcher:
    """The dispatcher a worker serves: the config file's, else ``Dispatcher.from_env()``.
    ``shared_state`` replaces the state backend (the supervisor passes one only when the config
    leaves it at ``memory://``, which its workers could not share)."""
    config = Config() if config_path is None else Config.from_file(config_path)
    config = replace(
        config,
        gateway=digests_only(config.gateway),  # no plain keys kept
        ledger_url=ledger_url(config.ledger_url),  # the data directory's, unless configured
    )
    if shared_state is not None:
        config = replace(config, state_url=shared_state)
    if config.tracing is None and any(os.environ.get(name) for name in OTLP_ENV):
        config = replace(config, tracing=Tracing())  # configured the standard way
    if config_path is None:
        return Dispatcher.from_env(config)
    dispatcher = Dispatcher(config)
    if not dispatcher.vendors:
        raise ConfigError(f"{config_path}: no vendors: add one under `vendors:`")
    return dispatcher


def describe(dispatcher: Dispatcher, config_path: str | None) -> str:
    """The first log line: what is being served, and from where."""
    vendors = ", ".join(dispatcher.vendors)
    if dispatcher.notices:
        return f"serving the embedded default: {' '.join(dispatcher.notices)}"
    if config_path is None:
        return f"no config file: serving the vendors found in the environment ({vendors})"
    return f"serving {config_path} (vendors: {vendors})"


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.setblocking(False)
    return sock


def configure_logging(log_format: str = "text") -> None:
    if log_format == "json":
        from .access_log import configure_json_logging

        configure_json_logging()
        return
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s llmdispatcher[%(process)d]: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


# --- one process ----------------------------------------------------------------------------
def run_worker(
    config_path: str | None,
    settings: GatewayConfig,
    *,
    reuse_port: bool = False,
    shared_state: str | None = None,
    stats_dir: str | None = None,
) -> None:
    """Serve in this process until SIGTERM/SIGINT, then shut down gracefully. ``stats_dir``:
    where the workers of one gateway publish their statistics (``worker_stats``)."""
    HEAP.tune()  # large vendor answers give their memory back once freed (vendors/heap.py)
    # config errors surface before logging starts
    dispatcher = build_dispatcher(config_path, shared_state)
    configure_logging(settings.log_format)
    logger.info("%s", describe(dispatcher, config_path))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_app(dispatcher, settings, reuse_port=reuse_port, stats_dir=stats_dir))


async def serve_app(
    dispatcher: Dispatcher,
    settings: GatewayConfig,
    *,
    reuse_port: bool,
    stats_dir: str | None = None,
) -> None:
    from ..home import key_store_url
    from ..keys import open_key_store

    store_url = key_store_url(settings.key_store_url, dispatcher.config.ledger_url)
    app = create_app(dispatcher, settings, key_store=open_key_store(store_url))
    shared = None if stats_dir is None else WorkerStats(stats_dir, dispatcher.stats_collector)
    if shared is not None:
        app[WORKER_STATS] = shared
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,  # a client that hangs up cancels its upstream request
        shutdown_timeout=settings.shutdown_grace_s,
        keepalive_timeout=settings.header_timeout_s,
    )
    await runner.setup()
    # Everything built so far (modules, config, price table, metrics registry) lives as long as
    # the process: out of the collector's generations, full collections stop re-scanning it
    # under load (measured: about 9% less CPU per request at concurrency 64).
    gc.collect()
    gc.freeze()
    signals = _Signals()
    if shared is not None:
        shared.start()
    try:
        sock = bind(settings.host, settings.port, reuse_port=reuse_port)
        await web.SockSite(runner, sock, backlog=BACKLOG).start()
        host, port = sock.getsockname()[:2]
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        logger.info(
            "listening on http://%s:%s (pid %d, %s loop)", _url_host(host), port, os.getpid(), loop
        )
        await signals.first.wait()
        await _drain(app[READINESS], settings.drain_s, signals.second)
        logger.info(
            "shutting down: no new connections; in-flight requests get up to %gs",
            settings.shutdown_grace_s,
        )
    finally:
        await runner.cleanup()
        if shared is not None:
            await shared.stop()  # after the in-flight requests: nothing served goes unreported
        await dispatcher.aclose()
        _ignore_signals()
    logger.info("stopped")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Signals:
    """``first`` is set by the first SIGTERM/SIGINT, ``second`` by the next (which ends the
    drain at once); later ones are ignored while shutting down."""

    def __init__(self) -> None:
        self.first, self.second = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received)

    def _received(self) -> None:
        (self.second if self.first.is_set() else self.first).set()


async def _drain(readiness: Readiness, drain_s: float, cut_short: asyncio.Event) -> None:
    """``/readyz`` says 503 from now on; requests are still served for ``drain_s``."""
    readiness.drain()
    if drain_s <= 0:
        return
    logger.info(
        "draining: /readyz answers 503, requests are still served for %gs (signal again to stop "
        "now)",
        drain_s,
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_s):
            await cut_short.wait()


def _ignore_signals() -> None:
    """Stopped: a late SIGTERM/SIGINT must not turn a clean exit into a death by signal."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


# --- N workers --------------------------------------------------------------------------------
def _worker_main(
    config_path: str | None, settings: GatewayConfig, shared_state: str | None, stats_dir: str
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(
            config_path, settings, reuse_port=True, shared_state=shared_state, stats_dir=stats_dir
        )


class Supervisor:
    """Starts the workers, forwards signals, restarts a worker that dies on its own."""

    def __init__(
        self,
        config_path: str | None,
        settings: GatewayConfig,
        shared_state: str | None,
        stats_dir: str,
    ) -> None:
        self.config_path = config_path
        self.settings = settings
        self.shared_state = shared_state
        self.stats_dir = stats_dir
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.stopping = False
        self.restarts_left = RESTARTS_PER_WORKER * settings.workers

    def start_one(self) -> BaseProcess:
        process = self.context.Process(
            target=_worker_main,
            args=(self.config_path, self.settings, self.shared_state, self.stats_dir),
            daemon=False,
        )
        process.start()
        return process

    def stop(self, *_: Any) -> None:
        self.stopping = True
        for process in self.workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.workers = [self.start_one() for _ in range(self.settings.workers)]
        while any(p.is_alive() for p in self.workers):
            wait([p.sentinel for p in self.workers if p.is_alive()], timeout=1.0)
            if not self.stopping:
                self._restart_dead()
        return 0 if all(p.exitcode == 0 for p in self.workers) else 1

    def _restart_dead(self) -> None:
        for i, process in enumerate(self.workers):
            if process.is_alive():
                continue
            _mark_dead(process.pid)
            if self.restarts_left == 0:
                logger.error("workers keep dying; stopping the others")
                self.stop()
                return
            self.restarts_left -= 1
            logger.warning("worker %s exited with %s; restarting it", process.pid, process.exitcode)
            time.sleep(RESTART_PAUSE_S)
            self.workers[i] = self.start_one()


def _mark_dead(pid: int | None) -> None:
    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def run_workers(config_path: str | None, settings: GatewayConfig) -> int:
    """Reserve the port, start the workers, supervise them until a signal stops them all."""
    # fail here, once, on a file the workers cannot load
    state_url = (Config() if config_path is None else Config.from_file(config_path)).state_url
    configure_logging(settings.log_format)
    reserved = bind(settings.host, settings.port, reuse_port=True)  # bound, never listening
    port = reserved.getsockname()[1]
    run_dir = tempfile.mkdtemp(prefix="llmdispatcher-workers-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(run_dir, "metrics")
    os.mkdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    stats_dir = os.path.join(run_dir, "stats")
    os.mkdir(stats_dir)
    # one dashboard session key for every worker (gateway/ui/session.py), unless one is given
    os.environ.setdefault("LLMDISPATCHER_UI_SECRET", secrets.token_hex(32))
    shared_state = None
    if state_url.startswith("memory:"):
        shared_state = f"sqlite:///{os.path.join(run_dir, 'state.db')}"
        logger.info(
            "the workers share rate limits and budgets through %s (set state_url to a redis:// "
            "URL to share them across hosts)",
            shared_state,
        )
    logger.info(
        "listening on http://%s:%s (%d workers)",
        _url_host(settings.host),
        port,
        settings.workers,
    )
    try:
        settings = replace(settings, port=port)
        return Supervisor(config_path, settings, shared_state, stats_dir).run()
    finally:
        reserved.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def serve(config_path: str | None, settings: GatewayConfig) -> int:
    """Run the gateway as ``settings`` says; the exit code."""
    check_exposure(settings)
    if settings.workers == 1:
        run_worker(config_path, settings)
        return 0
    return run_workers(config_path, settings)
