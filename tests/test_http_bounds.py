"""The HTTP client's bounds against raw servers on 127.0.0.1: oversized headers and bodies,
compression bombs, bytes beyond an answer, protocol switches and a stream nobody reads."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from llmdispatcher.errors import ResponseTooLarge, VendorConnectionError, VendorTimeout
from llmdispatcher.vendors.http import HttpClient, HttpOptions
from llmdispatcher.vendors.http_connection import DECODE_STEP, HIGH_WATER
from llmdispatcher.vendors.http_options import BUFFERS, ResponseBounds
from llmdispatcher.vendors.sse import FrameTooLarge, SSEDecoder
from llmdispatcher.vendors.transport import HttpRequest

from .raw_server import Server, keep_answering, read_request, response, serve

SMALL = ResponseBounds(max_body_bytes=10_000, max_stream_bytes=10_000)


@pytest.fixture(autouse=True)
def budget_given_back() -> Iterator[None]:
    """Whatever each test did (refused, cut, stalled, hung up on), every byte it took of the
    process-wide budget is given back by the end."""
    yield
    assert BUFFERS.held == 0


async def test_a_one_megabyte_header_is_refused_and_the_connection_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up

    async with serve(handler) as server:
        with pytest.raises(ResponseTooLarge, match="max_header_bytes") as caught:
            await HttpClient("v").request("GET", server.url, headers={})
        await asyncio.wait_for(server.closed.wait(), 2)
    assert caught.value.retryable


async def test_headers_under_the_bound_pass_even_in_pieces() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        head = response(b"ok", "X-Big: " + "a" * 40_000, "X-More: " + "b" * 20_000)
        for start in range(0, len(head), 16_384):
            writer.write(head[start : start + 16_384])
            await writer.drain()
            await asyncio.sleep(0.01)

    async with serve(handler) as server:
        result = await HttpClient("v").request("GET", server.url, headers={})
    assert (len(result.headers["x-big"]), len(result.headers["x-more"])) == (40_000, 20_000)


@pytest.mark.parametrize(("chunked", "streamed"), [(False, False), (True, False), (True, True)])
async def test_a_body_past_its_bound_is_refused(chunked: bool, streamed: bool) -> None:
    body = b"x" * 20_000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        if chunked:
            writer.write(response(b"", "Transfer-Encoding: chunked"))
            for _ in range(20):
                writer.write(b"3e8\r\n" + body[:1000] + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(response(body))
        await writer.drain()
        await reader.read()

    bound = "max_stream_bytes" if streamed else "max_body_bytes"
    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(bounds=SMALL))
        with pytest.raises(ResponseTooLarge, match=bound) as caught:
            if streamed:
                async with client.stream("POST", server.url, headers={}, body=b"{}") as stream:
                    async for _ in stream.chunks():
                        pass
            else:
                await client.request("POST", server.url, headers={}, body=b"{}")
        await asyncio.wait_for(server.closed.wait(), 2)
    assert (caught.value.status, caught.value.vendor) == (200, "v")


async def test_an_embeddings_answer_has_its_own_larger_bound() -> None:
    """A chat answer of 20 kB passes no 10 kB bound; an embeddings answer of the same size
    is held to ``max_embeddings_bytes`` instead, and passes."""
    body = b"[" + b"0.5," * 5_000 + b"0.5]"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            writer.write(response(body))
            await writer.drain()

    bounds = ResponseBounds(max_body_bytes=10_000, max_embeddings_bytes=30_000)
    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(bounds=bounds))
        request = HttpRequest("POST", server.url, {}, b"{}", embeddings=True)
        answer = await client.handle_async_request(request)
        assert await answer.read() == body
        with pytest.raises(ResponseTooLarge, match="max_body_bytes"):
            await client.handle_async_request(replace(request, embeddings=False))
        await client.aclose()


@pytest.mark.parametrize(
    "setting", ["max_body_bytes", "max_embeddings_bytes", "max_line_bytes", "max_stream_bytes"]
)
def test_a_bound_below_a_kilobyte_is_refused(setting: str) -> None:
    with pytest.raises(ValueError, match=f"bounds.{setting}: must be a whole number of bytes"):
        ResponseBounds(**{setting: 10})


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_compression_bomb_stops_at_max_decompressed_bytes(streamed: bool) -> None:
    bomb = gzip.compress(b"\0" * (32 << 20), compresslevel=9)  # ~1,000:1; 32 KiB on the wire
    assert len(bomb) < SMALL.max_body_bytes * 4

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(bomb, "Content-Encoding: gzip"))
        await writer.drain()
        await reader.read()

    bounds = ResponseBounds(max_decompressed_bytes=1 << 20, max_stream_bytes=1 << 20)
    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(bounds=bounds))
        with pytest.raises(ResponseTooLarge, match="decompressed body passed 1,048,576 bytes"):
            if streamed:
                async with client.stream("GET", server.url, headers={}) as stream:
                    held = sum([len(piece) async for piece in stream.chunks()])
                    assert held <= 1 << 20
            else:
                await client.request("GET", server.url, headers={})
        await asyncio.wait_for(server.closed.wait(), 2)


async def test_a_compressed_stream_is_inflated_only_as_fast_as_it_is_read() -> None:
    """A stream's bomb (64 MiB of zeros, 64 KiB on the wire, all of it arrived at once) is
    inflated a step at a time as its reader takes it: what is held at any moment stays near
    ``HIGH_WATER`` plus one ``DECODE_STEP``, never the whole inflated body, and the
    connection is read no further meanwhile."""
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(bomb, "Content-Encoding: gzip"))
        await writer.drain()
        await reader.read()

    most, total = 0, 0
    async with serve(handler) as server:
        client = HttpClient("v")
        async with client.stream("GET", server.url, headers={}) as stream:
            async for piece in stream.chunks():
                most = max(most, len(piece) + BUFFERS.held)
                total += len(piece)
                await asyncio.sleep(0)  # a reader slower than the wire
        await client.aclose()
    assert total == 64 << 20
    assert most <= HIGH_WATER + 2 * DECODE_STEP, most


async def test_a_deflate_bomb_is_bounded_too() -> None:
    bomb = zlib.compress(b"\0" * (8 << 20), 9)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(bomb, "Content-Encoding: deflate"))
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(bounds=ResponseBounds(max_decompressed_bytes=4096)))
        with pytest.raises(ResponseTooLarge):
            await client.request("GET", server.url, headers={})


async def test_bytes_beyond_an_answer_never_reach_the_next_request() -> None:
    """A server that sends a second answer nobody asked for: the next request gets its own
    answer on a new connection, never the stray one."""
    stray = response(b"WRONG")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            writer.write(response(b"right") + (stray if server.connections == 1 else b""))
            await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v")
        for _ in range(3):
            assert (await client.request("GET", server.url, headers={})).body == b"right"
    assert server.connections == 2


async def test_garbage_after_an_answer_keeps_the_answer_but_not_the_connection() -> None:
    box: list[Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, box[0])
            writer.write(response(b"ok") + b"\x00garbage\r\n")
            await writer.drain()

    async with serve(handler) as server:
        box.append(server)
        client = HttpClient("v")
        for _ in range(2):
            assert (await client.request("GET", server.url, headers={})).body == b"ok"
    assert server.connections == 2


async def test_a_protocol_switch_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
            b"\r\n\r\n\x81\x05hello"
        )
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        with pytest.raises(VendorConnectionError, match=r"switched protocols \(HTTP 101\)"):
            await HttpClient("v").request("GET", server.url, headers={})
        await asyncio.wait_for(server.closed.wait(), 2)


async def test_a_stream_nobody_reads_is_closed_after_the_stall_timeout() -> None:
    """Its buffer full, reading paused: after ``stall_timeout`` the vendor sees the hang-up and
    the connection slot is free for the next request, though the stream is still open."""
    piece = b"x" * 65536

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"", "Transfer-Encoding: chunked"))
        while True:  # endless: only the client's hang-up ends it
            writer.write(b"10000\r\n" + piece + b"\r\n")
            await writer.drain()

    box: list[Server] = []
    options = HttpOptions(stall_timeout=0.2, max_connections=1)
    async with serve(handler) as server, serve(keep_answering(box)) as other:
        box.append(other)
        client = HttpClient("v", options)
        async with client.stream("GET", server.url, headers={}) as stream:
            await asyncio.wait_for(server.closed.wait(), 5)  # not reading: hung up on
            second = await asyncio.wait_for(client.request("GET", other.url, headers={}), 5)
            assert second.status == 200
            with pytest.raises(VendorTimeout, match="stall_timeout") as caught:
                async for _ in stream.chunks():
                    pass
        assert not caught.value.retryable  # the reader stalled, not the vendor
        await client.aclose()


async def test_a_complete_answer_left_unread_frees_its_slot_but_stays_readable() -> None:
    """A short stream ends long before its reader comes for it (the common case: an answer
    is a few KB). After ``stall_timeout`` its connection slot is freed; what arrived is kept."""
    box: list[Server] = []
    options = HttpOptions(stall_timeout=0.2, max_connections=1)
    async with serve(keep_answering(box, b"data: [DONE]\n\n")) as server:
        box.append(server)
        client = HttpClient("v", options)
        async with client.stream("GET", server.url, headers={}) as unread:
            second = await asyncio.wait_for(client.request("GET", server.url, headers={}), 5)
            assert second.body == b"data: [DONE]\n\n"
            assert b"".join([p async for p in unread.chunks()]) == b"data: [DONE]\n\n"
        await client.aclose()
    assert server.connections == 2  # the stalled one was closed, not pooled


async def test_an_answer_that_trickles_is_cut_at_answer_timeout() -> None:
    """A byte every 20 ms never trips a 5 s read timeout; ``answer_timeout`` bounds the whole
    answer, and the vendor sees the hang-up."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"", "Transfer-Encoding: chunked"))
        while True:  # endless: only the client's hang-up ends it
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(read_timeout=5, answer_timeout=0.3))
        with pytest.raises(VendorTimeout, match=r"longer than 0.3s in all"):
            async with client.stream("GET", server.url, headers={}) as stream:
                async for _ in stream.chunks():
                    pass
        await asyncio.wait_for(server.closed.wait(), 5)
        await client.aclose()


async def test_answers_together_past_the_process_budget_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four answers of 1.5 MiB each, each within its own bounds, held at once: the budget of
    4 MiB admits two and refuses the rest, which then fail over like any too-large answer."""
    monkeypatch.setattr(BUFFERS, "limit", 4 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = packer.compress(b"\0" * (3 << 19)) + packer.flush(zlib.Z_SYNC_FLUSH)
    rest = packer.flush()
    started = asyncio.Event()
    halves_sent = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal halves_sent
        await read_request(reader, server)
        head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
        writer.write(f"{head}{len(first) + len(rest)}\r\n\r\n".encode() + first)
        await writer.drain()
        halves_sent += 1
        if halves_sent == 4:
            started.set()
        await started.wait()
        await asyncio.sleep(0.3)  # every first half is in and held before any answer ends
        writer.write(rest)
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(max_connections=8))
        answers = await asyncio.gather(
            *(client.request("GET", server.url, headers={}) for _ in range(4)),
            return_exceptions=True,
        )
        await client.aclose()
    refused = [a for a in answers if isinstance(a, ResponseTooLarge)]
    assert len(refused) == 2, answers
    assert "held in this process passed 4,194,304 bytes together" in str(refused[0])
    assert all(a.retryable for a in refused)
    whole = [a for a in answers if not isinstance(a, BaseException)]
    assert [len(a.body) for a in whole] == [3 << 19, 3 << 19]


async def test_a_config_file_sets_a_vendors_bounds_for_its_client_and_decoders() -> None:
    """``vendors.NAME.bounds`` in a file reaches the vendor's HTTP client (a whole answer past
    ``max_body_bytes``) and its stream decoder (a line past ``max_line_bytes``)."""
    from llmdispatcher.config_file import config_from_mapping
    from llmdispatcher.errors import ConfigError
    from llmdispatcher.types import Request
    from llmdispatcher.vendors import vendor_class

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader, server)
            streamed = b'"stream":true' in head.replace(b" ", b"")
            writer.write(response(b"data: {" + b"x" * 5000 if streamed else b"{" + b"x" * 9000))
            await writer.drain()

    async with serve(handler) as server:
        bounds = {"max_line_bytes": 4096, "max_body_bytes": 8192}
        spec = {"type": "openai", "api_key": "sk-x", "base_url": server.url, "bounds": bounds}
        config = config_from_mapping({"vendors": {"v": spec}}, "test.yaml")
        vendor = vendor_class("openai")(**config.vendors[0].options)
        ask = Request(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(ResponseTooLarge, match="max_body_bytes"):
            await vendor.send(ask)
        with pytest.raises(ResponseTooLarge, match="max_line_bytes"):
            async for _ in vendor.stream(ask):
                pass
        await vendor.aclose()
    with pytest.raises(ConfigError, match=r"bounds\.max_line_bytes: must be a whole number"):
        spec["bounds"] = {"max_line_bytes": 0}
        config_from_mapping({"vendors": {"v": spec}}, "test.yaml")


@pytest.mark.parametrize("framing", ["line", "event"])
def test_a_refused_line_lets_go_of_its_bytes_at_once(framing: str) -> None:
    """Eight 1 MiB pieces of one line (or of one event's data lines), then the ninth passes the
    8 MiB bound: the decoder, still alive (as a request's error traceback keeps it while the
    request is retried), holds none of them any more."""
    decoder = SSEDecoder(max_line=8 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge):
            for _ in range(9):
                piece = b"x" * (1 << 20)
                decoder.feed(b"data: " + piece + b"\n" if framing == "event" else piece)
                del piece
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 3 << 20, held  # at most the last piece, kept by the error's traceback


async def test_a_compressed_error_body_on_a_stream_is_read_whole() -> None:
    """A stream's error answer is read whole (``read``), compressed or not: the lazy inflation
    of streams must not leave it waiting for a reader that takes nothing (before the fix it
    waited forever), and it is held to the bound of a whole answer."""
    error = gzip.compress(b'{"error": "' + b"e" * (2 << 20) + b'"}')
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            body = bomb if len(server.requests) > 1 else error
            head = f"HTTP/1.1 500 Oops\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}"
            writer.write(f"{head}\r\n\r\n".encode() + body)
            await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(bounds=ResponseBounds(max_decompressed_bytes=4 << 20)))
        async with client.stream("POST", server.url, headers={}, body=b"{}") as stream:
            assert stream.status == 500
            body = await asyncio.wait_for(stream.read(), 10)
        assert len(body) == (2 << 20) + 13
        with pytest.raises(ResponseTooLarge, match="max_decompressed_bytes"):
            async with client.stream("POST", server.url, headers={}, body=b"{}") as stream:
                await asyncio.wait_for(stream.read(), 10)
        await client.aclose()
