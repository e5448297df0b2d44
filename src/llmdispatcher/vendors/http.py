"""The one HTTP executor every HTTP vendor shares.

A pooled aiohttp session per vendor (created on first use, bound to the running event loop,
reused for every request), per-attempt connect and read timeouts, and transport failures
translated once, here, into the error tree. aiohttp is imported lazily so that
``import llmdispatcher`` stays light. It was chosen over httpx by measurement
(``bench/http_clients.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import VendorConnectionError, VendorError, VendorTimeout

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class HttpStream:
    """An open streamed response: status and headers now, the body as it arrives."""

    status: int
    headers: Mapping[str, str]
    _response: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def read(self) -> bytes:
        return await self._response.read()


class HttpClient:
    """A pooled HTTP client. ``vendor`` names the vendor in the errors it raises."""

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
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            import aiohttp  # lazy: ~200 ms of import that a config check does not need

            connector = aiohttp.TCPConnector(
                limit=self.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
            )
            # auto_decompress stays on; no cookie jar: vendor APIs are stateless.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                json_serialize=_unused_serializer,
            )
            self._loop = loop
        return self._session

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpResult:
        async with self._open(method, url, headers, body) as response:
            data = await self._read(response)
            return HttpResult(response.status, response.headers, data)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[HttpStream]:
        async with self._open(method, url, headers, body) as response:
            try:
                yield HttpStream(response.status, response.headers, response)
            except BaseException:
                # Close the socket instead of draining it: the vendor must see the hang-up
                # at once (cancellation, a consumer that stopped, an error mid-stream).
                response.close()
                raise

    @asynccontextmanager
    async def _open(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        import aiohttp

        session = self._get_session()
        try:
            async with session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                yield response
        except VendorError:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise VendorTimeout(
                f"no answer within the timeout ({_describe(exc)})", vendor=self.vendor
            ) from exc
        except aiohttp.ClientError as exc:
            raise VendorConnectionError(
                f"connection failed: {_describe(exc)}", vendor=self.vendor
            ) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        return await response.read()

    async def aclose(self) -> None:
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is None or session.closed:
            return
        if loop is None or loop is asyncio.get_running_loop() or not loop.is_running():
            await session.close()
        else:  # the session lives on another loop (the sync facade's thread): close it there
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(session.close(), loop))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unused_serializer(obj: Any) -> str:
    raise TypeError("bodies are encoded by the vendor adapter (orjson), never by aiohttp")
