"""Folding a stream back into one answer: text joined, tool-call pieces assembled by index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .types import FinishReason, Response, StreamChunk, ToolCall, Usage

if TYPE_CHECKING:
    from .routing.model import RoutingDecision


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


# The most text of one streamed answer kept for its ``Response`` (the ledger, the cache, a
# resume's prefix): 2 Mi characters, several times any model's output limit. Every piece is
# still passed on; past this the answer is ``cut``, and a cut answer is neither cached nor
# resumed. Without it, a vendor streaming 60 MB of emoji held 240 MB of text and its join.
MAX_KEPT_CHARS = 2 * 1024 * 1024
# Pieces are joined into blocks this many at a time: a piece of a few characters costs some
# 50 bytes as its own str, ten times its text.
PIECES_PER_BLOCK = 256


class StreamAccumulator:
    """Feed every chunk of a stream; ``response()`` is what a non-streamed call would return
    (its text cut short at ``max_text`` characters, and ``cut`` then true)."""

    def __init__(self, vendor: str = "", model: str = "", max_text: int = MAX_KEPT_CHARS) -> None:
        self.vendor, self.model = vendor, model
        self._blocks: list[str] = []  # the text so far: joined blocks, then the latest pieces
        self._pieces: list[str] = []
        self._room = max_text
        self.cut = False
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.stop_sequence: str | None = None
        self.system_fingerprint: str | None = None
        self._logprobs: list[Any] = []

    def add(self, chunk: StreamChunk) -> bool:
        """Fold in a chunk; True when it carries text or tool-call pieces (to pass on now)."""
        if chunk.delta:
            if len(chunk.delta) <= self._room:
                self._pieces.append(chunk.delta)
                self._room -= len(chunk.delta)
                if len(self._pieces) == PIECES_PER_BLOCK:
                    self._blocks.append("".join(self._pieces))
                    self._pieces.clear()
            else:  # no later piece is kept either: the text kept stays a prefix
                self.cut, self._room = True, 0
        for delta in chunk.tool_call_deltas:
            call = self._calls.get(delta.index)
            if call is None:
                call = self._calls[delta.index] = _PartialCall()
            call.id = delta.id or call.id
            call.name = delta.name or call.name
            call.arguments.append(delta.arguments)
        self._logprobs.extend(chunk.logprobs)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage
        self.stop_sequence = chunk.stop_sequence or self.stop_sequence
        self.system_fingerprint = chunk.system_fingerprint or self.system_fingerprint
        self.vendor = chunk.vendor or self.vendor
        self.model = chunk.model or self.model
        return bool(chunk.delta or chunk.tool_call_deltas)

    @property
    def text(self) -> str:
        return "".join(self._blocks) + "".join(self._pieces)

    @property
    def logprobs(self) -> dict[str, Any] | None:
        """OpenAI's ``choices[].logprobs`` object for what streamed, if any piece had some."""
        return {"content": list(self._logprobs), "refusal": None} if self._logprobs else None

    @property
    def has_tool_calls(self) -> bool:
        return bool(self._calls)

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
            logprobs=self.logprobs,
            stop_sequence=self.stop_sequence,
            system_fingerprint=self.system_fingerprint,
        )


class FinalChunk:
    """A stream the dispatcher relays, folded as it passes (a ``StreamAccumulator``), and the
    one final chunk the caller sees at its end. Named after the deployment's vendor."""

    def __init__(self, vendor: str, model: str) -> None:
        self.vendor = vendor
        self.fold = StreamAccumulator(vendor, model)

    def strip(self, chunk: StreamChunk) -> StreamChunk:
        """The chunk as passed on: pieces only, named after the deployment's vendor."""
        if chunk.finish_reason is None and chunk.usage is None and chunk.vendor == self.vendor:
            return chunk
        return StreamChunk(
            delta=chunk.delta,
            tool_call_deltas=chunk.tool_call_deltas,
            vendor=self.vendor,
            model=self.fold.model,
            logprobs=chunk.logprobs,
        )

    @property
    def text(self) -> str:
        return self.fold.text

    @property
    def model(self) -> str:
        return self.fold.model

    @property
    def finish_reason(self) -> FinishReason:
        """The vendor's, else ``tool_calls`` when it called tools, else ``stop``."""
        return self.fold.finish_reason or ("tool_calls" if self.fold.has_tool_calls else "stop")

    def chunk(
        self,
        routing: RoutingDecision,
        cost_usd: float | None,
        usage: Usage | None,
        resumed_from: tuple[str, ...] = (),
    ) -> StreamChunk:
        """The last chunk: why the answer ended, its usage, cost and routing decision."""
        return StreamChunk(
            finish_reason=self.finish_reason,
            usage=usage or Usage(),
            vendor=self.vendor,
            model=self.model,
            routing=routing,
            cost_usd=cost_usd,
            resumed_from=resumed_from,
            stop_sequence=self.fold.stop_sequence,
            system_fingerprint=self.fold.system_fingerprint,
        )

    def as_response(
        self, *, complete: bool = True, cost_usd: float | None = None, usage: Usage | None = None
    ) -> Response:
        """The stream as one answer (for the ledger), as the final chunk described it; a
        stream that broke off has only the vendor's own finish reason, if any."""
        fold = self.fold
        return Response(
            content=fold.text,
            vendor=self.vendor,
            model=fold.model,
            finish_reason=self.finish_reason if complete else fold.finish_reason,
            usage=usage or fold.usage or Usage(),
            tool_calls=fold.tool_calls,
            cost_usd=cost_usd,
            stop_sequence=fold.stop_sequence,
            system_fingerprint=fold.system_fingerprint,
        )
