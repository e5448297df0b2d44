"""One keep-alive HTTP/1.1 connection of the vendor client: an asyncio protocol fed by
``httptools`` (llhttp), serving one request at a time. ``vendors/http.py`` pools these.

It enforces, as bytes arrive, the client's ``ResponseBounds`` (header, body, decompressed body,
each by the kind of answer: whole, embeddings or stream) and its timers: ``read_timeout`` while
an answer is due and the vendor is silent, ``stall_timeout`` while a stream's answer waits
unread because its reader stopped. An answer that breaks a bound, is not HTTP, or switches
protocols fails the request; the connection is dropped. A connection that received anything
beyond its answer is never reused.

Memory: a whole answer is held as it arrives (then joined once, by its reader); a stream holds
at most ``HIGH_WATER`` bytes ahead of its reader, and a compressed stream is inflated only as
far: the compressed bytes wait, so a bomb on a stream costs about ``HIGH_WATER`` plus one
``DECODE_STEP``, whatever it inflates to. A failed answer, and a pooled connection's last
one, let go of their bytes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import httptools

from ..errors import ResponseTooLarge, VendorTimeout
from .heap import HEAP, LARGE_ANSWER
from .http_options import BOUND_NAMES, BUFFERS, AnswerKind, HttpOptions

if TYPE_CHECKING:
    from .http import _Origin

HIGH_WATER = 256 * 1024  # bytes a stream buffers before it stops reading from the socket
DECODE_STEP = 1024 * 1024  # most bytes inflated at once (a bomb's chunk is inflated in steps)


class _Refused(Exception):
    """Stops the parser from a callback; the reason is already in ``_Connection.error``."""


class _Decoder(Protocol):
    def decompress(self, data: bytes, max_length: int) -> bytes: ...
    def flush(self) -> bytes: ...
    @property
    def unconsumed_tail(self) -> bytes: ...


class Owner(Protocol):
    """What a connection needs of its pool."""

    loop: asyncio.AbstractEventLoop
    options: HttpOptions
    vendor: str

    def keep(self, conn: Connection) -> bool:
        """Take back a connection whose answer was read to its end; False: not wanted."""
        ...

    def forget(self, conn: Connection) -> None:
        """The connection is closed."""
        ...

    def free_slot(self) -> None:
        """The connection is no longer busy: its ``max_connections`` slot is free."""
        ...


class Headers(dict[str, str]):
    """Response headers: names in lower case, looked up case-insensitively; a repeated header
    is one value joined with ``", "`` (RFC 9110 §5.3)."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class Connection(asyncio.Protocol):
    """One keep-alive connection of ``owner``'s pool."""

    def __init__(self, owner: Owner, origin: _Origin) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.origin = origin
        self.options = owner.options
        self.bounds = owner.options.bounds
        self.vendor = owner.vendor
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.active = False
        self.holds_slot = False
        self.streaming = False
        self.kind: AnswerKind = "whole"
        self.max_wire = self.max_decoded = 0  # this answer's bounds, by its kind
        self.status = 0
        self.header_list: list[tuple[bytes, bytes]] = []
        self.headers: Headers = Headers()
        self.chunks: deque[bytes] = deque()
        self.buffered = self.head_bytes = self.wire = self.decoded = 0
        self.charged = 0  # of BUFFERS, for the chunks held now (0 once given back)
        self.headers_done = self.informational = self.complete = False
        self.ended = False  # the body's last byte arrived (``complete``: and all of it inflated)
        self.keep_alive = self.paused = self.beyond = False
        self.framed = True  # Content-Length or chunked; False: the body ends when the socket does
        self.decoder: _Decoder | None = None
        self.packed = b""  # compressed bytes a stream's reader is not ready for yet
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0
        self.timer: asyncio.TimerHandle | None = None  # read_timeout
        self.stall_timer: asyncio.TimerHandle | None = None  # stall_timeout, streams only
        self.taken = 0.0  # when a stream's reader last took something or waited
        self.sent = 0.0  # when the request went out (answer_timeout counts from here)
        self.poller: select.poll | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")  # under TLS too: the TCP socket
        if sock is not None:
            self.poller = select.poll()
            self.poller.register(sock.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Whether bytes or a hang-up wait in the kernel, unseen by the event loop: on an idle
        connection that means the server closed it (as a server that closes after every
        answer, unannounced, does) or sent what no request asked for. Checked before reuse,
        as urllib3 and httpcore do, since a request written there could not be replayed."""
        return self.poller is not None and bool(self.poller.poll(0))

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes nobody asked for (e.g. a 408 before closing): unusable
            self._fail(ConnectionError("unexpected bytes on an idle connection"))
            return
        if self.ended:  # more after the answer: the next answer could not be trusted
            self.beyond = True
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            status = self.parser.get_status_code()
            self._fail(ConnectionError(f"the server switched protocols (HTTP {status})"))
        except httptools.HttpParserError as exc:
            if self.ended:  # the answer is whole; what followed it is not ours
                self.beyond = True
            else:
                self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
        except zlib.error as exc:
            self._fail(ConnectionError(f"undecodable compressed body: {exc}"))
        if not self.headers_done:  # all of it was head: refuse a head that never ends
            self.head_bytes += len(data)
            if self.head_bytes > self.bounds.max_header_bytes and self.error is None:
                self._fail(self.too_large("header", "max_header_bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self.active and not self.ended and self.error is None:
            if self.headers_done and not self.framed:
                self._end_body()  # the body ran until the server closed: that is its end
            else:
                self.error = exc or ConnectionResetError("the server closed the connection")
        if not self.active:
            self.owner.forget(self)
        self._give_back()  # a closed connection may never be read again: never leak the budget
        self._wake()

    def pause_writing(self) -> None:  # request bodies are small: the transport buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.ended:  # a second answer nobody asked for
            raise _Refused

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
        size = 0
        for raw_name, raw_value in raw_headers:
            size += len(raw_name) + len(raw_value)
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            seen = found.get(name)
            found[name] = value if seen is None else f"{seen}, {value}"
        self.status = status
        # Both undercount the head (the first misses the status line and separators, the
        # second the last packet): either past the bound is enough.
        if max(size, self.head_bytes) > self.bounds.max_header_bytes:
            self._refuse(self.too_large("header", "max_header_bytes"))
        self.headers = Headers(found)
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
        self.wire += len(body)
        if self.wire > self.max_wire:
            self._refuse(self.too_large("body", BOUND_NAMES[self.kind][0]))
        if self.decoder is not None:
            self.packed = self.packed + body if self.packed else body
            self._inflate()
        else:
            self._hold(body)
        if self.streaming:
            ahead = self.buffered > HIGH_WATER or self.packed
            if ahead and not self.paused and self.transport is not None:
                self.paused = True
                self._cancel_timer()  # a slow reader is not a silent vendor (stall_timeout is)
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._end_body()

    # --- helpers -----------------------------------------------------------------------------
    def _hold(self, data: bytes) -> None:
        if not BUFFERS.take(len(data)):
            self._refuse(self._over_budget())
        self.charged += len(data)
        self.chunks.append(data)
        self.buffered += len(data)

    def _give_back(self) -> None:
        BUFFERS.give(self.charged)
        self.charged = 0

    def _drop(self) -> None:
        """Let go of the answer's bytes: the budget and the memory itself. A failed answer is
        never read, and a pooled connection must not keep its last answer alive (an error's
        traceback, or the pool, holds the connection long after the bytes stopped mattering)."""
        self.chunks.clear()
        self.buffered = 0
        self.decoder = None
        self.packed = b""
        self._give_back()
        if max(self.wire, self.decoded) >= LARGE_ANSWER:
            HEAP.trim_soon(self.loop)  # glibc keeps freed heap pages otherwise (vendors/heap.py)

    def _inflate(self) -> None:
        """Inflate what waits in ``packed`` a step at a time, holding each piece as it comes:
        never more than one step past either bound (the answer's, or what is left of
        ``BUFFERS``), so a bomb costs no more than that, in memory or in time. A stream stops
        once ``HIGH_WATER`` bytes wait for its reader; ``take`` goes on from there."""
        decoder = self.decoder
        assert decoder is not None
        while self.packed and not (self.streaming and self.buffered > HIGH_WATER):
            allowance = min(self.max_decoded - self.decoded, BUFFERS.free)
            piece = decoder.decompress(self.packed, min(allowance + 1, DECODE_STEP))
            self.packed = decoder.unconsumed_tail
            self.decoded += len(piece)
            if self.decoded > self.max_decoded:
                name = BOUND_NAMES[self.kind][1]
                self._refuse(self.too_large("decompressed body", name))
            if piece:
                self._hold(piece)
        if self.ended and not self.packed and not self.complete:
            self._finish()

    def too_large(self, what: str, setting: str) -> ResponseTooLarge:
        limit = getattr(self.bounds, setting)
        return ResponseTooLarge(
            f"the answer's {what} passed {limit:,} bytes and was refused; raise "
            f"ResponseBounds.{setting} if answers this large are expected",
            vendor=self.vendor,
            status=self.status or None,
        )

    def _over_budget(self) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"vendor answers held in this process passed {BUFFERS.limit:,} bytes together, so "
            "this one was refused; raise LLMDISPATCHER_MAX_BUFFERED_MB if that is expected",
            vendor=self.vendor,
            status=self.status or None,
        )

    def _refuse(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._drop()
        raise _Refused

    def _end_body(self) -> None:
        """The body's last byte arrived; the answer is complete once all of it is inflated
        (a stream's compressed bytes may still wait for its reader)."""
        self.ended = True
        self._cancel_timer()
        if not self.packed:
            self._finish()

    def _finish(self) -> None:
        if self.decoder is not None:
            rest = self.decoder.flush()
            if rest:
                with contextlib.suppress(_Refused):  # the error is recorded; the end stands
                    self._hold(rest)
        self.complete = True
        self._cancel_timer()
        self._wake()

    def _wake(self) -> None:
        if self.streaming and self.stall_timer is None and self.holds_slot:
            self._arm_stall(self.taken + self.options.stall_timeout)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._drop()
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
        options = self.options
        when = min(self.last_read + options.read_timeout, self.sent + options.answer_timeout)
        self.timer = self.loop.call_at(when, self._silence)

    def _silence(self) -> None:
        self.timer = None
        if self.ended or self.paused or self.error is not None:
            return
        now, options = self.loop.time(), self.options
        if now - self.last_read >= options.read_timeout:
            self._fail(TimeoutError(f"read: no data for {options.read_timeout:g}s"))
        elif now - self.sent >= options.answer_timeout:
            self._fail(
                TimeoutError(f"the answer took longer than {options.answer_timeout:g}s in all")
            )
        else:
            self._arm_timer()

    def _arm_stall(self, when: float) -> None:
        self.stall_timer = self.loop.call_at(when, self._check_stall)

    def _check_stall(self) -> None:
        """A stream's reader must come for what waits for it (body bytes, the end, an error)
        within ``stall_timeout``; one that does not is hung up on and its slot freed. A
        complete answer stays readable; an incomplete one fails when the reader returns."""
        self.stall_timer = None
        unread = self.chunks or self.complete or self.error is not None
        if not self.active or self.waiter is not None or not unread:
            return  # no stream, a reader waiting, or nothing for it: armed again on news
        if self.loop.time() - self.taken < self.options.stall_timeout:
            self._arm_stall(self.taken + self.options.stall_timeout)
            return
        if not self.ended:  # what arrived of a whole answer stays readable
            self._fail(
                VendorTimeout(
                    f"the stream's reader took nothing for {self.options.stall_timeout:g}s "
                    "(stall_timeout); its connection was closed",
                    vendor=self.vendor,
                    retryable=False,  # the reader stalled, not the vendor
                )
            )
        self.abort()
        self._free()

    def _free(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.owner.free_slot()

    # --- one exchange ------------------------------------------------------------------------
    def send(self, data: bytes, *, kind: AnswerKind) -> None:
        self.active, self.kind, self.streaming = True, kind, kind == "stream"
        wire, decoded = BOUND_NAMES[kind]
        self.max_wire, self.max_decoded = getattr(self.bounds, wire), getattr(self.bounds, decoded)
        self.status, self.header_list = 0, []
        self.chunks, self.packed = deque(), b""
        self.buffered = self.head_bytes = self.wire = self.decoded = 0
        self.headers_done = self.complete = self.ended = self.keep_alive = False
        self.informational = self.beyond = False
        self.paused, self.framed, self.decoder, self.error = False, True, None, None
        self.last_read = self.taken = self.sent = self.loop.time()
        self._arm_timer()
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self) -> None:
        """Until something new happened (headers, body bytes, the end, a failure)."""
        if self.error is None and not self.closed:
            self.waiter = self.loop.create_future()
            await self.waiter
            self.taken = self.loop.time()
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
        self._give_back()
        self.taken = self.loop.time()
        if self.packed:  # the next piece of a compressed stream, now that its reader is ready
            try:
                self._inflate()
            except _Refused:  # recorded in ``error``: the reader meets it on its next wait
                self.abort()
                return data
            if self.packed or self.chunks:
                return data  # still ahead of the reader: reading stays paused
        if self.paused:
            self.paused = False
            self._cancel_timer()
            if not self.closed and self.transport is not None:
                # Complete or not: a connection left paused would never read its next answer
                # (and bytes beyond this one must be seen, so that it is not reused).
                self.transport.resume_reading()
                if not self.complete:
                    self.last_read = self.loop.time()
                    self._arm_timer()
        return data

    def done(self, reuse: bool) -> None:
        """The exchange is over; ``reuse``: its answer was read to the end, so the connection
        goes back to the pool unless the server asked to close it or sent more than its
        answer. Anything else closes it. Idempotent."""
        if not self.active:
            return
        self.active = False
        self._drop()
        self._cancel_timer()
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        self._free()
        if reuse and self.keep_alive and not self.beyond and not self.closed:
            self.idle_since = self.loop.time()
            if self.paused and self.transport is not None:
                # The answer ended while its reader was behind (its last read crossed
                # HIGH_WATER, or inflated past it): the next answer must be read.
                self.paused = False
                self.transport.resume_reading()
            if self.owner.keep(self):
                return
        self.abort()
        self.owner.forget(self)


class _Deflate:
    """``Content-Encoding: deflate`` is zlib-wrapped by the standard, raw deflate in practice."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            head = int.from_bytes(self._first[:2], "big")
            zlib_wrapped = (self._first[0] & 0x0F) == 8 and head % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        out: bytes = self._inner.decompress(data, max_length)
        return out

    def flush(self) -> bytes:
        if self._inner is None:
            return b""
        out: bytes = self._inner.flush()
        return out

    @property
    def unconsumed_tail(self) -> bytes:
        return b"" if self._inner is None else bytes(self._inner.unconsumed_tail)
