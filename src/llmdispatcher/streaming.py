"""Folding a stream back into one answer: text joined, tool-call pieces assembled by index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import FinishReason, Response, StreamChunk, ToolCall, Usage


class FinalChunk:
    """What the dispatcher keeps of a stream it relays: text so far, finish reason and usage,
    which it folds into the one final chunk the caller sees."""

    def __init__(self, vendor: str, model: str) -> None:
        self.vendor, self.model = vendor, model
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.saw_tools = False
        self._text: list[str] = []

    def take(self, chunk: StreamChunk) -> bool:
        """Record a chunk; True when it carries text or tool pieces to pass on now."""
        self.finish = chunk.finish_reason or self.finish
        self.usage = chunk.usage or self.usage
        self.model = chunk.model or self.model
        if chunk.delta:
            self._text.append(chunk.delta)
        self.saw_tools = self.saw_tools or bool(chunk.tool_call_deltas)
        return bool(chunk.delta or chunk.tool_call_deltas)

    def strip(self, chunk: StreamChunk) -> StreamChunk:
        """The chunk as passed on: pieces only, named after the deployment's vendor."""
        if chunk.finish_reason is None and chunk.usage is None and chunk.vendor == self.vendor:
            return chunk
        return StreamChunk(
            delta=chunk.delta,
            tool_call_deltas=chunk.tool_call_deltas,
            vendor=self.vendor,
            model=self.model,
        )

    @property
    def text(self) -> str:
        return "".join(self._text)

    def chunk(self, **extra: Any) -> StreamChunk:
        finish = self.finish or ("tool_calls" if self.saw_tools else "stop")
        return StreamChunk(
            finish_reason=finish,
            usage=self.usage or Usage(),
            vendor=self.vendor,
            model=self.model,
            **extra,
        )

    def as_response(self) -> Response:
        return Response(
            content=self.text,
            vendor=self.vendor,
            model=self.model,
            finish_reason=self.finish,
            usage=self.usage or Usage(),
        )


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Feed every chunk of a stream; ``response()`` is what a non-streamed call would return."""

    def __init__(self, vendor: str = "", model: str = "") -> None:
        self.vendor, self.model = vendor, model
        self._text: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None

    def add(self, chunk: StreamChunk) -> None:
        if chunk.delta:
            self._text.append(chunk.delta)
        for delta in chunk.tool_call_deltas:
            call = self._calls.setdefault(delta.index, _PartialCall())
            call.id = delta.id or call.id
            call.name = delta.name or call.name
            call.arguments.append(delta.arguments)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage
        self.vendor = chunk.vendor or self.vendor
        self.model = chunk.model or self.model

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(c.id, c.name, "".join(c.arguments) or "{}")
            for _, c in sorted(self._calls.items())
        )

    def response(self) -> Response:
        calls = self.tool_calls
        finish = self.finish_reason or ("tool_calls" if calls else None)
        return Response(
            content=self.text,
            vendor=self.vendor,
            model=self.model,
            finish_reason=finish,
            usage=self.usage or Usage(),
            tool_calls=calls,
        )
