"""The shared HTTP/1.1 client (vendors/http.py) against raw servers on 127.0.0.1 that send
exactly the bytes each case needs: framing, keep-alive, stale connections, compression,
timeouts, hang-ups, connection caps and TLS."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from llmdispatcher.errors import ConfigError, VendorConnectionError, VendorTimeout
from llmdispatcher.vendors.http import HttpClient, HttpOptions

from .raw_server import JSON, Server, keep_answering, read_request, response, serve


async def test_requests_reuse_one_connection_and_frame_the_request_exactly() -> None:
    box: list[Server] = []
    async with serve(keep_answering(box)) as server:
        box.append(server)
        client = HttpClient("v")
        for _ in range(3):
            result = await client.request(
                "POST", server.url + "?x=1", headers={**JSON, "X-Api-Key": "k"}, body=b'{"a":1}'
            )
            assert (result.status, result.body) == (200, b'{"ok":true}')
        assert server.connections == 1
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /v1/chat?x=1 HTTP/1.1"
        port = server.url.split(":")[2].split("/")[0]
        assert f"Host: 127.0.0.1:{port}" in lines
        assert "Content-Length: 7" in lines
        assert "X-Api-Key: k" in lines
        assert body == b'{"a":1}'
        await client.aclose()


async def test_response_headers_are_case_insensitive_and_repeats_are_joined() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"{}", "X-RateLimit-Remaining: 7", "Via: a", "Via: b"))

    async with serve(handler) as server:
        result = await HttpClient("v").request("GET", server.url, headers={})
    assert result.headers["x-ratelimit-remaining"] == "7"
    assert result.headers.get("X-RATELIMIT-REMAINING") == "7"
    assert "x-RateLimit-Remaining" in result.headers
    assert result.headers["via"] == "a, b"
    assert b"Content-Length" not in server.requests[0]  # a GET has no body to announce


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"", "Transfer-Encoding: chunked", "Content-Type: text/event-stream"))
        writer.write(b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()  # the client must see the first piece before the rest exists
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v")
        async with client.stream("POST", server.url, headers=JSON, body=b"{}") as stream:
            assert stream.status == 200
            assert stream.headers["content-type"] == "text/event-stream"
            pieces = stream.chunks()
            assert await anext(pieces) == b"data:1"
            release.set()
            assert [p async for p in pieces] == [b"data:2"]


async def test_a_body_without_length_ends_when_the_server_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v")
        assert (await client.request("GET", server.url, headers={})).body == b"all of it"
        assert (await client.request("GET", server.url, headers={})).body == b"all of it"
    assert server.connections == 2  # never reused: the server said close


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # the standard's zlib wrapper
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw, in practice
    ],
)
async def test_compressed_bodies_are_decoded(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    text = b'{"content":"' + b"hello " * 500 + b'"}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(compress(text), f"Content-Encoding: {encoding}"))

    async with serve(handler) as server:
        result = await HttpClient("v").request("GET", server.url, headers={})
    assert result.body == text
    assert b"Accept-Encoding: gzip, deflate" in server.requests[0]


async def test_a_reused_connection_reset_after_the_request_was_sent_is_not_resent() -> None:
    """The server may have acted on a request it received: a second copy is for the retry
    layer to decide (and count), never sent behind its back."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"one"))  # keep-alive by default ...
        await writer.drain()
        await read_request(reader, server)  # ... then the next request arrives, unanswered
        writer.transport.abort()

    async with serve(handler) as server:
        client = HttpClient("v")
        assert (await client.request("POST", server.url, headers={}, body=b"{}")).body == b"one"
        with pytest.raises(VendorConnectionError, match="connection failed") as caught:
            await client.request("POST", server.url, headers={}, body=b"{}")
    assert caught.value.retryable
    assert (server.connections, len(server.requests)) == (1, 2)


@pytest.mark.parametrize("reset", [False, True])
async def test_a_connection_closed_after_its_answer_is_not_reused(reset: bool) -> None:
    """A server (tinyproxy is one) that closes after every answer without saying so: the next
    request, sent at once, before the event loop has read the hang-up, finds it closed and
    takes a new connection, whether the server closed with FIN or reset it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"ok"))  # no Connection: close
        await writer.drain()
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with serve(handler) as server:
        client = HttpClient("v")
        for _ in range(3):
            assert (await client.request("POST", server.url, headers={}, body=b"{}")).body == b"ok"
    assert (server.connections, len(server.requests)) == (3, 3)


async def test_a_fresh_connection_that_resets_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    async with serve(handler) as server:
        with pytest.raises(VendorConnectionError, match="connection failed") as caught:
            await HttpClient("myvendor").request("GET", server.url, headers={})
    assert caught.value.vendor == "myvendor"
    assert caught.value.retryable
    assert server.connections == 1  # not retried: only a reused connection may be stale


async def test_an_answer_cut_short_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async with serve(handler) as server:
        with pytest.raises(VendorConnectionError, match="connection failed"):
            await HttpClient("v").request("GET", server.url, headers={})


async def test_a_malformed_answer_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        with pytest.raises(VendorConnectionError, match="malformed HTTP response"):
            await HttpClient("v").request("GET", server.url, headers={})


async def test_silence_longer_than_the_read_timeout_is_a_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await reader.read()  # then nothing, until the client hangs up

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(read_timeout=0.2))

        async def read_all() -> None:
            async with client.stream("GET", server.url, headers={}) as stream:
                async for _ in stream.chunks():
                    pass

        with pytest.raises(VendorTimeout, match=r"no data for 0.2s"):
            await asyncio.wait_for(read_all(), 5)
        await asyncio.wait_for(server.closed.wait(), 2)  # and the socket was closed


async def test_refused_connections_name_the_address() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(VendorConnectionError, match=f"cannot connect to 127.0.0.1:{port}"):
        await HttpClient("v").request("GET", f"http://127.0.0.1:{port}/x", headers={})


async def test_header_injection_is_refused_without_echoing_the_value() -> None:
    with pytest.raises(ConfigError, match="line break") as caught:
        await HttpClient("v").request(
            "GET", "http://127.0.0.1:9/x", headers={"Authorization": "Bearer sk-secret\r\nX: y"}
        )
    assert "sk-secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http:///nohost"])
async def test_urls_that_are_not_http_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        await HttpClient("v").request("GET", url, headers={})


async def test_max_connections_caps_the_open_connections() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            await asyncio.sleep(0.02)
            writer.write(response(b"ok"))
            await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v", HttpOptions(max_connections=2))
        results = await asyncio.gather(
            *(client.request("GET", server.url, headers={}) for _ in range(8))
        )
        await client.aclose()
    assert [r.body for r in results] == [b"ok"] * 8
    assert server.most_open == 2
    assert server.connections == 2


async def test_a_cancelled_request_hangs_up_at_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        await reader.read()  # never answers; returns when the client hangs up

    async with serve(handler) as server:
        task = asyncio.create_task(HttpClient("v").request("GET", server.url, headers={}))
        await asyncio.wait_for(server.asked.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.closed.wait(), 2)


async def test_a_stream_left_early_hangs_up_and_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await reader.read()

    async with serve(handler) as server:
        client = HttpClient("v")
        async with client.stream("GET", server.url, headers={}) as stream:
            async for piece in stream.chunks():
                assert piece == b"hi"
                break
        await asyncio.wait_for(server.closed.wait(), 2)
        server.closed.clear()
        async with client.stream("GET", server.url, headers={}) as stream:
            assert stream.status == 200
    assert server.connections == 2


async def test_a_consumer_that_falls_behind_pushes_back_on_the_server() -> None:
    """Reading pauses past a high-water mark, so the server's writes back up instead of the
    client buffering a whole answer it is not reading; nothing is lost once it reads again."""
    piece = b"x" * 65536
    pieces = 512  # 32 MiB: far beyond what the kernel's socket buffers absorb
    backed_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(response(b"", "Transfer-Encoding: chunked"))
        for _ in range(pieces):
            writer.write(b"10000\r\n" + piece + b"\r\n")
        writer.write(b"0\r\n\r\n")
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            backed_up.set()
            await writer.drain()

    async with (
        serve(handler) as server,
        HttpClient("v").stream("GET", server.url, headers={}) as stream,
    ):
        await asyncio.sleep(0.7)  # not reading
        assert backed_up.is_set()
        total = sum([len(p) async for p in stream.chunks()])
    assert total == len(piece) * pieces


async def test_a_stream_read_to_its_end_leaves_the_connection_for_the_next() -> None:
    box: list[Server] = []
    async with serve(keep_answering(box, b"data: [DONE]\n\n")) as server:
        box.append(server)
        client = HttpClient("v")
        for _ in range(3):
            async with client.stream("POST", server.url, headers=JSON, body=b"{}") as stream:
                assert b"".join([p async for p in stream.chunks()]) == b"data: [DONE]\n\n"
        assert server.connections == 1


def test_a_client_outlives_its_event_loop() -> None:
    """The sync facade runs each call on its own loop: a pool bound to an ended loop is
    dropped (its sockets closed) and a new one made."""

    async def one(url: str) -> bytes:
        return (await client.request("GET", url, headers={})).body

    async def scenario() -> None:
        box: list[Server] = []
        async with serve(keep_answering(box)) as server:
            box.append(server)
            loop = asyncio.get_running_loop()
            for _ in range(2):  # two other loops, one after the other
                assert await loop.run_in_executor(None, asyncio.run, one(server.url)) == (
                    b'{"ok":true}'
                )
            assert await one(server.url) == b'{"ok":true}'
            await client.aclose()

    client = HttpClient("v")
    asyncio.run(scenario())


# --- TLS --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as on every Debian machine)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_https_trusts_what_ssl_cert_file_names(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    box: list[Server] = []
    async with serve(keep_answering(box), server_context(*certificate)) as server:
        box.append(server)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        result = await HttpClient("v").request("GET", server.url, headers={})
    assert result.body == b'{"ok":true}'


async def test_https_refuses_an_untrusted_certificate(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    box: list[Server] = []
    async with serve(keep_answering(box), server_context(*certificate)) as server:
        box.append(server)
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(VendorConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await HttpClient("v").request("GET", server.url, headers={})


async def test_a_second_event_loop_does_not_cut_requests_in_flight_on_the_first() -> None:
    """The client moving to another loop (a thread's) closes the old pool's idle connections,
    not the ones still answering."""
    first_asked = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            if server.connections == 1:
                first_asked.set()
                await asyncio.sleep(0.3)  # the first connection answers slowly
            writer.write(response(b"ok"))
            await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v")
        slow = asyncio.create_task(client.request("GET", server.url, headers={}))
        await asyncio.wait_for(first_asked.wait(), 2)
        other = asyncio.get_running_loop().run_in_executor(
            None, asyncio.run, client.request("GET", server.url, headers={})
        )
        assert (await other).body == b"ok"
        assert (await slow).body == b"ok"


async def test_informational_responses_before_the_answer_are_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
            writer.write(response(b"ok", "X-Final: yes"))
            await writer.drain()

    async with serve(handler) as server:
        client = HttpClient("v")
        result = await client.request("GET", server.url, headers={})
        assert (result.status, result.body, result.headers.get("x-final")) == (200, b"ok", "yes")
        assert "link" not in result.headers
        async with client.stream("GET", server.url, headers={}) as stream:
            assert stream.status == 200
            assert b"".join([p async for p in stream.chunks()]) == b"ok"
        assert server.connections == 1
