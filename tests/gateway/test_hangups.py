"""Clients that hang up at every point of a stream, against a real gateway process: while the
request body is still arriving, before the answer's head, inside the head, between and inside
chunks, just before the end. Each time the upstream request is cancelled (the fake vendor sees
the hang-up), the request is recorded exactly once in the ledger, nothing is logged as a
traceback, and another client is served meanwhile (its latency is reported, not asserted:
timings on a shared 2-core machine are not a test)."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, Stall
from tests.gateway import GatewayProcess, call

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
STREAM = json.dumps({**CHAT, "stream": True, "stream_options": {"include_usage": True}}).encode()
# 60 chunks; each stream sends its head and 20 of them, then stalls (the upstream is still
# sending when the client hangs up, wherever that is).
TEXT = Reply(text="word " * 60, chunk_size=5)
STALL = Stall(seconds=60, after_chunks=20)


@pytest.fixture(scope="module")
def hangup_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_openai_server: FakeOpenAI
) -> Iterator[tuple[GatewayProcess, Path]]:
    root = tmp_path_factory.mktemp("hangups")
    ledger = root / "ledger.db"
    spec = {"type": "openai", "base_url": f"{fake_openai_server.url}/v1",
            "api_key": FAKE_OPENAI_KEY}  # fmt: skip
    config = root / "llmdispatcher.yaml"
    config.write_text(
        f"ledger_url: 'sqlite:///{ledger}'\n"
        "retry_policy: {max_retries: 0}\n"
        "circuit_breaker: {enabled: false}\n"
        f"vendors: {{openai: {json.dumps(spec)}}}\n"
    )
    server = GatewayProcess("--config", config)
    server.wait_listening()
    yield server, ledger
    server.stop()


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _read(sock: socket.socket, count: int) -> bytes:
    seen = b""
    while len(seen) < count:
        data = sock.recv(count - len(seen))
        if not data:
            break
        seen += data
    return seen


def _until_silent(url: str) -> bytes:
    """What a stalled stream sends before it stalls (then hang up)."""
    sock = _connect(url)
    try:
        sock.sendall(_request("/v1/chat/completions", STREAM))
        sock.settimeout(1.0)
        seen = b""
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return seen
            assert data, seen
            seen += data
    finally:
        sock.close()


def _hang_up(url: str, *, send: int | None = None, read: int = 0) -> None:
    """Send the request (or only its first ``send`` bytes), read ``read`` bytes, hang up."""
    request = _request("/v1/chat/completions", STREAM)
    sock = _connect(url)
    try:
        sock.sendall(request if send is None else request[:send])
        if read:
            assert len(_read(sock, read)) == read
    finally:
        sock.close()


def _ledger_rows(ledger: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(ledger) as db:
        try:
            return list(db.execute("SELECT status, stream FROM ledger_requests ORDER BY id"))
        except sqlite3.OperationalError:  # no table before the first record
            return []


def test_a_hang_up_at_every_point_of_a_stream_cancels_it_upstream(
    hangup_gateway: tuple[GatewayProcess, Path], fake_openai: FakeOpenAI
) -> None:
    server, ledger = hangup_gateway
    before = len(_ledger_rows(ledger))
    fake_openai.default = TEXT
    fake_openai.enqueue(STALL)
    sent = _until_silent(server.url)
    head = sent.index(b"\r\n\r\n") + 4
    assert sent.count(b"data: ") >= 20, sent  # the role chunk and 20 content chunks
    assert fake_openai.wait_for_disconnect(timeout=10)
    # Inside the head, right after it, inside the first chunk, then through what was sent.
    points = [
        10,
        head - 2,
        head,
        head + 3,
        *(head + (len(sent) - head) * k // 8 for k in range(1, 8)),
        len(sent) - 1,
    ]
    fake_openai.reset()
    fake_openai.default = TEXT

    _hang_up(server.url, send=len(_request("/v1/chat/completions", STREAM)) - 10)
    latencies = []
    for n, point in enumerate(points, start=1):
        fake_openai.enqueue(STALL)
        _hang_up(server.url, read=point)
        assert fake_openai.wait_for_disconnect(timeout=10, count=n), f"hung up after {point} B"
        started = time.monotonic()
        reply = call("POST", f"{server.url}/v1/chat/completions", CHAT)  # another client
        latencies.append(time.monotonic() - started)
        assert reply.status == 200, reply.body
    print(f"other clients' latency during hang-ups: max {max(latencies) * 1000:.0f} ms")

    # The request whose body never arrived never reached the vendor; each other reached it
    # once, and each is one ledger row: the streams (and the probe) cancelled, the other
    # clients' answers ok.
    expected = sorted([("cancelled", 1)] * (len(points) + 1) + [("ok", 0)] * len(points))
    deadline = time.monotonic() + 10
    while len(_ledger_rows(ledger)) < before + len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a row too many would arrive within the ledger's flush interval
    assert len(fake_openai.requests) == 2 * len(points)
    assert sorted(_ledger_rows(ledger)[before:]) == expected
    assert "Traceback" not in server.log.decode()
