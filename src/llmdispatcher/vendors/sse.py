"""Incremental decoders for the two stream framings vendors use: SSE and NDJSON.

Both take raw byte chunks as they arrive (never the whole body) and return complete frames.
SSE follows the WHATWG grammar: ``\\r\\n``, ``\\n`` and ``\\r`` line ends, multi-line ``data:``
fields joined with ``\\n``, ``event:`` names, ``:`` comments ignored, a blank line dispatches.

Work is linear in the bytes fed: a chunk without a line end is set aside, not rescanned, and
the pieces of a line are joined once, when it ends. A line (or an SSE event's data) longer than
``max_line`` bytes raises ``FrameTooLarge``, and what was held of it is let go first (the
error's traceback may outlive the decoder by the length of a retry); a line that is not UTF-8
raises
``UnicodeDecodeError``. Both are ``ValueError``s, which ``HttpVendor`` reports as the vendor's
fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import VendorConnectionError
from ..types import StreamChunk
from .http_options import ResponseBounds

MAX_LINE_BYTES = ResponseBounds().max_line_bytes


class FrameTooLarge(ValueError):
    """A stream line or event passed the decoder's ``max_line`` bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"a stream line or event passed {limit:,} bytes; raise "
            "ResponseBounds.max_line_bytes if frames this large are expected"
        )
        self.limit = limit


class _Lines:
    """Bytes in, complete lines out (without their ends); ``\\n`` ends a line, and with
    ``cr`` so do ``\\r\\n`` and a lone ``\\r``."""

    __slots__ = ("_cr", "_held", "_limit", "_pending", "_skip_lf")

    def __init__(self, limit: int, *, cr: bool) -> None:
        self._limit = limit
        self._cr = cr
        self._pending: list[bytes] = []  # pieces of a line not yet ended
        self._held = 0
        self._skip_lf = False  # the last chunk ended in \r: a \n first in the next is its pair

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\n" not in chunk and not (self._cr and b"\r" in chunk):
            if chunk:
                self._hold(chunk)
            return []
        if self._pending:
            chunk = b"".join([*self._pending, chunk])  # one copy, not two
            self._pending.clear()
            self._held = 0
        if self._cr and b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._hold(rest)
        if any(len(line) > self._limit for line in lines):
            self._refuse()
        return lines

    def rest(self) -> bytes:
        """What followed the last line end (the body ended without one)."""
        rest = b"".join(self._pending)
        self._pending.clear()
        self._held = 0
        return rest

    def _hold(self, piece: bytes) -> None:
        self._held += len(piece)
        if self._held > self._limit:
            self._refuse()
        self._pending.append(piece)

    def _refuse(self) -> None:
        self._pending.clear()
        self._held = 0
        raise FrameTooLarge(self._limit)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEDecoder:
    __slots__ = ("_data", "_event", "_limit", "_lines", "_size")

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._lines = _Lines(max_line, cr=True)
        self._limit = max_line
        self._data: list[str] = []
        self._size = 0  # bytes of data gathered for the current event
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return [SSEEvent(*found) for found in self._dispatched(self._lines.feed(chunk))]

    def feed_data(self, chunk: bytes) -> list[str]:
        """``feed`` for readers that ignore event names: each event's data only."""
        return [data for _, data in self._dispatched(self._lines.feed(chunk))]

    def flush(self) -> list[SSEEvent]:
        """Frames left when the body ended without a final blank line."""
        return [SSEEvent(*found) for found in self._rest()]

    def flush_data(self) -> list[str]:
        return [data for _, data in self._rest()]

    def _rest(self) -> list[tuple[str, str]]:
        return self._dispatched((self._lines.rest(), b""))

    def _dispatched(self, lines: Iterable[bytes]) -> list[tuple[str, str]]:
        """(event name, data) of each event these lines complete."""
        events: list[tuple[str, str]] = []
        data = self._data
        for raw in lines:
            if raw[:6] == b"data: ":  # most lines: a data line, then a blank one
                value = raw[6:].decode("utf-8")
                self._size += len(value) + 1
                if self._size > self._limit:  # let go of what the refused event held
                    data.clear()
                    self._size = 0
                    raise FrameTooLarge(self._limit)
                data.append(value)
            elif raw:
                self._field(raw.decode("utf-8"))
            elif data or self._event:
                events.append((self._event or "message", "\n".join(data)))
                data.clear()
                self._event, self._size = "", 0
        return events

    def _field(self, line: str) -> None:
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._limit:
                self._data, self._size = [], 0
                raise FrameTooLarge(self._limit)
            self._data.append(value)
        elif name == "event":
            self._event = value


class NDJSONDecoder:
    """Newline-delimited JSON: one document per ``\\n``-terminated line."""

    __slots__ = ("_lines",)

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._lines = _Lines(max_line, cr=False)

    def feed(self, chunk: bytes) -> list[bytes]:
        return [line for line in self._lines.feed(chunk) if line.strip()]

    def flush(self) -> list[bytes]:
        rest = self._lines.rest()
        return [rest] if rest.strip() else []


class SSEChunkDecoder:
    """A vendor's stream whose SSE events each give at most one chunk (``_event``, from the
    event's data). The stream is whole only once ``_event`` has seen its last event and set
    ``_done``; one that ends before raises, naming that event (``terminal``)."""

    terminal = "its last event"

    def __init__(self, vendor: str, max_line: int = MAX_LINE_BYTES) -> None:
        self._vendor_name = vendor
        self._sse = SSEDecoder(max_line)
        self._done = False

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for found in self._sse.feed_data(data):
            chunk = self._event(found)
            if chunk is not None:
                yield chunk

    def finish(self) -> Iterator[StreamChunk]:
        for found in self._sse.flush_data():
            chunk = self._event(found)
            if chunk is not None:
                yield chunk
        if not self._done:
            raise VendorConnectionError(
                f"the stream ended before {self.terminal}", vendor=self._vendor_name
            )

    def _event(self, data: str) -> StreamChunk | None:
        raise NotImplementedError
