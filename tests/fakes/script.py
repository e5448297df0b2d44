"""Vendor-neutral scripted behaviours for the fake vendor servers.

A test enqueues steps on a fake (``fake.enqueue(Reply(...), Fail("rate_limit"))``); each step
answers exactly one model request (chat / messages / generateContent ...), in FIFO order. Every
fake renders the same step in its own vendor's wire format, so one script drives any vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
FAIL_KINDS = (
    "rate_limit",
    "quota",
    "server",
    "overloaded",
    "auth",
    "bad_request",
    "not_found",
    "context_length",
    "timeout",
    "conflict",
)


@dataclass
class ToolCallSpec:
    """One tool call the model makes; ``arguments`` is rendered per vendor (a JSON string for
    OpenAI, an object for Anthropic/Gemini/Ollama). ``custom_input``: a call to an OpenAI
    custom tool with this free-form input (the OpenAI fakes only)."""

    name: str
    arguments: dict[str, object] = field(default_factory=dict)
    custom_input: str | None = None


@dataclass
class Reply:
    """A successful answer, used for both streamed and non-streamed requests.

    ``finish`` is taken literally (a Reply with tool calls and ``finish="stop"`` renders
    ``finish_reason: "stop"``, as OpenAI does when ``tool_choice`` names a function); pass
    ``finish="tool_calls"`` for the usual tool-call answer.
    """

    text: str = "Hello from the fake"
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish: str = "stop"
    prompt_tokens: int = 9
    completion_tokens: int = 12
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    chunk_size: int = 4
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # The stop sequence that ended the answer (vendors that say which: Anthropic).
    stop_sequence: str | None = None

    def __post_init__(self) -> None:
        if self.finish not in FINISH_REASONS:
            raise ValueError(f"Reply.finish must be one of {FINISH_REASONS}, not {self.finish!r}")
        if self.chunk_size < 1:
            raise ValueError("Reply.chunk_size must be >= 1")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def text_pieces(self) -> list[str]:
        """The text split into streamed deltas of ``chunk_size`` characters."""
        return split_text(self.text, self.chunk_size)


@dataclass
class Fail:
    """An HTTP error response before any body (status/type/code per vendor for ``kind``)."""

    kind: str
    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAIL_KINDS:
            raise ValueError(f"Fail.kind must be one of {FAIL_KINDS}, not {self.kind!r}")


@dataclass
class BreakStream:
    """A streamed reply whose connection is dropped after ``after_chunks`` content chunks (no
    terminal event). For a non-streamed request the connection is dropped before any byte."""

    text: str = "Hello from the fake"
    after_chunks: int = 0
    chunk_size: int = 4


@dataclass
class MidStreamError:
    """HTTP 200, the stream head and ``after_chunks`` content chunks, then the vendor's in-stream
    error event for ``kind``. For a non-streamed request it behaves like ``Fail(kind)``."""

    text: str = "Hello from the fake"
    after_chunks: int = 0
    kind: str = "server"
    chunk_size: int = 4

    def __post_init__(self) -> None:
        if self.kind not in FAIL_KINDS:
            raise ValueError(f"MidStreamError.kind must be one of {FAIL_KINDS}, not {self.kind!r}")


@dataclass
class Stall:
    """Accept the request and send nothing for ``seconds``. For a stream with ``after_chunks`` > 0
    the status, headers, stream head and that many content chunks go out first. If the client is
    still there afterwards the fake finishes with its default reply (so Stall is "very slow")."""

    seconds: float = 30.0
    after_chunks: int = 0


Step = Reply | Fail | BreakStream | MidStreamError | Stall


def split_text(text: str, size: int) -> list[str]:
    """``text`` in pieces of ``size`` characters (no pieces for an empty text)."""
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]
