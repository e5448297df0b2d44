"""One cached answer: what a hit gives back, as compact JSON bytes for any store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..types import FinishReason, Response, StreamChunk, ToolCall, ToolCallDelta, Usage

# A hit streams the stored text in pieces of this many characters: small enough that a client
# renders it progressively, large enough that a long answer is few frames.
REPLAY_PIECE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Entry:
    """The answer as it was first given, with the cost it had then (what a hit saves)."""

    content: str
    vendor: str
    model: str
    finish_reason: FinishReason | None
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    cost_usd: float | None = None
    deployment: str | None = None
    stop_sequence: str | None = None  # which stop sequence ended it (Anthropic's API says)

    @classmethod
    def of(cls, response: Response, deployment: str | None) -> Entry:
        return cls(
            response.content,
            response.vendor,
            response.model,
            response.finish_reason,
            response.usage,
            response.tool_calls,
            response.cost_usd,
            deployment,
            response.stop_sequence,
        )

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        raw: dict[str, Any] = orjson.loads(data)
        return cls(
            raw["content"],
            raw["vendor"],
            raw["model"],
            raw["finish_reason"],
            Usage(**raw["usage"]),
            tuple(ToolCall(**call) for call in raw["tool_calls"]),
            raw["cost_usd"],
            raw["deployment"],
            raw.get("stop_sequence"),
        )

    def response(self, **fields: Any) -> Response:
        """The answer as a ``Response`` (a hit: cost 0, no attempts)."""
        return Response(
            content=self.content,
            vendor=self.vendor,
            model=self.model,
            finish_reason=self.finish_reason,
            usage=self.usage,
            tool_calls=self.tool_calls,
            cost_usd=0.0,
            stop_sequence=self.stop_sequence,
            cache="hit",
            **fields,
        )

    def chunks(self, routing: Any) -> list[StreamChunk]:
        """The answer as a stream: text in pieces, each tool call as one delta, and the final
        chunk with the stored usage (cost 0: a hit is free)."""
        text = self.content
        pieces = [
            StreamChunk(
                delta=text[i : i + REPLAY_PIECE_CHARS], vendor=self.vendor, model=self.model
            )
            for i in range(0, len(text), REPLAY_PIECE_CHARS)
        ]
        if self.tool_calls:
            deltas = tuple(
                ToolCallDelta(i, call.id, call.name, call.arguments)
                for i, call in enumerate(self.tool_calls)
            )
            pieces.append(
                StreamChunk(tool_call_deltas=deltas, vendor=self.vendor, model=self.model)
            )
        final = StreamChunk(
            finish_reason=self.finish_reason,
            usage=self.usage,
            cost_usd=0.0,
            stop_sequence=self.stop_sequence,
            vendor=self.vendor,
            model=self.model,
            routing=routing,
        )
        return [*pieces, final]
