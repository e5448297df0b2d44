"""What one try does, per kind of request: the runner is generic over what a try yields."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from ..config import Config
from ..embeddings import EmbeddingRequest, Embeddings
from ..errors import InvalidRequestError, MalformedResponse
from ..resilience.retry import CONTENT_FILTER
from ..types import Request, Response, StreamChunk, Usage
from ..vendors.base import Vendor
from .scope import AttemptScope

T = TypeVar("T")


class AttemptKind(Protocol[T]):
    """One kind of request (send, stream, embed): how a try starts, and how a try
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


class EmbedKind:
    """Vectors for every input of one ``EmbeddingRequest`` (one instance per request).

    The inputs go to the vendor in batches of its ``embed_batch_size``, one after another, and
    come back reassembled in input order. A failed batch fails the try, which is retried or
    failed over like any other; the batches a deployment already answered are kept, so its
    retry sends only the rest (vectors of two models are never mixed). ``scope.usage`` counts
    the tokens this try sent, for the tpm limits; the answer's usage counts every batch.
    """

    def __init__(self, request: EmbeddingRequest) -> None:
        self.request = request
        self._done: dict[tuple[str, int], Embeddings] = {}

    async def start(self, vendor: Vendor, request: Request, scope: AttemptScope) -> Embeddings:
        asked = replace(self.request, model=request.model)
        texts = asked.inputs
        size = max(1, vendor.embed_batch_size)
        batches: list[Embeddings] = []
        sent = 0
        for first in range(0, len(texts), size):
            key = (scope.deployment.id, first)
            batch = self._done.get(key)
            if batch is None:
                part = texts[first : first + size]
                batch = _counted(await vendor.embed(replace(asked, input=part)), part, vendor)
                self._done[key] = batch
                sent += _tokens(batch)
                scope.usage = Usage(sent, 0, sent)
            batches.append(batch)
        total = sum(_tokens(b) for b in batches)
        vectors = [vector for batch in batches for vector in batch.vectors]
        return Embeddings(vectors, batches[0].model or request.model, Usage(total, 0, total))

    async def discard(self, value: Embeddings) -> None:
        """Vectors hold nothing open."""


def _counted(batch: Embeddings, texts: tuple[str, ...], vendor: Vendor) -> Embeddings:
    """The batch, checked to hold one vector per input, with usage estimated where the vendor
    counts none (Gemini's embedding answers carry no token counts)."""
    if len(batch.vectors) != len(texts):
        raise MalformedResponse(
            f"the vendor sent {len(batch.vectors)} vectors for {len(texts)} inputs",
            vendor=vendor.name,
        )
    if batch.usage is not None and batch.usage.prompt_tokens:
        return batch
    from ..tokens import estimate_text_tokens

    tokens = sum(estimate_text_tokens(text, batch.model) for text in texts)
    return replace(batch, usage=Usage(tokens, 0, tokens))


def _tokens(batch: Embeddings) -> int:
    return batch.usage.prompt_tokens if batch.usage is not None else 0
