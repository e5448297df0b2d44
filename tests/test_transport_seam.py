"""HttpVendor's transport seam, and answers its translation hooks cannot read.

A vendor answers through an in-memory transport (no socket: its base URL points at a port
nothing listens on); a malformed answer from a real local server is a retryable
``MalformedResponse`` that the dispatcher retries."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import orjson
import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, RetryPolicy
from llmdispatcher.errors import MalformedResponse, RateLimitError, ResponseTooLarge
from llmdispatcher.types import Response, StreamChunk, Usage
from llmdispatcher.vendors import OpenAIVendor
from llmdispatcher.vendors.base import secret_from
from llmdispatcher.vendors.connection import Connection
from llmdispatcher.vendors.error_mapping import ErrorInfo
from llmdispatcher.vendors.http_options import ResponseBounds
from llmdispatcher.vendors.http_vendor import HttpCall, HttpVendor, StreamDecoder
from llmdispatcher.vendors.sse import NDJSONDecoder
from llmdispatcher.vendors.transport import BufferedResponse, HttpRequest, HttpResponse

from .raw_server import read_request, response, serve

HELLO = Request(model="m", messages=[{"role": "user", "content": "hi"}])
NOWHERE = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there


class Streamed(HttpResponse):
    """An answer whose body arrives in the given pieces."""

    def __init__(self, status: int, pieces: list[bytes]) -> None:
        self.status = status
        self.headers: Mapping[str, str] = {"content-type": "application/x-ndjson"}
        self.pieces = pieces
        self.closed = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)
            yield piece

    async def aclose(self) -> None:
        self.closed += 1


class MemoryTransport:
    """Answers each request with the next prepared response; records what it was asked."""

    def __init__(self, *answers: HttpResponse) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []
        self.closed = False

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.answers.pop(0)

    async def aclose(self) -> None:
        self.closed = True


class LineDecoder:
    """``{"text": ...}`` per NDJSON line, ``{"done": true}`` last."""

    def __init__(self, max_line: int) -> None:
        self.lines = NDJSONDecoder(max_line)

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for line in self.lines.feed(data):
            obj = orjson.loads(line)
            yield StreamChunk(delta=obj["text"], finish_reason="stop" if obj.get("done") else None)

    def finish(self) -> Iterator[StreamChunk]:
        return iter(())


class EchoVendor(HttpVendor):
    """The smallest HTTP vendor: ``{"text": ...}`` answers."""

    def __init__(self, transport: MemoryTransport, max_line: int = 1024) -> None:
        super().__init__(
            name="echo",
            base_url=NOWHERE,
            api_key=secret_from("sk-echo"),
            connection=Connection(
                transport=transport, bounds=ResponseBounds(max_line_bytes=max_line)
            ),
        )

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        body = orjson.dumps({"model": request.model, "stream": stream})
        return HttpCall(f"{self.base_url}/echo", {"Content-Type": "application/json"}, body)

    def parse_response(self, data: Any, request: Request) -> Response:
        return Response(data["text"], self.name, request.model, "stop", Usage())

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return LineDecoder(self.max_line)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return ErrorInfo(body.decode(), "rate_limit_error" if status == 429 else None)


async def test_a_vendor_answers_through_an_in_memory_transport() -> None:
    transport = MemoryTransport(BufferedResponse(200, {}, b'{"text": "hello"}'))
    vendor = EchoVendor(transport)
    answer = await vendor.send(HELLO)
    assert answer.content == "hello"
    (sent,) = transport.requests
    assert (sent.method, sent.url, sent.stream) == ("POST", f"{NOWHERE}/echo", False)
    assert orjson.loads(sent.body or b"") == {"model": "m", "stream": False}
    await vendor.aclose()
    assert transport.closed


async def test_a_stream_through_the_transport_is_decoded_and_released_once() -> None:
    body = Streamed(
        200, [b'{"text": "he', b'llo"}\n{"text": " you"}\n{"text": "", "done": ', b"1}\n"]
    )
    transport = MemoryTransport(body)
    chunks = [chunk async for chunk in EchoVendor(transport).stream(HELLO)]
    assert "".join(c.delta for c in chunks) == "hello you"
    assert chunks[-1].finish_reason == "stop"
    assert transport.requests[0].stream
    assert body.closed == 1


async def test_an_error_status_through_the_transport_is_the_vendors_error() -> None:
    body = Streamed(429, [b"slow down"])
    with pytest.raises(RateLimitError, match="slow down"):
        async for _ in EchoVendor(MemoryTransport(body)).stream(HELLO):
            pass
    assert body.closed == 1


@pytest.mark.parametrize("answer", [b"not json at all", b"[1, 2]", b'{"other": 1}'])
async def test_an_unreadable_answer_is_a_retryable_malformed_response(answer: bytes) -> None:
    vendor = EchoVendor(MemoryTransport(BufferedResponse(200, {}, answer)))
    with pytest.raises(MalformedResponse) as caught:
        await vendor.send(HELLO)
    assert (caught.value.status, caught.value.retryable) == (200, True)


async def test_a_stream_frame_that_breaks_the_decoder_is_a_malformed_response() -> None:
    body = Streamed(200, [b'{"text": "ok"}\n', b'{"no_text": 1}\n'])
    with pytest.raises(MalformedResponse, match="KeyError") as caught:
        async for _ in EchoVendor(MemoryTransport(body)).stream(HELLO):
            pass
    assert caught.value.status == 200
    assert body.closed == 1


def completion(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


async def test_malformed_vendor_json_is_retried_by_the_dispatcher() -> None:
    """A 200 whose JSON is not a completion (as an overloaded proxy in front of a vendor
    sends): the dispatcher retries it like any vendor fault."""
    answers = [b'{"choices": "overloaded"}', completion("second try")]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await read_request(reader, server)
            writer.write(response(answers.pop(0), "Content-Type: application/json"))
            await writer.drain()

    async with serve(handler) as server:
        vendor = OpenAIVendor(api_key="sk-test", base_url=server.url.removesuffix("/chat"))
        dispatcher = Dispatcher(
            Config(retry_policy=RetryPolicy(max_retries=1, base_delay=0.1, max_delay=1)),
            vendors=[vendor],
            clock=FakeClock(),
            rng=random.Random(1),
        )
        answer = await dispatcher.send(
            Request(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        )
        await vendor.aclose()
    assert answer.content == "second try"
    assert [a.status for a in answer.attempts] == ["MalformedResponse", "ok"]


async def test_a_stream_line_past_the_bound_is_response_too_large() -> None:
    body = Streamed(200, [b'{"text": "ok"}\n', b'{"text": "' + b"x" * 600, b"x" * 600])
    with pytest.raises(ResponseTooLarge, match="max_line_bytes") as caught:
        async for _ in EchoVendor(MemoryTransport(body), max_line=1024).stream(HELLO):
            pass
    assert (caught.value.status, caught.value.retryable) == (200, True)
    assert body.closed == 1


async def test_a_real_vendor_takes_a_transport_through_its_connection() -> None:
    """Every HTTP vendor forwards ``connection.transport``: OpenAI's adapter, no socket."""
    from llmdispatcher.vendors import OpenAIVendor

    body = b'{"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o", '
    body += b'"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, '
    body += b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1, '
    body += b'"total_tokens": 4}}'
    transport = MemoryTransport(BufferedResponse(200, {}, body))
    vendor = OpenAIVendor(api_key="sk-test-0123456789", connection=Connection(transport=transport))
    answer = await vendor.send(Request(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
    assert (answer.content, answer.usage.total_tokens) == ("hi", 4)
    assert transport.requests[0].url == "https://api.openai.com/v1/chat/completions"
