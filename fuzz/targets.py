"""Fuzz targets: one function per parser of untrusted input, each with its contract.

A target takes the fuzzer's bytes and raises ``Broken`` when the code under test broke its
contract: an exception it does not document (a vendor parser may raise only ``VendorError``,
the config loader only ``ConfigError``), or a decoder whose output depends on how its input
was split into reads. The runner (``fuzz/run.py``) and the replay test
(``tests/chaos/test_fuzz.py``) share these functions.

Inputs are used two ways, chosen by the first byte: as the wire bytes themselves (JSON, SSE,
YAML...), or as a recipe for a structure built from a vocabulary of the format's field names
(``shape``), which reaches type confusions (``"choices": "x"``) that byte mutation rarely does.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from llmdispatcher.config_file import _parse, config_from_mapping
from llmdispatcher.errors import ConfigError, VendorError
from llmdispatcher.types import Request, StreamChunk
from llmdispatcher.vendors.anthropic import AnthropicVendor
from llmdispatcher.vendors.bedrock import BedrockVendor
from llmdispatcher.vendors.connection import Connection
from llmdispatcher.vendors.eventstream import EventStreamDecoder, encode_message
from llmdispatcher.vendors.gemini import GeminiVendor
from llmdispatcher.vendors.http_vendor import HttpVendor
from llmdispatcher.vendors.ollama import OllamaVendor
from llmdispatcher.vendors.openai import OpenAIVendor
from llmdispatcher.vendors.sse import NDJSONDecoder, SSEDecoder
from llmdispatcher.vendors.transport import HttpRequest, HttpResponse

SRC = Path(__file__).resolve().parents[1] / "src"
REQUEST = Request(model="m", messages=[{"role": "user", "content": "hi"}])

# Field names each format uses, so that built structures look like the real thing.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "openai": (
        "id",
        "object",
        "model",
        "choices",
        "index",
        "message",
        "delta",
        "role",
        "content",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "cached_tokens",
        "completion_tokens_details",
        "reasoning_tokens",
        "error",
        "code",
        "type",
        "refusal",
    ),
    "anthropic": (
        "id",
        "type",
        "role",
        "model",
        "content",
        "text",
        "tool_use",
        "input",
        "name",
        "stop_reason",
        "usage",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "message",
        "index",
        "delta",
        "text_delta",
        "input_json_delta",
        "partial_json",
        "content_block",
        "error",
        "thinking",
    ),
    "gemini": (
        "candidates",
        "content",
        "parts",
        "text",
        "role",
        "finishReason",
        "index",
        "functionCall",
        "name",
        "args",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
        "thoughtsTokenCount",
        "modelVersion",
        "promptFeedback",
        "blockReason",
        "error",
        "code",
        "status",
        "message",
        "thought",
        "cachedContentTokenCount",
        "responseId",
    ),
    "ollama": (
        "model",
        "created_at",
        "message",
        "role",
        "content",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "done",
        "done_reason",
        "prompt_eval_count",
        "eval_count",
        "error",
        "thinking",
        "images",
    ),
    "config": (
        "default_vendor",
        "fallback_vendors",
        "timeout",
        "retry_policy",
        "max_retries",
        "backoff",
        "base_delay",
        "max_delay",
        "jitter",
        "routing_rules",
        "vendor",
        "priority",
        "condition",
        "model_pattern",
        "max_tokens",
        "vendors",
        "type",
        "api_key",
        "base_url",
        "model_groups",
        "deployments",
        "model",
        "fallbacks",
        "strategy",
        "hedge_after_s",
        "budgets",
        "state_url",
        "ledger_url",
        "circuit_breaker",
        "failure_threshold",
        "cooldown_s",
        "gateway",
        "api_keys",
        "key",
        "port",
        "workers",
        "prices",
        "openai",
        "group",
        "weight",
        "rpm",
        "tpm",
        "retry_budget",
        "rate_limit_wait_s",
        "metadata",
    ),
    "bedrock": (
        "output",
        "message",
        "role",
        "content",
        "text",
        "toolUse",
        "toolUseId",
        "name",
        "input",
        "stopReason",
        "usage",
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
        "contentBlockIndex",
        "start",
        "delta",
        "reasoningContent",
    ),
}
# Bedrock's stream event names (the ``:event-type`` header of an event-stream frame).
BEDROCK_EVENTS = ("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
                  "messageStop", "metadata", "internalServerException")  # fmt: skip
# Wire values a structure may hold besides random ones.
WORDS = ("text", "tool_use", "stop", "length", "STOP", "SAFETY", "tool_calls", "assistant",
         "message_start", "content_block_delta", "[DONE]", "exponential", "priority", "openai",
         "${HOME}", "${X:-y}", "gpt-4o")  # fmt: skip


class Broken(Exception):
    """The code under test broke its contract; ``signature`` names where."""

    def __init__(self, signature: str, detail: str) -> None:
        super().__init__(f"{signature}: {detail}")
        self.signature = signature


class Bytes:
    """Reads the fuzzer's input as a stream of small decisions (like atheris'
    FuzzedDataProvider, which it stands in for so that the replay test needs no atheris)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def rest(self) -> bytes:
        rest, self.at = self.data[self.at :], len(self.data)
        return rest

    def take(self, n: int) -> bytes:
        piece = self.data[self.at : self.at + n]
        self.at += len(piece)
        return piece


def shape(source: Bytes, vocabulary: tuple[str, ...], depth: int = 0) -> Any:
    """A JSON-able value built from ``source``'s bytes."""
    kind = source.byte() % (9 if depth < 5 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return bool(source.byte() & 1)
    if kind == 2:
        return int.from_bytes(source.take(2), "little", signed=True)
    if kind == 3:
        return [0.5, -1.0, 1e308, float("inf")][source.byte() % 4]
    if kind == 4:
        return source.take(source.byte() % 12).decode("utf-8", "replace")
    if kind == 5:
        return WORDS[source.byte() % len(WORDS)]
    if kind in (6, 7):
        keys = [vocabulary[source.byte() % len(vocabulary)] for _ in range(source.byte() % 5)]
        return {key: shape(source, vocabulary, depth + 1) for key in keys}
    return [shape(source, vocabulary, depth + 1) for _ in range(source.byte() % 4)]


def signature(exc: BaseException) -> str:
    """``ExceptionType@module.function``: the innermost frame in our package."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if SRC in path.parents:
            module = ".".join(path.relative_to(SRC).with_suffix("").parts)
            where = f"{module}.{frame.name}"
    return f"{type(exc).__name__}@{where}"


def guarded(allowed: tuple[type[BaseException], ...], call: Callable[[], object]) -> None:
    try:
        call()
    except allowed:
        pass
    except RecursionError:
        raise
    except Exception as exc:
        raise Broken(signature(exc), f"{type(exc).__name__}: {exc}"[:300]) from exc


def pieces(source: Bytes, data: bytes) -> list[bytes]:
    """``data`` cut where ``source`` says (as reads off a socket would cut it)."""
    cuts, at = [], 0
    while at < len(data) and len(cuts) < 16:
        step = source.byte() % 64 + 1
        cuts.append(data[at : at + step])
        at += step
    return [*cuts, data[at:]] if at < len(data) else cuts


# --- decoders ----------------------------------------------------------------------------------
def _split_invariant(decoder: Callable[[], Any], data: bytes, source: Bytes) -> None:
    whole = decoder()
    expected = [*whole.feed(data), *whole.flush()]
    split = decoder()
    found = [event for piece in pieces(source, data) for event in split.feed(piece)]
    found += split.flush()
    if found != expected:
        raise Broken(f"SplitDependent@{type(whole).__name__}", f"{expected!r} != {found!r}"[:300])


def sse(data: bytes) -> None:
    """SSEDecoder: raises only ValueError (a line that is not UTF-8, which ``HttpVendor`` turns
    into a retryable ``MalformedResponse``), and the events do not depend on how the bytes were
    read."""
    source = Bytes(data)
    body = source.take(source.byte() * 4)
    guarded((ValueError,), lambda: _split_invariant(SSEDecoder, body, source))


def ndjson(data: bytes) -> None:
    source = Bytes(data)
    body = source.take(source.byte() * 4)
    guarded((), lambda: _split_invariant(NDJSONDecoder, body, source))


def eventstream(data: bytes) -> None:
    """EventStreamDecoder: raises only ValueError (a bad CRC, length or header, which
    ``HttpVendor`` turns into a retryable ``MalformedResponse``; ``FrameOverBound`` is one),
    and the messages do not depend on how the bytes were read."""
    source = Bytes(data)
    body = source.take(source.byte() * 4)
    if source.byte() & 1:  # well-framed messages, so the fuzzer gets past the CRCs
        body = (
            b"".join(encode_message({":event-type": w}, source.take(8)) for w in WORDS[:3]) + body
        )

    def check() -> None:
        expected = list(EventStreamDecoder().feed(body))
        split = EventStreamDecoder()
        found = [m for piece in pieces(source, body) for m in split.feed(piece)]
        if found != expected:
            raise Broken("SplitDependent@EventStreamDecoder", f"{expected!r} != {found!r}"[:300])

    guarded((ValueError,), check)


# --- vendor parsers ----------------------------------------------------------------------------
class _Answer(HttpResponse):
    """A 200 whose body arrives in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.status, self.headers, self._pieces = 200, {}, pieces

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            if piece:
                yield piece


class _Wire:
    """An in-memory transport: every request is answered with ``next`` (set per input)."""

    def __init__(self) -> None:
        self.next: list[bytes] = []

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        return _Answer(self.next)

    async def aclose(self) -> None:
        return None


WIRE = _Wire()
LOOP = asyncio.new_event_loop()


def _vendors() -> dict[str, HttpVendor]:
    """Each adapter behind the in-memory wire: inputs take the same path a vendor's answer
    takes in production (``HttpVendor.send``/``stream``), so its contract is the real one."""
    reach = Connection(transport=WIRE)
    return {
        "openai": OpenAIVendor(api_key="sk-fuzz", connection=reach),
        "anthropic": AnthropicVendor(api_key="sk-ant-fuzz", connection=reach),
        "gemini": GeminiVendor(api_key="fuzz-key", connection=reach),
        "ollama": OllamaVendor(connection=reach),
        "bedrock": BedrockVendor(api_key="ABSK-fuzz", region="us-east-1", connection=reach),
    }


VENDORS = _vendors()


def _body(source: Bytes, vendor: str) -> bytes:
    if source.byte() & 1:
        return orjson.dumps(shape(source, VOCABULARY[vendor]), option=orjson.OPT_NON_STR_KEYS)
    return source.rest()


def response(vendor: str) -> Callable[[bytes], None]:
    """``vendor.send`` given any 200 body returns a Response or raises a VendorError."""
    adapter = VENDORS[vendor]

    def target(data: bytes) -> None:
        WIRE.next = [_body(Bytes(data), vendor)]
        guarded((VendorError,), lambda: LOOP.run_until_complete(adapter.send(REQUEST)))

    return target


def _frames(source: Bytes, vendor: str) -> bytes:
    """A stream body: raw bytes, or framed built events (SSE, NDJSON for Ollama)."""
    if not source.byte() & 1:
        return source.rest()
    out = []
    for _ in range(source.byte() % 6 + 1):
        obj = orjson.dumps(shape(source, VOCABULARY[vendor]), option=orjson.OPT_NON_STR_KEYS)
        if vendor == "bedrock":  # binary event-stream frames, not SSE
            name = BEDROCK_EVENTS[source.byte() % len(BEDROCK_EVENTS)]
            kind = "exception" if name.endswith("Exception") else "event"
            headers = {":event-type": name, ":exception-type": name, ":message-type": kind}
            out.append(encode_message(headers, obj))
        elif vendor == "ollama":
            out.append(obj + b"\n")
        else:
            event = WORDS[source.byte() % len(WORDS)].encode()
            name = b"event: " + event + b"\n" if vendor == "anthropic" else b""
            out.append(name + b"data: " + obj + b"\n\n")
    return b"".join(out)


def stream(vendor: str) -> Callable[[bytes], None]:
    """``vendor.stream`` given any 200 body, cut into any reads, yields chunks or raises a
    VendorError."""
    adapter = VENDORS[vendor]

    async def read() -> list[StreamChunk]:
        return [chunk async for chunk in adapter.stream(REQUEST)]

    def target(data: bytes) -> None:
        source = Bytes(data)
        cuts = Bytes(source.take(8))  # how the body is cut into reads
        WIRE.next = pieces(cuts, _frames(source, vendor))
        guarded((VendorError,), lambda: LOOP.run_until_complete(read()))

    return target


# --- the config loader -------------------------------------------------------------------------
def config(data: bytes) -> None:
    """A config file's text (YAML or TOML) or mapping gives a Config or a ConfigError."""
    source = Bytes(data)
    mode = source.byte() % 3
    if mode == 2:
        built = {k: shape(source, VOCABULARY["config"], 1) for k in _keys(source)}
        guarded((ConfigError,), lambda: config_from_mapping(built, "fuzz"))
        return
    text = source.rest().decode("utf-8", "replace")
    path = Path("fuzz.yaml" if mode == 0 else "fuzz.toml")
    guarded((ConfigError,), lambda: config_from_mapping(_parse(path, text), str(path)))


def _keys(source: Bytes) -> Iterator[str]:
    for _ in range(source.byte() % 6):
        yield VOCABULARY["config"][source.byte() % len(VOCABULARY["config"])]


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sse": sse,
    "ndjson": ndjson,
    "eventstream": eventstream,
    **{f"{v}_response": response(v) for v in ("openai", "anthropic", "gemini", "ollama")},
    **{f"{v}_stream": stream(v) for v in ("openai", "anthropic", "gemini", "ollama")},
    "bedrock_response": response("bedrock"),
    "bedrock_stream": stream("bedrock"),
    "config": config,
}
