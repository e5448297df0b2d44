"""Abusive clients against a real gateway process (tight limits: 1 s for a request head or body,
1 MiB bodies): each gets the right refusal, and another client is served meanwhile."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import GatewayProcess, call

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def tight_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_openai_server: FakeOpenAI
) -> Iterator[str]:
    path = tmp_path_factory.mktemp("abuse") / "llmdispatcher.yaml"
    spec = {
        "type": "openai",
        "base_url": f"{fake_openai_server.url}/v1",
        "api_key": FAKE_OPENAI_KEY,
    }
    path.write_text(
        "\n".join(
            [
                f"vendors: {{openai: {json.dumps(spec)}}}",
                "gateway:",
                "  header_timeout_s: 1",
                "  body_timeout_s: 1",
                f"  max_body_bytes: {MAX_BODY}",
            ]
        )
    )
    server = GatewayProcess("--config", path)
    server.wait_listening()
    yield server.url
    server.stop()


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _served(url: str) -> None:
    """Another, ordinary client gets its answer."""
    reply = call("POST", f"{url}/v1/chat/completions", CHAT)
    assert reply.status == 200, reply.body


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the server hangs up within ``seconds`` (writing ``trickle`` every 0.2 s)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: hung up
            return True
    return False


def test_a_slow_header_client_is_dropped(tight_gateway: str, fake_openai: FakeOpenAI) -> None:
    silent, trickling = _connect(tight_gateway), _connect(tight_gateway)
    try:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        silent.sendall(head)
        trickling.sendall(head)
        _served(tight_gateway)  # while both heads are incomplete
        assert _closed_within(silent, 10)
        assert _closed_within(trickling, 10, trickle=b"X-Slow: 1\r\n")
    finally:
        silent.close()
        trickling.close()
    _served(tight_gateway)


def test_a_slow_body_is_408(tight_gateway: str, fake_openai: FakeOpenAI) -> None:
    sock = _connect(tight_gateway)
    try:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        _served(tight_gateway)
        sock.settimeout(10)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        sock.close()
    assert len(fake_openai.requests) == 1  # the ordinary client's only


def test_an_oversized_body_is_413(tight_gateway: str, fake_openai: FakeOpenAI) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}
    reply = call("POST", f"{tight_gateway}/v1/chat/completions", big)
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "request_too_large"
    assert fake_openai.requests == []
    _served(tight_gateway)


def test_ten_thousand_messages(tight_gateway: str, fake_openai: FakeOpenAI) -> None:
    """Within the body limit they are a conversation like any other; past it, a 413."""
    many = [{"role": "user", "content": "x"}] * 10_000
    reply = call("POST", f"{tight_gateway}/v1/chat/completions", {**CHAT, "messages": many})
    assert reply.status == 200
    assert len(fake_openai.requests[-1].json["messages"]) == 10_000
    longer = [{"role": "user", "content": "x" * 100}] * 10_000
    reply = call("POST", f"{tight_gateway}/v1/chat/completions", {**CHAT, "messages": longer})
    assert reply.status == 413
    _served(tight_gateway)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "gpt-\xc3", "messages": []}',
        b"\xef\xbb\xbf\x80",
    ],
)
def test_invalid_utf8_is_400(tight_gateway: str, fake_openai: FakeOpenAI, raw: bytes) -> None:
    reply = call("POST", f"{tight_gateway}/v1/chat/completions", raw=raw)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "body"
    assert fake_openai.requests == []
    _served(tight_gateway)


def _raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` and read the answer's head (the server may answer and hang up before
    the whole flood is written: what it said still counts)."""
    sock = _connect(url)
    answer = b""
    try:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return answer


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-Flood-%d: %s\r\n" % (i, b"v" * 50) for i in range(1000)),  # many
        b"X-Huge: " + b"v" * 200_000 + b"\r\n",  # one huge
    ],
    ids=["many", "huge"],
)
def test_a_header_flood_is_refused(
    tight_gateway: str, fake_openai: FakeOpenAI, headers: bytes
) -> None:
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    answer = _raw_exchange(tight_gateway, request)
    assert answer.startswith(b"HTTP/1."), answer[:200]
    assert int(answer.split(b" ", 2)[1]) in (400, 431), answer[:200]
    assert fake_openai.requests == []
    _served(tight_gateway)
