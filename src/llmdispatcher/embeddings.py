"""Embedding requests and answers, vendor-neutral.

``EmbeddingRequest`` is what a caller asks for (``Dispatcher.embed``); ``Embeddings`` is what a
vendor returns for one batch of inputs; ``EmbeddingResponse`` is the whole answer, with the
vectors in the order of the inputs, usage, cost and the routing decision as on ``Response``.

For routing, an embedding request travels the same lifecycle as a chat request, as a
``Request`` of kind ``embedding`` whose user messages are the inputs (``routing_request``): the
rules, limits (tpm counts the input tokens), budgets and the ledger see it like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .types import Attempt, Message, Request, Usage


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Vectors for ``input`` (one text or a list of texts) from ``model``.

    ``dimensions`` asks models that can shorten their vectors for that many; ``user`` and
    ``metadata`` are as on ``Request`` (routing rules, budgets, the ledger); ``vendor`` forces
    a vendor; ``timeout`` is the total deadline for every batch, retry and fallback.
    """

    model: str
    input: str | Sequence[str]
    dimensions: int | None = None
    user: str | None = None
    metadata: Mapping[str, Any] | None = None
    vendor: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("request.model: a non-empty model name is required")
        texts = (self.input,) if isinstance(self.input, str) else self.input
        if isinstance(texts, bytes) or not isinstance(texts, Sequence) or not texts:
            raise ValueError("request.input: give a string or a non-empty list of strings")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(
                    f"request.input[{i}]: must be a non-empty string (vendors refuse empty "
                    "inputs; drop it or put a placeholder)"
                )
        object.__setattr__(
            self, "input", self.input if isinstance(self.input, str) else tuple(texts)
        )
        if self.dimensions is not None and (
            isinstance(self.dimensions, bool)
            or not isinstance(self.dimensions, int)
            or self.dimensions < 1
        ):
            raise ValueError("request.dimensions: must be a positive integer")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError("request.timeout: must be a positive number of seconds")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The texts, always as a tuple."""
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)

    def routing_request(self) -> Request:
        """The ``Request`` (kind ``embedding``) the router, limits and ledger see."""
        return Request(
            model=self.model,
            messages=tuple(Message("user", text) for text in self.inputs),
            user=self.user,
            metadata=self.metadata,
            vendor=self.vendor,
            timeout=self.timeout,
            kind="embedding",
        )


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vendor's answer for one batch: a vector per input, in input order. ``usage`` is
    None when the vendor does not count tokens (the dispatcher then estimates them)."""

    vectors: list[list[float]]
    model: str
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResponse:
    """The vectors for every input, in order, and what producing them took."""

    vectors: list[list[float]]
    model: str
    vendor: str
    usage: Usage
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    # The routing decision (llmdispatcher.routing.model.RoutingDecision), as on Response.
    routing: Any = None
