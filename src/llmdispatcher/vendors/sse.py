"""Incremental decoders for the two stream framings vendors use: SSE and NDJSON.

Both take raw byte chunks as they arrive (never the whole body) and return complete frames.
SSE follows the WHATWG grammar: ``\\r\\n``, ``\\n`` and ``\\r`` line ends, multi-line ``data:``
fields joined with ``\\n``, ``event:`` names, ``:`` comments ignored, a blank line dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEDecoder:
    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        # A trailing \r may be the first half of \r\n: keep it until the next chunk says.
        keep_cr = buffer.endswith(b"\r")
        if keep_cr:
            buffer = buffer[:-1]
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop() + (b"\r" if keep_cr else b"")
        events: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """Frames left when the body ended without a final blank line."""
        return self.feed(b"\n\n") if self._buffer or self._data else []

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


class NDJSONDecoder:
    """Newline-delimited JSON: one document per ``\\n``-terminated line."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []
