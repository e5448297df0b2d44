"""How a chaos fake puts each fault (and a normal answer) on the wire: see ``chaos.py`` for the
table of faults. Every function here renders one fault for one request in the fake's own wire
format, through the vendor hooks of ``FakeServer`` (``error_response``, ``reply_response``,
``stream_plan``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from .script import Fail, Reply

if TYPE_CHECKING:
    from .chaos import ChaosEngine
    from .server import Call, FakeServer

_WRITE = 64 * 1024
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
FaultAnswer = Callable[
    ["ChaosEngine", "FakeServer", "Call", Reply, random.Random], Awaitable[web.StreamResponse]
]


def _fail(server: FakeServer, call: Call, fail: Fail) -> web.StreamResponse:
    resp = server.error_response(call, fail)
    for name in ("retry-after", "retry-after-ms"):
        resp.headers.pop(name, None)
    if fail.retry_after is not None:
        resp.headers["retry-after"] = fail.retry_after
    return resp


def _error_fault(kind: str, status: int, with_retry_after: bool = False) -> FaultAnswer:
    async def answer(
        engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
    ) -> web.StreamResponse:
        retry_after = engine.config.retry_after if with_retry_after else None
        return _fail(server, call, Fail(kind, status=status, retry_after=retry_after))

    return answer


async def normal_answer(
    server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    """A normal answer; a stream goes out in two writes cut at a random byte offset (a frame
    split between reads is what decoders get wrong; a write per frame would cost the fake a
    system call each, its largest cost in a soak)."""
    if not call.stream:
        return await server.run_step(call, reply)
    first, tail = _frames(server, call, reply)
    data = b"".join(first + tail)
    cuts = [rng.randrange(1, len(data))] if len(data) > 1 else []
    resp = await _open(server, call)
    if resp is None:
        return reset(call)
    for start, end in itertools.pairwise([0, *cuts, len(data)]):
        if not await _write(server, call, resp, data[start:end]):
            return resp
    return await _finish(call, resp)


async def _bad_gateway(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    return web.Response(status=502, body=HTML_502, content_type="text/html")


def reset(call: Call) -> web.StreamResponse:
    """Cut the connection with a TCP RST (SO_LINGER 0), not a FIN."""
    call.dropped = True
    transport = call.request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=500)


async def _flushed(call: Call) -> None:
    """Until what was written left our buffer (on loopback it then waits at the reader)."""
    transport = call.request.transport
    for _ in range(500):
        if transport is None or transport.is_closing() or not transport.get_write_buffer_size():
            return
        await asyncio.sleep(0.002)


async def _refused(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    await server.refuse_connections(engine.config.refuse_s)
    return reset(call)


async def _reset_before_head(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    return reset(call)


def _plain_body(server: FakeServer, call: Call, reply: Reply) -> tuple[bytes, str]:
    resp = server.reply_response(call, reply)
    assert isinstance(resp, web.Response)
    assert isinstance(resp.body, bytes)
    return resp.body, resp.headers.get("Content-Type", "application/json")


def _frames(server: FakeServer, call: Call, reply: Reply) -> tuple[list[bytes], list[bytes]]:
    """(head + content frames, tail frames) of ``reply`` as a stream."""
    plan = server.stream_plan(call, reply)
    return plan.head + plan.content, plan.tail


async def _open(
    server: FakeServer,
    call: Call,
    *,
    content_type: str | None = None,
    length: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse | None:
    """A prepared 200 (None if the client already left)."""
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = content_type or server.stream_content_type
    resp.headers.update(headers or {})
    if length is not None:
        resp.content_length = length
    server._add_common_headers(call, resp)
    try:
        await resp.prepare(call.request)
    except ConnectionError:
        return None
    return resp


async def _write(server: FakeServer, call: Call, resp: web.StreamResponse, data: bytes) -> bool:
    for start in range(0, len(data), _WRITE):
        if server.client_gone(call):
            return False
        try:
            await resp.write(data[start : start + _WRITE])
        except ConnectionError:
            return False
    return True


async def _finish(call: Call, resp: web.StreamResponse) -> web.StreamResponse:
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


async def _reset_mid_body(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    if call.stream:
        first, tail = _frames(server, call, reply)
        data, length, kind = b"".join(first + tail), None, None
    else:
        data, kind = _plain_body(server, call, reply)
        length = len(data)
    resp = await _open(server, call, content_type=kind, length=length)
    if resp is None or not await _write(server, call, resp, data[: len(data) // 2]):
        return reset(call)
    await _flushed(call)
    return reset(call)


async def _reset_mid_stream(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    if not call.stream:
        return await _reset_mid_body(engine, server, call, reply, rng)
    plan = server.stream_plan(call, reply)
    cut = rng.randint(1, max(1, len(plan.content)))
    resp = await _open(server, call)
    if resp is not None and await _write(
        server, call, resp, b"".join(plan.head + plan.content[:cut])
    ):
        await _flushed(call)
    return reset(call)


async def _stall(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    seconds = engine.config.stall_s
    if not call.stream:
        if not await server.sleep(call, seconds):
            return server.drop(call)
        return await server.run_step(call, reply)
    plan = server.stream_plan(call, reply)
    resp = await _open(server, call)
    if resp is None:
        return reset(call)
    if not await _write(server, call, resp, b"".join(plan.head + plan.content[:1])):
        return resp
    if not await server.sleep(call, seconds):
        return server.drop(call, resp)
    if await _write(server, call, resp, b"".join(plan.content[1:] + plan.tail)):
        return await _finish(call, resp)
    return resp


async def _trickle(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    prompt = b""  # a stream's head and first token go at once: no first-token deadline helps
    if call.stream:
        plan = server.stream_plan(call, reply)
        prompt = b"".join(plan.head + plan.content[:1])
        data, length, kind = b"".join(plan.content[1:] + plan.tail), None, None
    else:
        data, kind = _plain_body(server, call, reply)
        length = len(data)
    resp = await _open(server, call, content_type=kind, length=length)
    if resp is None:
        return reset(call)
    if prompt and not await _write(server, call, resp, prompt):
        return resp
    for byte in range(len(data)):
        if not await server.sleep(call, engine.config.trickle_interval_s):
            return server.drop(call, resp)
        if not await _write(server, call, resp, data[byte : byte + 1]):
            return resp
    return await _finish(call, resp)


def _broken_frame(server: FakeServer) -> bytes:
    if "ndjson" in server.stream_content_type:
        return b'{"message": {"role": "assistant", "content": "brok\n'
    return b'data: {"choices": [{"index": 0, "delta": {"content": "brok\n\n'


async def _malformed_json(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    if not call.stream:
        body, kind = _plain_body(server, call, reply)
        return web.Response(status=200, body=body[: len(body) // 2], headers={"Content-Type": kind})
    plan = server.stream_plan(call, reply)
    at = rng.randint(0, len(plan.content))
    frames = [*plan.head, *plan.content[:at], _broken_frame(server), *plan.content[at:]]
    return await _stream_all(server, call, b"".join(frames + plan.tail))


async def _stream_all(server: FakeServer, call: Call, data: bytes) -> web.StreamResponse:
    resp = await _open(server, call)
    if resp is None:
        return reset(call)
    if await _write(server, call, resp, data):
        return await _finish(call, resp)
    return resp


def _spoil(data: bytes, text: str) -> bytes:
    """``data`` with a 0xFF byte inside the first occurrence of a word of ``text``."""
    words = text.split(" ")
    word = next((w for w in words[1:] if w.isascii() and w.isalpha()), words[-1]).encode()
    at = data.find(word)
    return data[:at] + b"\xff" + data[at:] if at >= 0 else data + b"\xff"


async def _invalid_utf8(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    if not call.stream:
        body, kind = _plain_body(server, call, reply)
        spoiled = _spoil(body, reply.text)
        return web.Response(status=200, body=spoiled, headers={"Content-Type": kind})
    plan = server.stream_plan(call, reply)
    at = rng.randrange(len(plan.content)) if plan.content else 0
    content = list(plan.content)
    if content:
        pieces = reply.text_pieces()
        content[at] = _spoil(content[at], pieces[at] if at < len(pieces) else reply.text)
    return await _stream_all(server, call, b"".join(plan.head + content + plan.tail))


async def _long_line(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    size = engine.config.long_line_bytes
    if not call.stream:
        resp = await _open(server, call, content_type="application/json", length=size)
        if resp is not None and await _write(server, call, resp, _filled(b'{"x": "', size)):
            return await _finish(call, resp)
        return resp or reset(call)
    plan = server.stream_plan(call, reply)
    resp = await _open(server, call)
    if resp is None:
        return reset(call)
    prefix = b"data: " if "ndjson" not in server.stream_content_type else b""
    line = _filled(prefix + b'{"choices": [{"delta": {"content": "', size)
    if await _write(server, call, resp, b"".join(plan.head) + line):
        await _flushed(call)
    return server.drop(call, resp)


def _filled(prefix: bytes, size: int) -> bytes:
    return prefix + b"a" * max(0, size - len(prefix))


async def _gzip_bomb(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    body = engine.bomb()
    kind = server.stream_content_type if call.stream else "application/json"
    resp = await _open(
        server, call, content_type=kind, length=len(body), headers={"Content-Encoding": "gzip"}
    )
    if resp is not None and await _write(server, call, resp, body):
        return await _finish(call, resp)
    return resp or reset(call)


async def _oversized(
    engine: ChaosEngine, server: FakeServer, call: Call, reply: Reply, rng: random.Random
) -> web.StreamResponse:
    return await server.run_step(call, reply)


FAULT_ANSWERS: dict[str, FaultAnswer] = {
    "rate_limit_retry_after": _error_fault("rate_limit", 429, with_retry_after=True),
    "rate_limit": _error_fault("rate_limit", 429),
    "http_500": _error_fault("server", 500),
    "http_502": _bad_gateway,
    "http_503": _error_fault("overloaded", 503),
    "http_529": _error_fault("overloaded", 529),
    "refused": _refused,
    "reset_before_head": _reset_before_head,
    "reset_mid_body": _reset_mid_body,
    "reset_mid_stream": _reset_mid_stream,
    "stall_after_first_token": _stall,
    "trickle": _trickle,
    "malformed_json": _malformed_json,
    "invalid_utf8": _invalid_utf8,
    "long_line": _long_line,
    "gzip_bomb": _gzip_bomb,
    "oversized": _oversized,
}
