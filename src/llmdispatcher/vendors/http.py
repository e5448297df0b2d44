"""The one HTTP client every HTTP vendor shares: HTTP/1.1 keep-alive over asyncio.

Vendor APIs need little of HTTP: a POST with a JSON body, a JSON or SSE/NDJSON answer, a GET
for listings and health. So this is a small client of our own on asyncio's transports, with
``httptools`` (llhttp, the Node.js parser) reading responses. It costs about a quarter of
aiohttp's client CPU per request (``bench/http_clients.py``), which matters on the gateway's
hot path, and it is short enough to read. It is the default ``Transport`` (vendors/transport.py)
of ``HttpVendor``; its settings are one ``HttpOptions`` value (vendors/http_options.py).

* **Pooling**: idle connections per origin (LIFO), bound to the running event loop; reused up
  to ``IDLE_S`` seconds after their last answer. ``max_connections`` (0 = unlimited) caps the
  connections busy at once; requests over the cap wait for one.
* **Timeouts**: ``connect_timeout`` for TCP + proxy tunnel + TLS; ``read_timeout`` is the
  longest silence allowed while an answer is due (as aiohttp's ``sock_read``), not counted
  while a stream's consumer is behind and reading is paused; ``stall_timeout`` bounds how
  long a stream's answer waits unread, then the connection is closed and its slot freed.
* **Bounds**: header, body, decompressed body (``ResponseBounds``): crossing one is a
  retryable ``ResponseTooLarge`` and the connection is dropped.
* **Framing**: Content-Length, chunked, or body-until-close; gzip and deflate are decoded.
  A connection that received bytes beyond its answer is closed, never reused.
* **Hang-ups**: a request that is cancelled, or a stream closed before its end, aborts its
  connection at once, so the vendor sees the client go (and stops generating).
* **Stale connections**: before reuse, an idle connection is checked for a hang-up or bytes
  the event loop has not seen yet (a server that closes after each answer without saying so);
  such a connection is dropped and another taken. A request is never sent twice here: once
  its bytes left, any failure is a ``VendorConnectionError`` (or ``VendorTimeout``) for the
  retry layer, which decides and counts every attempt (a replay on a connection reset after
  the write would resend a POST the vendor may have acted on, uncounted).
* **Proxies**: ``proxy=`` or ``https_proxy``/``http_proxy``/``no_proxy`` (vendors/proxy.py):
  CONNECT tunnels for https, absolute-form requests for http, Basic proxy authentication.
* **TLS** with the system's trust store (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured), or
  only the CAs of ``ca_bundle``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import ConfigError, VendorConnectionError, VendorError, VendorTimeout
from .http_connection import Connection, Headers
from .http_options import AnswerKind, HttpOptions
from .proxy import Proxy, choose, environment
from .transport import BufferedResponse, HttpRequest, HttpResponse
from .tunnel import open_tunnel

__all__ = ["BufferedResponse", "Headers", "HttpClient", "HttpOptions", "HttpStream"]

IDLE_S = 15.0  # below common server keep-alive timeouts (nginx 75 s, aiohttp 75 s, Go 90 s)
ACCEPT_ENCODING = b"Accept-Encoding: gzip, deflate\r\n"


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one URL's requests go: the origin (the pool's key), the request target (absolute
    through an http proxy), the proxy, and header lines the proxy needs."""

    origin: _Origin
    target: str
    proxy: Proxy | None
    proxy_lines: str = field(repr=False)  # a credential


@functools.lru_cache(maxsize=512)
def _split(url: str) -> tuple[_Origin, str]:
    """An absolute http(s) URL as (origin, request target)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r}; set the vendor's base_url to one")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host_header = shown if port == default else f"{shown}:{port}"
    return _Origin(parts.scheme, host, port, host_header), target


def _request_head(
    method: str, route: _Route, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {route.target} HTTP/1.1\r\nHost: {route.origin.host_header}\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            # Never echo the value: it may be a credential.
            raise ConfigError(f"the header {name.strip()!r} contains a line break; remove it")
        lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    if route.proxy_lines:
        lines.append(route.proxy_lines)
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(
            "a request header holds a character outside Latin-1; HTTP headers must be ASCII"
        ) from None
    return head + ACCEPT_ENCODING + b"\r\n"


class _Pool:
    """The connections of one client on one event loop (the ``Owner`` of its connections)."""

    def __init__(self, client: HttpClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.options = client.options
        self.vendor = client.vendor
        self.idle: dict[_Origin, list[Connection]] = {}
        self.open: set[Connection] = set()
        cap = client.options.max_connections
        self.slots = asyncio.Semaphore(cap) if cap > 0 else None

    async def acquire(self, route: _Route) -> Connection:
        if self.slots is not None:
            await self.slots.acquire()
        try:
            conn = self._idle(route.origin) or await self._connect(route)
        except BaseException:
            self.free_slot()
            raise
        conn.holds_slot = True
        return conn

    def _idle(self, origin: _Origin) -> Connection | None:
        idle = self.idle.get(origin)
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            alive = not conn.closed and transport is not None and not transport.is_closing()
            if alive and now - conn.idle_since < IDLE_S and not conn.readable():
                return conn
            conn.abort()
            self.open.discard(conn)
        return None

    async def _connect(self, route: _Route) -> Connection:
        origin, proxy = route.origin, route.proxy
        secure = origin.scheme == "https"
        via = f" through {proxy}" if proxy is not None else ""
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                if proxy is not None and secure:
                    conn = await self._tunnel(origin, proxy)
                else:
                    host, port = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
                    _, conn = await self.loop.create_connection(
                        lambda: Connection(self, origin),
                        host,
                        port,
                        ssl=self.client.tls() if secure else None,
                        server_hostname=origin.host if secure else None,
                    )
        except TimeoutError:
            raise VendorTimeout(
                f"no answer within the timeout (connecting to {origin}{via} took over "
                f"{self.options.connect_timeout:g}s)",
                vendor=self.vendor,
            ) from None
        except OSError as exc:  # ssl.SSLError included
            raise VendorConnectionError(
                f"connection failed: cannot connect to {origin}{via} ({_describe(exc)})",
                vendor=self.vendor,
            ) from exc
        self.open.add(conn)
        return conn

    async def _tunnel(self, origin: _Origin, proxy: Proxy) -> Connection:
        """TLS to ``origin`` inside a CONNECT tunnel through ``proxy``."""
        raw = await open_tunnel(
            self.loop, proxy, str(origin), self.options.bounds.max_header_bytes, self.vendor
        )
        conn = Connection(self, origin)
        try:
            tls = await self.loop.start_tls(
                raw, conn, self.client.tls(), server_hostname=origin.host
            )
        except BaseException:
            raw.abort()
            raise
        assert tls is not None
        conn.connection_made(tls)
        return conn

    # --- Owner -------------------------------------------------------------------------------
    def keep(self, conn: Connection) -> bool:
        # A pool its client has replaced (another event loop took over) keeps nothing.
        if not self.client.current(self):
            return False
        self.idle.setdefault(conn.origin, []).append(conn)
        return True

    def forget(self, conn: Connection) -> None:
        self.open.discard(conn)

    def free_slot(self) -> None:
        if self.slots is not None:
            self.slots.release()

    def close_idle(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn.abort()
                self.open.discard(conn)
        self.idle.clear()

    def close(self) -> None:
        for conn in list(self.open):
            conn.abort()
        self.open.clear()
        self.idle.clear()


class HttpStream(HttpResponse):
    """An open streamed response: status and headers now, the body as it arrives. ``aclose``
    returns the connection to the pool if the body was read to its end, else hangs up."""

    def __init__(self, conn: Connection, client: HttpClient) -> None:
        self._conn = conn
        self._client = client
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                return
            else:
                try:
                    await conn.wait()
                except OSError as exc:
                    raise self._client.translate(exc) from exc

    async def read(self) -> bytes:
        """The whole body (an error's, usually), held to the bounds of an answer read whole.
        Taken piece by piece, as a compressed stream inflates only as far as it is taken."""
        conn = self._conn
        compressed = "content-encoding" in conn.headers
        setting = "max_decompressed_bytes" if compressed else "max_body_bytes"
        limit: int = getattr(conn.bounds, setting)
        pieces: list[bytes] = []
        size = 0
        async for piece in self.chunks():
            size += len(piece)
            if size > limit:
                pieces.clear()
                raise conn.too_large("decompressed body" if compressed else "body", setting)
            pieces.append(piece)
        return b"".join(pieces)

    async def aclose(self) -> None:
        # Anything but a complete read closes the socket instead of draining it: the vendor
        # must see the hang-up at once (cancellation, a consumer that stopped).
        self._conn.done(reuse=self._conn.complete)


class HttpClient:
    """A pooled HTTP/1.1 client, the default ``Transport``. ``vendor`` names the vendor in
    the errors it raises."""

    def __init__(self, vendor: str, options: HttpOptions | None = None) -> None:
        self.vendor = vendor
        self.options = options = options or HttpOptions()
        if options.ca_bundle is not None and not os.path.isfile(options.ca_bundle):
            raise ConfigError(
                f"ca_bundle for vendor {vendor!r}: no file at {options.ca_bundle!r}; "
                "point it at a PEM file of CA certificates"
            )
        self._env = environment()
        self._routes: dict[str, _Route] = {}
        self._tls: ssl.SSLContext | None = None
        self._pool: _Pool | None = None

    def current(self, pool: _Pool) -> bool:
        return self._pool is pool

    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            bundle = self.options.ca_bundle
            try:  # without a bundle: the system's store, where SSL_CERT_FILE/SSL_CERT_DIR apply
                self._tls = ssl.create_default_context(cafile=bundle)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"ca_bundle for vendor {self.vendor!r}: cannot load {bundle!r} "
                    f"({_describe(exc)}); point it at a PEM file of CA certificates"
                ) from None
        return self._tls

    def _route(self, url: str) -> _Route:
        route = self._routes.get(url)
        if route is None:
            origin, target = _split(url)
            proxy = choose(self.options.proxy, self._env, origin.scheme, origin.host, origin.port)
            lines = ""
            if proxy is not None and origin.scheme == "http":  # absolute form, no tunnel
                target = f"http://{origin.host_header}{target}"
                lines = proxy.auth_line()
            route = _Route(origin, target, proxy, lines)
            if len(self._routes) < 1024:  # vendor URLs are few; never grow without bound
                self._routes[url] = route
        return route

    def _get_pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                _close_elsewhere(pool)
            pool = self._pool = _Pool(self, loop)
        return pool

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        if request.stream:
            return await self.open_stream(
                request.method, request.url, headers=request.headers, body=request.body
            )
        kind: AnswerKind = "embeddings" if request.embeddings else "whole"
        return await self.request(
            request.method, request.url, headers=request.headers, body=request.body, kind=kind
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        kind: AnswerKind = "whole",
    ) -> BufferedResponse:
        """The whole answer, its connection back in the pool. ``kind``: which bounds hold it
        (``"embeddings"``: ``max_embeddings_bytes``)."""
        conn = await self._exchange(method, url, headers, body, kind=kind)
        result = BufferedResponse(conn.status, conn.headers, conn.body())
        conn.done(reuse=True)
        return result

    async def open_stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpStream:
        """The answer's status and headers; the caller reads the body, then ``aclose``s it."""
        conn = await self._exchange(method, url, headers, body, kind="stream")
        return HttpStream(conn, self)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[HttpStream]:
        response = await self.open_stream(method, url, headers=headers, body=body)
        try:
            yield response
        finally:
            await response.aclose()

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        kind: AnswerKind,
    ) -> Connection:
        """Send on a pooled connection and wait for the answer: its head (streaming) or all of
        it."""
        route = self._route(url)
        head = _request_head(method, route, headers, body)
        conn = await self._get_pool().acquire(route)
        conn.send(head + body if body else head, kind=kind)
        try:
            await (conn.read_head() if kind == "stream" else conn.read_complete())
        except BaseException as exc:
            conn.done(reuse=False)
            if isinstance(exc, OSError):
                raise self.translate(exc) from exc
            raise
        return conn

    def translate(self, exc: BaseException) -> VendorError:
        """A transport failure as the error tree's (the retry layer judges those)."""
        if isinstance(exc, TimeoutError):
            return VendorTimeout(
                f"no answer within the timeout ({_describe(exc)})", vendor=self.vendor
            )
        return VendorConnectionError(f"connection failed: {_describe(exc)}", vendor=self.vendor)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if pool.loop is running:
            pool.close()
        else:
            _close_elsewhere(pool)


def _close_elsewhere(pool: _Pool) -> None:
    """Close a pool that lives on another event loop: one still running (the sync facade's
    thread) closes its idle connections itself; for a loop that has ended, whose transports can
    no longer be closed through it, close their sockets."""
    if pool.loop.is_closed():
        for conn in list(pool.open):
            transport = conn.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            with suppress(Exception):
                if sock is not None:
                    sock.close()
        pool.open.clear()
        pool.idle.clear()
    else:  # its idle connections now; the busy ones close when their requests end
        with suppress(RuntimeError):  # the loop closed meanwhile
            pool.loop.call_soon_threadsafe(pool.close_idle)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
