"""Raw HTTP servers on 127.0.0.1 for the HTTP client's tests: each handler writes exactly the
bytes its case needs (framing, resets, floods), which no framework server would send."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON = {"Content-Type": "application/json"}


@dataclass
class Server:
    url: str
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # a request arrived
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def serve(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    state = Server("")

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            state.open_now -= 1
            state.closed.set()
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1/chat"
    async with server:
        yield state


async def read_request(reader: asyncio.StreamReader, state: Server) -> bytes:
    """One request (head and Content-Length body); recorded, returned."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    raw = head + await reader.readexactly(length)
    state.requests.append(raw)
    state.asked.set()
    return raw


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def keep_answering(state_box: list[Server], body: bytes = b'{"ok":true}') -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, state_box[0])
            writer.write(response(body, "Content-Type: application/json"))
            await writer.drain()

    return handler
