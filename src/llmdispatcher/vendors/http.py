"""The one HTTP client every HTTP vendor shares: HTTP/1.1 keep-alive over asyncio.

Vendor APIs need little of HTTP: a POST with a JSON body, a JSON or SSE/NDJSON answer, a GET
for listings and health. So this is a small client of our own on asyncio's transports, with
``httptools`` (llhttp, the Node.js parser) reading responses. It costs about a quarter of
aiohttp's client CPU per request (``bench/http_clients.py``), which matters on the gateway's
hot path, and it is short enough to read.

* **Pooling**: idle connections per origin (LIFO), bound to the running event loop; reused up
  to ``IDLE_S`` seconds after their last answer. ``max_connections`` (0 = unlimited) caps the
  connections open at once; requests over the cap wait for one.
* **Timeouts**: ``connect_timeout`` for TCP + TLS; ``read_timeout`` is the longest silence
  allowed while an answer is due (as aiohttp's ``sock_read``), not counted while a stream's
  consumer is behind and reading is paused.
* **Framing**: Content-Length, chunked, or body-until-close; gzip and deflate are decoded.
* **Hang-ups**: a request that is cancelled, or a stream closed before its end, aborts its
  connection at once, so the vendor sees the client go (and stops generating).
* **Stale connections**: a reused connection that the server closed while idle fails before
  any byte of answer; that request is sent once more on a new connection (as Go's and
  urllib3's clients do). Any other transport failure is a ``VendorConnectionError`` or a
  ``VendorTimeout`` for the retry layer to judge.
* **TLS** with the system's trust store (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured).
  No proxy support (``HTTPS_PROXY`` is not read), as before with aiohttp's defaults.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from ..errors import ConfigError, VendorConnectionError, VendorTimeout

IDLE_S = 15.0  # below common server keep-alive timeouts (nginx 75 s, aiohttp 75 s, Go 90 s)
HIGH_WATER = 256 * 1024  # bytes a stream buffers before it stops reading from the socket
LOW_WATER = 64 * 1024
ACCEPT_ENCODING = b"Accept-Encoding: gzip, deflate\r\n"


class Headers(dict[str, str]):
    """Response headers: names in lower case, looked up case-insensitively; a repeated header
    is one value joined with ``", "`` (RFC 9110 §5.3)."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


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
    method: str, target: str, origin: _Origin, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            # Never echo the value: it may be a credential.
            raise ConfigError(f"the header {name.strip()!r} contains a line break; remove it")
        lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(
            "a request header holds a character outside Latin-1; HTTP headers must be ASCII"
        ) from None
    return head + ACCEPT_ENCODING + b"\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: _Pool, origin: _Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # an earlier answer was read on this connection
        self.idle_since = 0.0
        self.active = False
        self.streaming = False
        self.status = 0
        self.header_list: list[tuple[bytes, bytes]] = []
        self.headers: Headers = Headers()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.informational = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.paused = False
        self.framed = True  # Content-Length or chunked; False: the body ends when the socket does
        self.decoder: Any = None
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes nobody asked for (e.g. a 408 before closing): unusable
            self._fail(ConnectionError("unexpected bytes on an idle connection"))
            return
        self.received = True
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
        except zlib.error as exc:
            self._fail(ConnectionError(f"undecodable compressed body: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if not self.active:
            self.pool.forget(self)
        if self.active and not self.complete and self.error is None:
            if self.headers_done and not self.framed:
                self._end_body()  # the body ran until the server closed: that is its end
            else:
                self.error = exc or ConnectionResetError("the server closed the connection")
        self._wake()

    def pause_writing(self) -> None:  # request bodies are small: the transport buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        raw_headers, self.header_list = self.header_list, []
        if 100 <= status < 200:  # informational (103 Early Hints): the answer follows
            self.informational = True
            return
        # Plain dict operations on lower-case names: the case-folding lookups are for callers.
        found: dict[str, str] = {}
        for raw_name, raw_value in raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            seen = found.get(name)
            found[name] = value if seen is None else f"{seen}, {value}"
        self.headers = Headers(found)
        self.status = status
        self.headers_done = True
        self.framed = "content-length" in found or "transfer-encoding" in found
        encoding = found.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = _Deflate()
        if self.streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            body = self.decoder.decompress(body)
            if not body:
                return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.streaming:
            if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self._cancel_timer()  # a slow consumer is not a silent vendor
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._end_body()

    # --- helpers -----------------------------------------------------------------------------
    def _end_body(self) -> None:
        if self.decoder is not None:
            rest = self.decoder.flush()
            if rest:
                self.chunks.append(rest)
                self.buffered += len(rest)
        self.complete = True
        self._cancel_timer()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def abort(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _arm_timer(self) -> None:
        self.timer = self.loop.call_at(self.last_read + self.pool.read_timeout, self._silence)

    def _silence(self) -> None:
        self.timer = None
        if self.complete or self.paused or self.error is not None:
            return
        if self.loop.time() - self.last_read >= self.pool.read_timeout:
            self._fail(TimeoutError(f"read: no data for {self.pool.read_timeout:g}s"))
        else:
            self._arm_timer()

    # --- one exchange ------------------------------------------------------------------------
    def send(self, head: bytes, body: bytes | None, *, streaming: bool) -> None:
        self.active, self.streaming = True, streaming
        self.status, self.header_list = 0, []
        self.chunks, self.buffered = deque(), 0
        self.headers_done = self.complete = self.keep_alive = self.received = False
        self.informational = False
        self.paused, self.framed, self.decoder, self.error = False, True, None, None
        self.last_read = self.loop.time()
        self._arm_timer()
        assert self.transport is not None
        self.transport.write(head + body if body else head)

    async def wait(self) -> None:
        """Until something new happened (headers, body bytes, the end, a failure)."""
        if self.error is None and not self.closed:
            self.waiter = self.loop.create_future()
            await self.waiter
        if self.error is not None:
            raise self.error
        if self.closed and not self.complete:
            raise ConnectionResetError("the connection closed before the answer ended")

    async def read_complete(self) -> None:
        while not self.complete:
            await self.wait()

    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def read_head(self) -> None:
        while not self.headers_done:
            await self.wait()

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) > 1 else self.chunks.popleft()
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.last_read = self.loop.time()
            self._arm_timer()
            self.transport.resume_reading()
        return data

    def done(self, reuse: bool) -> None:
        """The exchange is over; ``reuse``: its answer was read to the end, so the connection
        goes back to the pool (unless the server asked to close it)."""
        self.active = False
        self._cancel_timer()
        # A pool its client has replaced (another event loop took over) keeps nothing.
        if reuse and self.keep_alive and not self.closed and self.pool.client.current(self.pool):
            self.reused = True
            self.idle_since = self.loop.time()
            self.pool.idle.setdefault(self.origin, []).append(self)
        else:
            self.abort()
            self.pool.forget(self)

    def stale(self, error: BaseException) -> bool:
        """A reused connection the server had closed: it failed before any byte of answer."""
        return (
            self.reused
            and not self.received
            and isinstance(error, OSError)
            and not isinstance(error, TimeoutError)
        )


class _Deflate:
    """``Content-Encoding: deflate`` is zlib-wrapped by the standard, raw deflate in practice."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            head = int.from_bytes(self._first[:2], "big")
            zlib_wrapped = (self._first[0] & 0x0F) == 8 and head % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        out: bytes = self._inner.decompress(data)
        return out

    def flush(self) -> bytes:
        if self._inner is None:
            return b""
        out: bytes = self._inner.flush()
        return out


class _Pool:
    """The connections of one client on one event loop."""

    def __init__(self, client: HttpClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.read_timeout = client.read_timeout
        self.idle: dict[_Origin, list[_Connection]] = {}
        self.open: set[_Connection] = set()
        self.slots = (
            asyncio.Semaphore(client.max_connections) if client.max_connections > 0 else None
        )
        self._ssl: ssl.SSLContext | None = None

    async def acquire(self, origin: _Origin) -> _Connection:
        idle = self.idle.get(origin)
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            conn.abort()
            self.open.discard(conn)
        return await self._connect(origin)

    async def _connect(self, origin: _Origin) -> _Connection:
        secure = origin.scheme == "https"
        try:
            async with asyncio.timeout(self.client.connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=self._context() if secure else None,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError:
            raise VendorTimeout(
                f"no answer within the timeout (connecting to {origin} took over "
                f"{self.client.connect_timeout:g}s)",
                vendor=self.client.vendor,
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise VendorConnectionError(
                f"connection failed: cannot connect to {origin} ({_describe(exc)})",
                vendor=self.client.vendor,
            ) from exc
        self.open.add(conn)
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:  # the system's trust store; SSL_CERT_FILE/SSL_CERT_DIR apply
            self._ssl = ssl.create_default_context()
        return self._ssl

    def forget(self, conn: _Connection) -> None:
        self.open.discard(conn)

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


class HttpStream:
    """An open streamed response: status and headers now, the body as it arrives."""

    def __init__(self, conn: _Connection, client: HttpClient) -> None:
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
                except (OSError, httptools.HttpParserError) as exc:
                    raise self._client.translate(exc) from exc

    async def read(self) -> bytes:
        try:
            await self._conn.read_complete()
            return self._conn.body()
        except (OSError, httptools.HttpParserError) as exc:
            raise self._client.translate(exc) from exc


class HttpClient:
    """A pooled HTTP/1.1 client. ``vendor`` names the vendor in the errors it raises."""

    def __init__(
        self,
        vendor: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_connections: int = 0,
    ) -> None:
        self.vendor = vendor
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._pool: _Pool | None = None

    def current(self, pool: _Pool) -> bool:
        return self._pool is pool

    def _get_pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                _close_elsewhere(pool)
            pool = self._pool = _Pool(self, loop)
        return pool

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpResult:
        origin, target = _split(url)
        head = _request_head(method, target, origin, headers, body)
        pool = self._get_pool()
        if pool.slots is not None:
            await pool.slots.acquire()
        try:
            conn = await self._exchange(pool, origin, head, body, streaming=False)
            data = conn.body()
            conn.done(reuse=True)
            return HttpResult(conn.status, conn.headers, data)
        finally:
            if pool.slots is not None:
                pool.slots.release()

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[HttpStream]:
        origin, target = _split(url)
        head = _request_head(method, target, origin, headers, body)
        pool = self._get_pool()
        if pool.slots is not None:
            await pool.slots.acquire()
        try:
            conn = await self._exchange(pool, origin, head, body, streaming=True)
            try:
                yield HttpStream(conn, self)
            finally:
                # Anything but a complete read closes the socket instead of draining it: the
                # vendor must see the hang-up at once (cancellation, a consumer that stopped).
                conn.done(reuse=conn.complete)
        finally:
            if pool.slots is not None:
                pool.slots.release()

    async def _exchange(
        self, pool: _Pool, origin: _Origin, head: bytes, body: bytes | None, *, streaming: bool
    ) -> _Connection:
        """Send on a pooled connection and wait for the answer: its head (streaming) or all of
        it. A reused connection the server had closed while idle is replaced, once."""
        while True:
            conn = await pool.acquire(origin)
            conn.send(head, body, streaming=streaming)
            try:
                await (conn.read_head() if streaming else conn.read_complete())
            except BaseException as exc:
                conn.done(reuse=False)
                if conn.stale(exc):
                    continue
                if isinstance(exc, OSError | httptools.HttpParserError):
                    raise self.translate(exc) from exc
                raise
            return conn

    def translate(self, exc: BaseException) -> VendorConnectionError | VendorTimeout:
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
