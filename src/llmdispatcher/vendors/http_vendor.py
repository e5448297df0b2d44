"""The shared send/stream path of every HTTP vendor.

A vendor module only translates: ``build_call`` (Request -> HTTP request), ``parse_response``
(JSON body -> Response; ``parse_answer`` when the headers carry part of it), ``stream_decoder``
(bytes -> StreamChunk) and ``parse_error`` (status + body -> ErrorInfo); a vendor with
embeddings adds ``build_embed_call`` and ``parse_embeddings``. Sending, status handling and
error translation live here, once.

Requests go through a ``Transport`` (vendors/transport.py): our pooled ``HttpClient`` unless the
constructor is given another (an in-memory one in tests, another client). An answer the hooks
cannot read (not JSON, not the expected shape, a stream frame that breaks its decoder) is a
retryable ``MalformedResponse`` carrying the HTTP status it came with, so retries, fallbacks
and the circuit breaker treat it as the vendor's fault it is.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..errors import MalformedResponse, ResponseTooLarge, UnsupportedRequest, VendorError
from ..types import Request, Response, StreamChunk
from .base import Health, Secret, Vendor
from .connection import Connection
from .error_mapping import ErrorInfo, error_for, retry_after_from_headers
from .fanout import fan_out, refuse_streamed_n
from .http import HttpClient
from .sse import FrameTooLarge
from .transport import BufferedResponse, HttpRequest, Transport, traced

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, Embeddings

# What a translation hook raises when the vendor's JSON is not the shape it expects (a missing
# key, a list for an object, a string for a number, bytes that are not UTF-8).
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


@dataclass(frozen=True, slots=True)
class HttpCall:
    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"


class StreamDecoder(Protocol):
    """Bytes in, chunks out. Both methods may be generators: chunks decoded before an
    in-stream error must reach the caller before the error does."""

    def feed(self, data: bytes) -> Iterable[StreamChunk]:
        """Chunks completed by these bytes; raises a VendorError on an in-stream error."""
        ...

    def finish(self) -> Iterable[StreamChunk]:
        """Called when the body ended; raises if the stream never reached its terminal event."""
        ...


def decode_json(body: bytes, vendor: str, status: int | None = None) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedResponse(
            f"the vendor sent a body that is not JSON: {body[:200]!r}", vendor=vendor, status=status
        ) from None


def malformed(exc: Exception, vendor: str, status: int) -> MalformedResponse:
    """A translation hook's failure on the vendor's answer, as the vendor's fault."""
    return MalformedResponse(
        f"the vendor's answer is not in the expected format ({type(exc).__name__}: {exc})",
        vendor=vendor,
        status=status,
    )


def count(value: Any) -> int:
    """A token count from a vendor body: missing, null or malformed reads as 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class HttpVendor(Vendor):
    """Base for vendors spoken to over HTTP. Subclasses translate; this class sends.

    ``native_n``: the API answers ``n`` > 1 itself; otherwise ``send`` asks n times
    (``fanout``). A stream carries one answer: ``n`` > 1 is refused there.
    """

    native_n: bool = False

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: Secret,
        connection: Connection | None,
        default_timeouts: tuple[float, float] = (60.0, 10.0),
    ) -> None:
        """``connection``: how the vendor is reached (timeouts, headers, pool, proxy, CA bundle,
        or another ``Transport``); ``default_timeouts``: the vendor's own (read, connect)
        defaults where the connection leaves them unset."""
        reach = connection or Connection()
        options = reach.client_options(*default_timeouts)
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = options.read_timeout
        self.max_line = options.bounds.max_line_bytes  # for the stream decoders
        self.extra_headers = dict(reach.headers)
        self._http: Transport = reach.transport or HttpClient(name, options)

    # --- translation hooks -------------------------------------------------------------
    @abstractmethod
    def build_call(self, request: Request, *, stream: bool) -> HttpCall: ...

    @abstractmethod
    def parse_response(self, data: Any, request: Request) -> Response: ...

    def parse_answer(self, data: Any, headers: Mapping[str, str], request: Request) -> Response:
        """``parse_response`` for vendors that also read the answer's headers (a server that
        reports usage in ``x-prompt-tokens``); the others need not override it."""
        return self.parse_response(data, request)

    @abstractmethod
    def stream_decoder(self, request: Request) -> StreamDecoder: ...

    @abstractmethod
    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo: ...

    def build_embed_call(self, request: EmbeddingRequest) -> HttpCall:
        """The HTTP request for one batch of embeddings (vendors with embeddings override)."""
        raise UnsupportedRequest(
            f"vendor {self.name!r} cannot take embedding requests", vendor=self.name
        )

    def parse_embeddings(self, data: Any, request: EmbeddingRequest) -> Embeddings:
        """The vectors in a JSON answer to ``build_embed_call``."""
        raise NotImplementedError

    # --- the shared path ------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        if request.answer_count > 1 and not self.native_n:
            return await fan_out(self._send_one, request)
        return await self._send_one(request)

    async def _send_one(self, request: Request) -> Response:
        status, data, headers = await self._post(self.build_call(request, stream=False))
        try:
            return self.parse_answer(data, headers, request)
        except SHAPE_ERRORS as exc:
            raise malformed(exc, self.name, status) from exc

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        status, data, _ = await self._post(self.build_embed_call(request), embeddings=True)
        try:
            return self.parse_embeddings(data, request)
        except SHAPE_ERRORS as exc:
            raise malformed(exc, self.name, status) from exc

    async def _post(
        self, call: HttpCall, *, embeddings: bool = False
    ) -> tuple[int, Any, Mapping[str, str]]:
        """POST ``call``: the status, the decoded JSON body and the headers; error statuses
        raise. ``embeddings``: the answer is held to the larger bound of embeddings."""
        request = HttpRequest(
            call.method, call.url, traced(call.headers), call.body, embeddings=embeddings
        )
        response = await self._http.handle_async_request(request)
        try:
            body = await response.read()
        finally:
            await response.aclose()
        self._heard(response.headers)
        status = response.status
        if status >= 400:
            raise self._error(status, response.headers, body)
        return status, decode_json(body, self.name, status), response.headers

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        refuse_streamed_n(request, self.name)
        call = self.build_call(request, stream=True)
        response = await self._http.handle_async_request(
            HttpRequest(call.method, call.url, traced(call.headers), call.body, stream=True)
        )
        try:
            self._heard(response.headers)
            if response.status >= 400:
                raise self._error(response.status, response.headers, await response.read())
            decoder = self.stream_decoder(request)
            try:
                async for data in response.chunks():
                    for chunk in decoder.feed(data):
                        yield chunk
                for chunk in decoder.finish():
                    yield chunk
            except FrameTooLarge as exc:
                raise ResponseTooLarge(str(exc), vendor=self.name, status=response.status) from exc
            except SHAPE_ERRORS as exc:  # a frame the decoder could not read: the vendor's
                raise malformed(exc, self.name, response.status) from exc
        finally:
            await response.aclose()

    def _heard(self, headers: Mapping[str, str]) -> None:
        # Rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*) for whoever tracks limits.
        for listener in self.header_listeners:
            listener(headers)

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> VendorError:
        info = self.parse_error(status, headers, body)
        if info.retry_after is None:
            hint = retry_after_from_headers(headers, time.time())
            if hint is not None:
                info = replace(info, retry_after=hint)
        return error_for(status, info, vendor=self.name, secrets=self.secrets())

    async def get(self, url: str, headers: Mapping[str, str]) -> BufferedResponse:
        """A GET for listings and health checks; error statuses raise."""
        return await self.fetch(HttpRequest("GET", url, headers))

    async def fetch(self, request: HttpRequest) -> BufferedResponse:
        """One buffered call beside the chat path (listings, token counts); error statuses
        raise the vendor's error."""
        response = await self._http.handle_async_request(request)
        try:
            body = await response.read()
        finally:
            await response.aclose()
        if response.status >= 400:
            raise self._error(response.status, response.headers, body)
        return BufferedResponse(response.status, response.headers, body)

    async def timed_health(self, url: str, headers: Mapping[str, str]) -> Health:
        """Health as "this URL answers 2xx", with the time it took; never raises."""
        started = time.perf_counter()
        try:
            await self.get(url, headers)
        except VendorError as exc:
            return Health(False, time.perf_counter() - started, str(exc))
        return Health(True, time.perf_counter() - started, "ok")

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key.reveal(),) if self.api_key else ()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"
