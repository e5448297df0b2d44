"""A CONNECT tunnel through an HTTP proxy: the raw transport once the proxy said 2xx, ready for
TLS to the vendor on top (``loop.start_tls``)."""

from __future__ import annotations

import asyncio

from ..errors import VendorConnectionError
from .proxy import Proxy


class _TunnelHead(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: a status line and headers, nothing after."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.limit = limit
        self.head = b""
        self.status: asyncio.Future[int] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        if self.status.done():  # lost: the TLS handshake that follows then fails cleanly
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > self.limit:
                self.status.set_exception(ConnectionError("the proxy's answer is too long"))
            return
        line = self.head.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
            self.status.set_exception(ConnectionError("the proxy's answer is not HTTP"))
        elif line[1].startswith(b"2") and end + 4 != len(self.head):  # a refusal has a body
            self.status.set_exception(ConnectionError("the proxy sent bytes after its answer"))
        else:
            self.status.set_result(int(line[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(
                exc or ConnectionResetError("the proxy closed the connection")
            )


async def open_tunnel(
    loop: asyncio.AbstractEventLoop, proxy: Proxy, authority: str, limit: int, vendor: str
) -> asyncio.Transport:
    """A transport to ``authority`` (``host:port``) through ``proxy``. Connection failures
    raise ``OSError``; a proxy that refuses raises ``VendorConnectionError`` with its status."""
    transport, head = await loop.create_connection(
        lambda: _TunnelHead(loop, limit), proxy.host, proxy.port
    )
    try:
        transport.write(proxy.connect_request(authority))
        status = await head.status
    except BaseException:
        transport.abort()
        raise
    if not 200 <= status < 300:
        transport.abort()
        hint = ""
        if status in (401, 407):  # tinyproxy answers 401 to a wrong password
            hint = (
                ": check the user and password in the proxy URL"
                if proxy.authorization
                else ": give the proxy's user and password in its URL (http://user:pw@host:port)"
            )
        raise VendorConnectionError(
            f"connection failed: {proxy} refused a tunnel to {authority} (HTTP {status}){hint}",
            vendor=vendor,
        )
    return transport
