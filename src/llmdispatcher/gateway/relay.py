"""From a parsed request to the dispatcher and back, for every API flavour.

* ``read_json``: the body (bounded by the app's size limit and ``body_timeout_s``) as a dict.
* ``send``: key checks, the admission hook, ``dispatcher.send``; the trace learns the attempts.
* ``open_stream``: the same, then the *first chunk* is awaited before anything is written, so a
  stream that fails before its first token gets a real HTTP error status (after retries and
  fallbacks are exhausted), never a 200 followed by an error.
* ``relay``: headers, then the chunks as the flavour's ``StreamEncoder`` renders them, those
  ready together in one write (``stream_writer``). A client that hangs up ends the handler
  (aiohttp cancels it, or a write fails); the dispatcher's stream is closed at once, which
  closes the vendor connection. An error after the first chunk is written as the flavour's
  in-stream error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
from aiohttp import web

from ..errors import DispatcherError
from ..types import Request, Response, StreamChunk
from .auth import ApiKey, check_model
from .errors import ApiError, api_error, bad_request
from .state import CURRENT, Gateway, Trace
from .stream_writer import FrameWriter
from .validation import check_depth

logger = logging.getLogger("llmdispatcher.gateway")
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class StreamEncoder(Protocol):
    """Renders dispatcher chunks in one API's stream format."""

    def head(self, chunk: StreamChunk) -> bytes:
        """The opening events and the first chunk."""
        ...

    def chunk(self, chunk: StreamChunk) -> bytes: ...

    def tail(self) -> bytes:
        """What ends a complete stream."""
        ...

    def error(self, error: ApiError) -> bytes:
        """The in-stream error event for a failure after the first chunk."""
        ...


class SSEResponse(web.StreamResponse):
    """A stream whose headers leave with its first chunk, in one write, as ``web.Response``'s
    do (aiohttp's class attribute; were it renamed, the headers would go out alone, as a
    ``StreamResponse``'s do by default). ``relay`` writes the first chunk right after
    ``prepare``: nothing waits for it."""

    _send_headers_immediately = False


@dataclass(slots=True)
class OpenedStream:
    first: StreamChunk
    rest: AsyncGenerator[StreamChunk, None]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), headers=JSON_HEADERS)


async def read_json(request: web.Request, gateway: Gateway) -> dict[str, Any]:
    """The body as a JSON object; 400 naming what is wrong, 413 past the size limit, 408 when
    it does not arrive within ``body_timeout_s``, 415 unless it is ``application/json`` (a
    web page cannot send that cross-site without a preflight: see ``origin``)."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            f"send the body as Content-Type: application/json (got {request.content_type[:60]!r})",
            code="unsupported_media_type",
        )
    if request.content.is_eof():  # the usual case: the body came with the head
        raw = await request.read()
    else:
        try:
            async with asyncio.timeout(gateway.settings.body_timeout_s):
                raw = await request.read()
        except TimeoutError:
            raise ApiError(
                408, "the request body did not arrive in time", code="body_timeout"
            ) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request("body", f"not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise bad_request("body", "expected a JSON object")
    check_depth(raw, body)
    return body


TAGS = ("api_key", "api_key_id", "team")  # set by the gateway only, never by the client


def key_tag(trace: Trace, metadata: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The request's metadata with the caller's key name, and for a stored key its id and
    team (for ``key:``/``team:`` budgets, the ledger and metrics), set while the request is
    built so that ``admit`` need not rebuild it. A key with pinned ``metadata`` gets that
    instead of the client's; what a client sent under these names is dropped."""
    key = trace.key
    if key is None:
        return metadata
    base = metadata if key.metadata is None else key.metadata
    tagged = {k: v for k, v in (base or {}).items() if k not in TAGS}
    tagged["api_key"] = key.name
    if key.id is not None:
        tagged["api_key_id"] = key.id
    if key.team is not None:
        tagged["team"] = key.team
    return tagged


def _tagged(metadata: Mapping[str, Any] | None, key: ApiKey) -> bool:
    found = metadata or {}
    return (
        found.get("api_key") == key.name
        and found.get("api_key_id") == key.id
        and found.get("team") == key.team
    )


async def admit(gateway: Gateway, trace: Trace, request: Request) -> Request:
    """The key's model allow-list (through model groups too), then the per-key limits hook
    and a stored key's own limits; the request comes back tagged with the key (``key_tag``)
    for ``key:``/``team:`` budgets and the ledger."""
    key = trace.key
    check_model(key, request.model, gateway.group_models)
    if key is not None and not _tagged(request.metadata, key):
        # The parsers tag requests as they build them (``key_tag``); this covers the rest, and
        # overrides tags a client put in its own metadata.
        request = replace(request, metadata=key_tag(trace, request.metadata))
    if key is not None and key.user is not None and request.user != key.user:
        request = replace(request, user=key.user)  # pinned: the client's does not count
    if trace.cache_control is not None and request.cache is None:
        request = replace(request, cache=trace.cache_control)
    try:
        if gateway.admission is not None:
            await gateway.admission(key, request)
        if key is not None and key.id is not None and gateway.key_usage is not None:
            period = gateway.stored_keys.period(key.name) if gateway.stored_keys else "month"
            trace.lease = await gateway.key_usage.reserve(key, request, period)
    except ApiError as exc:
        if exc.status == 429:
            gateway.metrics.observe_rejection(key.name if key else "", exc.code or "limit")
        raise
    return request


async def send(gateway: Gateway, trace: Trace, request: Request) -> Response:
    request = await admit(gateway, trace, request)
    try:
        response = await gateway.dispatcher.send(request)
    except DispatcherError as exc:
        trace.record_failure(exc)
        raise
    trace.record(response)
    return response


async def open_stream(gateway: Gateway, trace: Trace, request: Request) -> OpenedStream:
    request = await admit(gateway, trace, request)
    stream = gateway.dispatcher.stream(request)
    started = time.perf_counter()
    try:
        first = await anext(stream)
    except DispatcherError as exc:
        trace.record_failure(exc)
        raise
    except StopAsyncIteration:  # the dispatcher always ends with a final chunk
        raise ApiError(502, "the vendor's stream ended without an answer") from None
    trace.vendor_s = time.perf_counter() - started
    trace.vendor, trace.model = first.vendor, first.model
    # the failed ones so far, and this one (none for an answer from the cache)
    trace.attempts = trace.live_attempts + (trace.cache != "hit")
    return OpenedStream(first, stream)


async def relay(
    request: web.Request, opened: OpenedStream, encoder: StreamEncoder
) -> web.StreamResponse:
    """Write the stream; returns when it ended, failed or the client went away. The first
    chunk is written at once, with the headers (``SSEResponse``); the rest go out through a
    ``FrameWriter``: those that are ready together, in one write."""
    response = SSEResponse(headers=SSE_HEADERS)
    writer: FrameWriter | None = None
    try:
        await response.prepare(request)
        writer = FrameWriter(response)  # its task starts with the second write
        await response.write(encoder.head(opened.first))  # not held back behind the rest
        async for chunk in opened.rest:
            data = encoder.chunk(chunk)
            if data and writer.put(data):
                await writer.room()  # the client reads slowly: stop reading from the vendor
        await writer.close(encoder.tail())
    except ConnectionError:
        pass  # the client hung up; closing the stream below hangs up on the vendor
    except Exception as exc:  # after the 200: the flavour's in-stream error event
        if writer is None:
            raise
        await _write_error(writer, encoder, exc)
    finally:
        if writer is not None:
            writer.cancel()  # a no-op once it ended
        await opened.rest.aclose()
    return response


async def _write_error(writer: FrameWriter, encoder: StreamEncoder, exc: Exception) -> None:
    trace = CURRENT.get()
    request_id = trace.request_id if trace else "-"
    found = api_error(exc)
    if found is None:
        logger.exception("request %s: unexpected error mid-stream", request_id)
        found = ApiError(500, f"internal error (request {request_id})")
    else:
        logger.info("request %s: the stream failed after its first chunk: %s", request_id, exc)
    with contextlib.suppress(ConnectionError):  # the client hung up meanwhile
        await writer.close(encoder.error(found))
