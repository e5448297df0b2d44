"""The seam between the HTTP vendors and whatever speaks HTTP for them.

``HttpVendor`` sends every request through a ``Transport``: one method, as httpx's
``AsyncBaseTransport``, taking an ``HttpRequest`` and answering an ``HttpResponse`` whose body is
read whole (``read``) or as it arrives (``chunks``), then released (``aclose``). Our pooled client
(``vendors.http.HttpClient``) is the default; a test passes an in-memory transport, a user may
plug another client. A transport raises only the error tree's transport errors:
``VendorConnectionError``, ``VendorTimeout`` and ``ResponseTooLarge`` (an error *status* is an
answer, not an exception: the vendor turns it into the right error).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request. ``stream``: the caller reads the body as it arrives; when False a
    transport may read all of it before answering (ours does: one wake-up, not one per read).
    ``embeddings``: the answer is a batch of embeddings, large by nature, so a transport with
    size bounds holds it to its larger one (ours: ``max_embeddings_bytes``)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    stream: bool = False
    embeddings: bool = False


@dataclass(slots=True)
class TryTrace:
    """The W3C trace headers (``traceparent``, ``tracestate``) of the try in progress, set by
    the tracer (observability/tracing.py) when tracing is on; ``live`` turns False when the
    try ends, so a later request of the same task never carries a finished try's context."""

    headers: Mapping[str, str]
    live: bool = True


TRY_TRACE: ContextVar[TryTrace | None] = ContextVar("llmdispatcher_try_trace", default=None)


def traced(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` with the current try's trace context, if a tracer set one."""
    found = TRY_TRACE.get()
    if found is None or not found.live:
        return headers
    return {**headers, **found.headers}


class HttpResponse(ABC):
    """An answer: status and headers at once, the body once, through ``read`` or ``chunks``.

    The caller calls ``aclose`` when done with it (even after an error); a body not read to
    its end is abandoned there, and a pooled connection under it is closed, not reused.
    """

    status: int
    headers: Mapping[str, str]

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive (never an empty piece)."""

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([piece async for piece in self.chunks()])

    async def aclose(self) -> None:  # noqa: B027 - a buffered answer holds nothing
        """Release what the answer holds (a connection, a slot)."""


class BufferedResponse(HttpResponse):
    """An answer whose body is already in memory."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.body:
            yield self.body

    async def read(self) -> bytes:
        return self.body


class Transport(Protocol):
    """What ``HttpVendor`` needs of an HTTP client."""

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; answer once the status and headers are in (for ``stream=False``,
        possibly once the whole body is)."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...
