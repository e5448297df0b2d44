"""What one try does, per kind of request: the runner is generic over what a try yields."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ..config import Config
from ..errors import InvalidRequestError
from ..resilience.retry import CONTENT_FILTER
from ..types import Request, Response, StreamChunk
from ..vendors.base import Vendor
from .scope import AttemptScope

T = TypeVar("T")


class AttemptKind(Protocol[T]):
    """One kind of request (send, stream; embeddings next): how a try starts, and how a try
    that finished but lost a hedge race is let go."""

    async def start(self, vendor: Vendor, request: Request, scope: AttemptScope) -> T:
        """Run the try up to the point where it has won: raising fails it (and the scope
        records why), returning makes it the request's answer."""
        ...

    async def discard(self, value: T) -> None: ...


class SendKind:
    """A whole answer. With a group's ``content_filter_fallbacks``, an answer the vendor's
    content filter stopped is a failed try, so the request moves on to those fallbacks."""

    def __init__(self, config: Config) -> None:
        self._filtered_groups = frozenset(
            g.name for g in config.model_groups if g.content_filter_fallbacks
        )

    async def start(self, vendor: Vendor, request: Request, scope: AttemptScope) -> Response:
        response = await vendor.send(request)
        scope.usage = response.usage
        if response.finish_reason == "content_filter" and (
            scope.trip.decision.group in self._filtered_groups
        ):
            raise InvalidRequestError(
                f"{response.vendor}'s content filter stopped the answer",
                vendor=scope.deployment.vendor,
                error_code=CONTENT_FILTER,
            )
        return response

    async def discard(self, value: Response) -> None:
        """A whole answer holds nothing open."""


@dataclass(slots=True)
class StartedStream:
    """A vendor stream read up to its first text or tool-call piece (or to its end)."""

    chunks: AsyncIterator[StreamChunk]
    head: list[StreamChunk] = field(default_factory=list)
    ended: bool = False

    async def aclose(self) -> None:
        if isinstance(self.chunks, AsyncGenerator):
            await self.chunks.aclose()


class StreamKind:
    """A stream wins at its first text or tool-call piece: failures before it are retried and
    failed over like any other; the scope stays open until the stream is read to its end."""

    async def start(self, vendor: Vendor, request: Request, scope: AttemptScope) -> StartedStream:
        started = StartedStream(vendor.stream(request))
        try:
            async for chunk in started.chunks:
                started.head.append(chunk)
                if chunk.delta or chunk.tool_call_deltas:
                    break
            else:
                started.ended = True
        except BaseException:
            await started.aclose()
            raise
        scope.first_token()
        return started

    async def discard(self, value: StartedStream) -> None:
        await value.aclose()
