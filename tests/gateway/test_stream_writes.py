"""How a stream's frames reach the client: the first at once, those that are ready together in
one write. An upstream (a raw server on 127.0.0.1) sends its whole SSE answer in one write, so
the gateway reads it all at once; the client reads the gateway's chunked body raw and sees one
HTTP chunk per write."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from llmdispatcher import Config, Dispatcher
from llmdispatcher.gateway.app import create_app
from llmdispatcher.vendors.openai import OpenAIVendor
from tests.raw_server import Server, read_request, response, serve

WORDS = [f"word{i} " for i in range(12)]
USAGE = {"prompt_tokens": 7, "completion_tokens": 12, "total_tokens": 19}


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def upstream_body() -> bytes:
    def frame(choices: list[object], usage: object = None) -> bytes:
        head = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1}
        return sse({**head, "model": "gpt-4o-2024", "choices": choices, "usage": usage})

    def delta(d: dict[str, object], finish: str | None = None) -> bytes:
        return frame([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}])

    frames = [delta({"role": "assistant", "content": ""})]
    frames += [delta({"content": word}) for word in WORDS]
    return b"".join([*frames, delta({}, "stop"), frame([], USAGE), b"data: [DONE]\n\n"])


@pytest.fixture
async def upstream() -> AsyncIterator[Server]:
    box: list[Server] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, box[0])
        writer.write(response(upstream_body(), "Content-Type: text/event-stream"))  # one write
        await writer.drain()

    async with serve(answer) as server:
        box.append(server)
        yield server


@dataclass
class Gateway:
    host: str
    port: int
    dispatcher: Dispatcher
    ledger: Path


@pytest.fixture
async def gateway(upstream: Server, tmp_path: Path) -> AsyncIterator[Gateway]:
    ledger = tmp_path / "ledger.db"
    base = upstream.url.removesuffix("/chat")
    vendor = OpenAIVendor(name="openai", base_url=base, api_key="sk-up-0123456789")
    dispatcher = Dispatcher(Config(ledger_url=f"sqlite:///{ledger}"), vendors=[vendor])
    server = TestServer(create_app(dispatcher), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        assert server.port is not None
        yield Gateway("127.0.0.1", server.port, dispatcher, ledger)
    finally:
        await server.close()
        await dispatcher.aclose()


async def http_chunks(host: str, port: int, body: dict[str, object]) -> list[bytes]:
    """POST ``body``; the response's chunked body, one item per HTTP chunk."""
    reader, writer = await asyncio.open_connection(host, port)
    data = json.dumps(body).encode()
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower()
    chunks: list[bytes] = []
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        chunks.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"
    writer.close()
    return chunks


def events(data: bytes) -> list[dict[str, object]]:
    frames = data.decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]


def text_of(found: list[dict[str, object]]) -> str:
    return "".join(
        str(choice["delta"].get("content") or "")  # type: ignore[index]
        for event in found
        for choice in event["choices"]  # type: ignore[attr-defined]
    )


CHAT: dict[str, object] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


async def test_the_first_token_is_written_at_once_and_the_rest_together(gateway: Gateway) -> None:
    chunks = await http_chunks(gateway.host, gateway.port, CHAT)
    first = events(chunks[0] + b"data: [DONE]\n\n")
    assert text_of(first) == WORDS[0]  # the role frame and the first text, not held back
    assert len(chunks) == 2  # everything the upstream sent together, in one more write
    found = events(b"".join(chunks))
    assert text_of(found) == "".join(WORDS)
    assert found[-1]["usage"] == {
        **USAGE,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


async def test_the_ledger_counts_what_the_upstream_sent(gateway: Gateway) -> None:
    chunks = await http_chunks(gateway.host, gateway.port, {**CHAT, "stream_options": {}})
    found = events(b"".join(chunks))
    assert text_of(found) == "".join(WORDS)
    assert all("usage" not in event for event in found)
    ledger = gateway.dispatcher.ledger
    assert ledger is not None
    await ledger.flush()
    with sqlite3.connect(gateway.ledger) as db:
        rows = db.execute(
            "SELECT stream, status, prompt_tokens, completion_tokens FROM ledger_requests"
        ).fetchall()
    assert rows == [(1, "ok", USAGE["prompt_tokens"], USAGE["completion_tokens"])]
