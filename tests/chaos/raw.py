"""A raw-socket HTTP/1.1 client for checking what a chaos fake puts on the wire, byte for byte:
no HTTP library in between to retry, decode, buffer or hide a reset."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import orjson

# One request per fake vendor: (path, extra headers, body builder(stream, text))
OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"
OLLAMA = "ollama"


@dataclass
class Raw:
    """What came back: the head as sent, the body bytes (chunked framing removed) and how the
    exchange ended (``"eof"``, ``"reset"``, ``"timeout"``, ``"open"``)."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: str = "open"
    reads: list[int] = field(default_factory=list)  # sizes of the body's recv() calls


def request_bytes(vendor: str, *, stream: bool, text: str) -> bytes:
    messages = [{"role": "user", "content": text}]
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if vendor == OPENAI:
        path, body = "/v1/chat/completions", {"model": "gpt-4o", "messages": messages}
        headers["Authorization"] = "Bearer sk-test"
    elif vendor == ANTHROPIC:
        path = "/v1/messages"
        body = {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": messages}
        headers |= {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    elif vendor == GEMINI:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        path = f"/v1beta/models/gemini-2.5-flash:{method}"
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        headers["x-goog-api-key"] = "gemini-test-key"
    else:
        path, body = "/api/chat", {"model": "llama3.2", "messages": messages}
    if vendor != GEMINI:
        body["stream"] = stream
    data = orjson.dumps(body)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + data


def exchange(
    port: int, data: bytes, *, timeout: float = 10.0, limit: int | None = None, reads: int = 0
) -> Raw:
    """Send ``data`` and read until the server closes, resets, goes silent for ``timeout``,
    ``limit`` body bytes arrived or (``reads`` > 0) the body came in that many reads."""
    raw = Raw()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        head_end = -1
        while True:
            try:
                piece = sock.recv(1 << 20)
            except ConnectionResetError:
                raw.ended = "reset"
                break
            except TimeoutError:
                raw.ended = "timeout"
                break
            if not piece:
                raw.ended = "eof"
                break
            if head_end >= 0:
                raw.reads.append(len(piece))
            received += piece
            if head_end < 0 and (head_end := received.find(b"\r\n\r\n")) >= 0:
                _parse_head(raw, received[:head_end])
                if len(received) > head_end + 4:
                    raw.reads.append(len(received) - head_end - 4)
            if limit is not None and head_end >= 0 and len(received) - head_end - 4 >= limit:
                break
            if reads and len(raw.reads) >= reads:
                break
    if head_end >= 0:
        body = received[head_end + 4 :]
        chunked = raw.headers.get("transfer-encoding", "").lower() == "chunked"
        raw.body = dechunk(body) if chunked else body
    return raw


def _parse_head(raw: Raw, head: bytes) -> None:
    lines = head.decode("latin-1").split("\r\n")
    raw.status = int(lines[0].split(" ")[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        raw.headers[name.strip().lower()] = value.strip()


def dechunk(data: bytes) -> bytes:
    """The payload of a chunked body, as much of it as arrived."""
    out, at = [], 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            break
        size = int(data[at:end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[end + 2 : end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(out)
