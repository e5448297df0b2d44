"""Shared machinery of the fake vendor servers.

A ``FakeServer`` runs an ``aiohttp.web`` app on 127.0.0.1 (ephemeral port) in a background thread
with its own event loop, so sync SDK clients and async code in the pytest loop both reach it over
real HTTP. It records every request, serves a FIFO queue of scripted steps (``script.py``) and
counts client hang-ups. Vendor subclasses only route requests, validate them and render the steps:

* ``match(method, path)`` -> handler or None (``routes()`` gives exact ``(METHOD, path)`` matches),
* ``unknown_route(call)``, ``response_headers(call)``,
* ``error_response(call, fail)``, ``reply_response(call, reply)``,
* ``stream_plan(call, reply)`` -> ``StreamPlan(head, content, tail)`` of wire frames,
* ``stream_error_frame(call, kind)``, ``stream_content_type``.

A handler answers ``take_fail()`` first (scripted failures win over auth/validation), then checks
auth and validates, sets ``call.stream`` and returns ``await self.run_step(call)``.

``set_chaos(Chaos(...))`` turns on chaos mode (``chaos.py``): every valid model request is then
answered by the chaos engine (faults at set rates, else a unique checkable reply), requests are
counted instead of recorded, and ``GET /_chaos`` reports what was served.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from .chaos import Chaos, ChaosEngine
from .script import BreakStream, Fail, MidStreamError, Reply, Stall, Step

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]
_POLL_S = 0.01  # how often a waiting handler checks whether the client hung up


@dataclass
class Recorded:
    """One request as the fake received it (header names lowercased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes = b""
    target: str = ""  # the request line's target exactly as sent (path and query, not decoded)


@dataclass
class StreamPlan:
    """A streamed answer as wire frames: ``head`` (status-carrying opening events), ``content``
    (one frame per text/tool delta; what ``after_chunks`` counts) and ``tail`` (finish, usage and
    terminal events)."""

    head: list[bytes] = field(default_factory=list)
    content: list[bytes] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)


@dataclass
class Call:
    """Per-request state handed to the vendor handlers."""

    request: web.Request
    record: Recorded
    generation: int
    json_ok: bool = True
    stream: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    hung_up: bool = False
    dropped: bool = False

    @property
    def body(self) -> Any:
        return self.record.json


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FakeServer:
    """Threaded aiohttp server with a step queue, request log and hang-up counter."""

    stream_content_type = "text/event-stream; charset=utf-8"

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.default: Step = Reply()
        self._initial_api_key = api_key
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Step] = deque()
        self._requests: list[Recorded] = []
        self._disconnects = 0
        self._generation = 0
        self._stopping = False
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._start_error: BaseException | None = None
        self._site: web.TCPSite | None = None
        self._refusing = False
        self.chaos: ChaosEngine | None = None

    def set_chaos(self, config: Chaos | None) -> Self:
        """Answer model requests with ``config``'s faults and unique replies (None: off)."""
        self.chaos = ChaosEngine(config) if config is not None else None
        return self

    # ----------------------------------------------------------------- lifecycle (test thread)
    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or self._start_error is not None:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._start_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._stopping = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, no ``/v1``)."""
        if self._thread is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self._port}"

    # ---------------------------------------------------------------- scripting (test thread)
    def enqueue(self, *steps: Step) -> None:
        """Queue steps; each answers exactly one model request, in order."""
        for step in steps:
            if not isinstance(step, Reply | Fail | BreakStream | MidStreamError | Stall):
                raise TypeError(f"not a script step: {step!r}")
        with self._cond:
            self._queue.extend(steps)

    @property
    def pending(self) -> int:
        """How many enqueued steps have not been used yet."""
        with self._cond:
            return len(self._queue)

    def next_step(self) -> Step:
        with self._cond:
            return self._queue.popleft() if self._queue else self.default

    def take_fail(self) -> Fail | None:
        """Pop the next step if it is a ``Fail``. Handlers call this before auth and validation:
        a scripted failure answers whatever request comes next, while replies/streams/stalls
        only answer requests the real API would accept."""
        with self._cond:
            head = self._queue[0] if self._queue else None
            if isinstance(head, Fail):
                self._queue.popleft()
                return head
            return None

    def reset(self) -> None:
        """Forget queue, records and hang-ups; restore the default reply and API key. Requests
        still waiting inside the fake (stalls) are cut off and not counted as hang-ups."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self._disconnects = 0
            self._generation += 1
            self.default = Reply()
            self.api_key = self._initial_api_key

    @property
    def requests(self) -> list[Recorded]:
        with self._cond:
            return list(self._requests)

    @property
    def last_request(self) -> Recorded:
        with self._cond:
            if not self._requests:
                raise AssertionError(f"{type(self).__name__} received no request")
            return self._requests[-1]

    @property
    def disconnects(self) -> int:
        with self._cond:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Block until the fake has seen ``count`` client hang-ups (since the last reset).
        In an async test use ``wait_for_disconnect_async``: blocking the running loop stops an
        asyncio client from actually closing its socket (asyncio closes it on the next tick)."""
        with self._cond:
            seen = self._cond.wait_for(lambda: self._disconnects >= count, timeout)
        if not seen and _loop_running():
            warnings.warn(
                "wait_for_disconnect() blocked a running event loop, so an asyncio client could "
                "not close its socket; use `await fake.wait_for_disconnect_async()`",
                RuntimeWarning,
                stacklevel=2,
            )
        return seen

    async def wait_for_disconnect_async(self, timeout: float = 2.0, count: int = 1) -> bool:  # noqa: ASYNC109
        return await asyncio.to_thread(self.wait_for_disconnect, timeout, count)

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= count, timeout)

    # -------------------------------------------------------------- vendor hooks (override)
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {}

    def match(self, method: str, path: str) -> Handler | None:
        return self.routes().get((method, path))

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return web.json_response({"error": "not found"}, status=404)

    def response_headers(self, call: Call) -> dict[str, str]:
        return {}

    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        raise NotImplementedError

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        raise NotImplementedError

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        raise NotImplementedError

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        raise NotImplementedError

    # ----------------------------------------------------------------- step engine (loop thread)
    async def run_step(self, call: Call, step: Step | None = None) -> web.StreamResponse:
        """Answer ``call`` with the next scripted step (or ``step``)."""
        if self.chaos is not None and not call.meta.get("chaos"):
            call.meta["chaos"] = True
            return await self.chaos.answer(self, call)
        step = self.next_step() if step is None else step
        if isinstance(step, Fail):
            return self.error_response(call, step)
        if isinstance(step, Reply):
            if step.delay_s > 0 and not await self.sleep(call, step.delay_s):
                return self.drop(call)
            if not call.stream:
                resp = self.reply_response(call, step)
                resp.headers.update(step.headers)
                return resp
            return await self._stream(call, self.stream_plan(call, step), headers=step.headers)
        if isinstance(step, BreakStream):
            if not call.stream:
                return self.drop(call)
            plan = self.stream_plan(call, Reply(text=step.text, chunk_size=step.chunk_size))
            return await self._stream(call, plan, cut=step.after_chunks, then="drop")
        if isinstance(step, MidStreamError):
            if not call.stream:
                return self.error_response(call, Fail(step.kind))
            plan = self.stream_plan(call, Reply(text=step.text, chunk_size=step.chunk_size))
            frame = self.stream_error_frame(call, step.kind)
            return await self._stream(call, plan, cut=step.after_chunks, then="error", frame=frame)
        # Stall
        after = self.default if isinstance(self.default, Reply) else Reply()
        if call.stream and step.after_chunks > 0:
            plan = self.stream_plan(call, after)
            return await self._stream(
                call, plan, cut=step.after_chunks, then="stall", stall_s=step.seconds
            )
        if not await self.sleep(call, step.seconds):
            return self.drop(call)
        return await self.run_step(call, after)

    async def _stream(
        self,
        call: Call,
        plan: StreamPlan,
        *,
        headers: dict[str, str] | None = None,
        cut: int | None = None,
        then: str = "",
        frame: bytes = b"",
        stall_s: float = 0.0,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = self.stream_content_type
        resp.headers.update(headers or {})
        self._add_common_headers(call, resp)
        try:
            await resp.prepare(call.request)
        except ConnectionError:
            self._note_hangup(call)
            return resp
        frames = plan.head + plan.content if cut is None else plan.head + plan.content[:cut]
        if not await self._write_all(call, resp, frames):
            return resp
        if then == "drop":
            return self.drop(call, resp)
        if then == "error":
            frames = [frame]
        elif then == "stall":
            if not await self.sleep(call, stall_s):
                return self.drop(call, resp)
            frames = plan.content[cut:] + plan.tail
        else:
            frames = plan.tail
        if await self._write_all(call, resp, frames):
            try:
                await resp.write_eof()
            except ConnectionError:
                self._note_hangup(call)
        return resp

    async def _write_all(self, call: Call, resp: web.StreamResponse, frames: list[bytes]) -> bool:
        for data in frames:
            if self.client_gone(call):
                self._note_hangup(call)
                return False
            try:
                await resp.write(data)
            except ConnectionError:
                self._note_hangup(call)
                return False
        return True

    async def sleep(self, call: Call, seconds: float) -> bool:
        """Sleep while watching the connection. False if the client hung up (counted), the
        fake was reset or is stopping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if self.client_gone(call):
                self._note_hangup(call)
                return False
            if self._stopping or call.generation != self._generation:
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(_POLL_S, remaining))

    @staticmethod
    def client_gone(call: Call) -> bool:
        transport = call.request.transport
        return transport is None or transport.is_closing()

    def drop(self, call: Call, resp: web.StreamResponse | None = None) -> web.StreamResponse:
        """Cut the TCP connection mid-answer (bytes already written are flushed first)."""
        call.dropped = True
        transport = call.request.transport
        if transport is not None:
            transport.close()
        return resp if resp is not None else web.Response(status=500)

    def _note_hangup(self, call: Call) -> None:
        if call.hung_up or call.dropped or self._stopping:
            return
        call.hung_up = True
        with self._cond:
            if call.generation == self._generation:
                self._disconnects += 1
                self._cond.notify_all()

    def _add_common_headers(self, call: Call, resp: web.StreamResponse) -> None:
        for name, value in self.response_headers(call).items():
            if name not in resp.headers:
                resp.headers[name] = value

    async def refuse_connections(self, seconds: float) -> None:
        """Close the listening socket (new connections are refused) and reopen it on the same
        port after ``seconds``; open connections carry on."""
        site, runner = self._site, self._runner
        if self._refusing or site is None or runner is None:
            return
        self._refusing = True
        await site.stop()
        asyncio.get_running_loop().call_later(
            seconds, lambda: asyncio.ensure_future(self._reopen(runner))
        )

    async def _reopen(self, runner: web.AppRunner) -> None:
        if self._stopping:
            return
        site = web.TCPSite(runner, self.host, self._port)
        await site.start()
        self._site, self._refusing = site, False

    # ------------------------------------------------------------------ plumbing (loop thread)
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.chaos is not None and request.path == "/_chaos":
            return web.json_response(self.chaos.snapshot())
        body: Any = None
        json_ok = True
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                json_ok = False
        record = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            raw=raw,
            target=request.raw_path,
        )
        with self._cond:
            if self.chaos is None:  # a soak sends hundreds of thousands: count, do not keep
                self._requests.append(record)
            generation = self._generation
            self._cond.notify_all()
        call = Call(request=request, record=record, generation=generation, json_ok=json_ok)
        handler = self.match(request.method, request.path)
        resp = await (handler(call) if handler is not None else self.unknown_route(call))
        if not resp.prepared:
            self._add_common_headers(call, resp)
        return resp

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
                self._runner = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._site = site
        self._runner = runner
        self._port = int(runner.addresses[0][1])
