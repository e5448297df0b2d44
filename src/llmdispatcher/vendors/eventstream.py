"""AWS event-stream framing (``application/vnd.amazon.eventstream``): bytes in, messages out.

Bedrock's ConverseStream answers in binary frames, not SSE. Each frame, integers big-endian::

    | total length u32 | headers length u32 | prelude CRC u32 | headers | payload | message CRC |

The prelude CRC is the CRC32 of the first 8 bytes, the message CRC that of every byte before
it. A header is ``name length u8 | name | value type u8 | value`` (types below).

Why our own decoder rather than botocore's ``EventStreamBuffer``: a Bedrock API key
(``AWS_BEARER_TOKEN_BEDROCK``) needs no botocore at all, so the stream path must not import it;
the decoder is ~100 lines over ``zlib.crc32`` and ``struct``, incremental (a frame may arrive
in any number of pieces, several frames in one), bounded like botocore's (headers 128 KiB,
payload 24 MiB), and fuzzable on its own. A frame that fails its CRC or its own lengths raises
``EventStreamError`` (a ``ValueError``: the HTTP vendor reports it as a malformed answer).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .sse import FrameTooLarge

PRELUDE = 12  # total length, headers length, prelude CRC
TRAILER = 4  # message CRC
MAX_HEADERS = 128 * 1024
MAX_PAYLOAD = 24 * 1024 * 1024
HeaderValue = bool | int | bytes | str | uuid.UUID
# value type -> struct format of a fixed-size value (types 0/1 carry no bytes; 6/7 are sized)
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


class FrameOverBound(FrameTooLarge):
    """A frame announcing headers or a payload beyond botocore's bounds (never buffered)."""

    def __init__(self, part: str, size: int, limit: int) -> None:
        ValueError.__init__(
            self, f"an event-stream frame announced {size:,} bytes of {part} (at most {limit:,})"
        )
        self.limit = limit


class EventStreamError(ValueError):
    """A frame that is not valid event-stream framing (CRC, lengths, header types)."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded frame: its headers (``:message-type``, ``:event-type`` ...) and payload."""

    headers: Mapping[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str:
        """A string header's value, ``""`` when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


class EventStreamDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get whole messages back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame (non-zero at the end: cut short)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        self._buffer += data
        while len(self._buffer) >= PRELUDE:
            total, headers_length = _prelude(self._buffer)
            if len(self._buffer) < total:
                return
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            yield _message(frame, headers_length)


def _prelude(buffer: bytearray) -> tuple[int, int]:
    total, headers_length, crc = struct.unpack_from(">III", buffer)
    if zlib.crc32(buffer[:8]) != crc:
        raise EventStreamError("event-stream prelude CRC mismatch")
    if headers_length > MAX_HEADERS:
        raise FrameOverBound("headers", headers_length, MAX_HEADERS)
    payload_length = total - PRELUDE - headers_length - TRAILER
    if payload_length < 0:
        raise EventStreamError(f"event-stream frame length {total} is shorter than its headers")
    if payload_length > MAX_PAYLOAD:
        raise FrameOverBound("payload", payload_length, MAX_PAYLOAD)
    return total, headers_length


def _message(frame: bytes, headers_length: int) -> EventMessage:
    (crc,) = struct.unpack_from(">I", frame, len(frame) - TRAILER)
    if zlib.crc32(frame[:-TRAILER]) != crc:
        raise EventStreamError("event-stream message CRC mismatch")
    end = PRELUDE + headers_length
    return EventMessage(_headers(frame[PRELUDE:end]), frame[end:-TRAILER])


def _headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size].decode("utf-8")
        at += 1 + size
        value, at = _value(data, at)
        headers[name] = value
    return headers


def _value(data: bytes, at: int) -> tuple[HeaderValue, int]:
    if at >= len(data):
        raise EventStreamError("event-stream header without a value type")
    kind = data[at]
    at += 1
    if kind in (0, 1):
        return kind == 0, at
    if kind in _FIXED:
        fmt = _FIXED[kind]
        size = struct.calcsize(fmt)
        _need(data, at, size)
        return struct.unpack_from(fmt, data, at)[0], at + size
    if kind in (6, 7):
        _need(data, at, 2)
        (size,) = struct.unpack_from(">H", data, at)
        _need(data, at + 2, size)
        raw = data[at + 2 : at + 2 + size]
        return (raw.decode("utf-8") if kind == 7 else raw), at + 2 + size
    if kind == 9:
        _need(data, at, 16)
        return uuid.UUID(bytes=data[at : at + 16]), at + 16
    raise EventStreamError(f"event-stream header value type {kind} is unknown")


def _need(data: bytes, at: int, size: int) -> None:
    if at + size > len(data):
        raise EventStreamError("event-stream header value runs past the headers")


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One frame with string headers (type 7): what a fake server and tests write."""
    encoded = b"".join(_string_header(name, value) for name, value in headers.items())
    total = PRELUDE + len(encoded) + len(payload) + TRAILER
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def _string_header(name: str, value: str) -> bytes:
    key, text = name.encode(), value.encode()
    return bytes([len(key)]) + key + b"\x07" + struct.pack(">H", len(text)) + text
