"""Chaos mode for the fake vendors: fail at set rates, in every way a real vendor does.

``FakeOpenAI(chaos=Chaos(name="a", rates={"http_500": 0.05, "reset_mid_stream": 0.01}))``
answers each model request with a fault picked by rate, or else with a reply whose text is
unique and checkable (``answer_text``). Scripted steps are ignored in chaos mode.

Reproducible: the fault for a request is a pure function of the seed, the fake's name, the
request's tag (``[[id:TAG]]`` anywhere in its body; the soak puts one in the user message) and
how many times this fake has seen that tag, so a rerun with the same seed and the same requests
meets the same faults whatever the interleaving. Untagged requests use the fake's request count.

Faults (``FAULTS``); "stream" is a streamed request, "plain" a non-streamed one:

=======================  ==================================================================
rate_limit_retry_after   429 with ``Retry-After`` (``Chaos.retry_after``)
rate_limit               429 without any Retry-After header
http_500 / 503 / 529     the vendor's own server-error / overloaded body with that status
http_502                 an HTML "502 Bad Gateway" page, as a proxy in front of a vendor sends
refused                  the connection is reset and the port refuses connections for
                         ``refuse_s`` seconds (the listening socket is closed, then reopened)
reset_before_head        the request is read, then the connection is reset (TCP RST)
reset_mid_body           status, headers and half of the answer's bytes, then RST
reset_mid_stream         stream: head and 1+ whole content frames, then RST; plain: as above
stall_after_first_token  stream: head and one content frame, then silence for ``stall_s``
                         (then the rest); plain: silence for ``stall_s`` before the head
trickle                  stream: head and first content frame at once, then the rest one
                         byte per ``trickle_interval_s``; plain: the body so from its start
malformed_json           stream: a frame of broken JSON after 0+ content frames, then the
                         rest; plain: a 200 whose JSON body is cut in half
invalid_utf8             a content frame (plain: the body) with the byte 0xFF inside the text
long_line                stream: one ``data:`` line of ``long_line_bytes`` with no newline,
                         then the connection closes; plain: a JSON body of that size
gzip_bomb                ``Content-Encoding: gzip``; ``bomb_bytes`` of zeros once inflated
oversized                a valid answer whose text is ``oversized_bytes`` long
=======================  ==================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import socket
import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from .script import Fail, Reply

if TYPE_CHECKING:
    from .server import Call, FakeServer

FAULTS = (
    "rate_limit_retry_after",
    "rate_limit",
    "http_500",
    "http_502",
    "http_503",
    "http_529",
    "refused",
    "reset_before_head",
    "reset_mid_body",
    "reset_mid_stream",
    "stall_after_first_token",
    "trickle",
    "malformed_json",
    "invalid_utf8",
    "long_line",
    "gzip_bomb",
    "oversized",
)
_TAG = re.compile(rb"\[\[id:([A-Za-z0-9_.-]{1,64})\]\]")
_HEADER = re.compile(r"<([^|<>]+)\|([^|<>]+)\|(\d+)\|(\d+)>")
# Mixed-width words: a multi-byte character split between frames or TCP segments shows up.
_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "naïve", "café", "über", "façade",
    "smörgåsbord", "日本", "東京", "Ελλάδα", "Россия", "🎉", "🚀", "∑", "±", "“quoted”",
    "back\\slash", "tab\there",
)  # fmt: skip
_BLOCK = 512  # distinct words per answer; longer answers repeat them
_TAG_MEMORY = 200_000  # how many tags' attempt counts a fake remembers
_WRITE = 64 * 1024
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Chaos:
    """What a fake in chaos mode injects. ``rates`` maps a fault (``FAULTS``) to its
    probability per model request; the rest (1 - sum) are answered normally."""

    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    name: str = "fake"
    retry_after: str = "1"
    stall_s: float = 3600.0
    trickle_interval_s: float = 1.0
    refuse_s: float = 0.2
    long_line_bytes: int = 50 * 1024 * 1024
    bomb_bytes: int = 1024 * 1024 * 1024
    oversized_bytes: int = 32 * 1024 * 1024
    chunk_size: int = 16
    min_words: int = 8
    max_words: int = 48

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - set(FAULTS))
        if unknown:
            raise ValueError(f"Chaos.rates: unknown faults {unknown}; known: {FAULTS}")
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError("Chaos.rates: each rate must be >= 0 and they must sum to <= 1")
        if "|" in self.name or "<" in self.name or ">" in self.name:
            raise ValueError("Chaos.name: no '|', '<' or '>' (they delimit the answer header)")

    def pick(self, key: str) -> str | None:
        """The fault for the request known as ``key`` (None: answer normally)."""
        draw = random.Random(f"{self.seed}|{self.name}|{key}").random()
        for fault in FAULTS:
            draw -= self.rates.get(fault, 0.0)
            if draw < 0:
                return fault
        return None


def answer_text(tag: str, vendor: str, serial: int, words: int) -> str:
    """The reply a chaos fake sends: a header naming the request tag, the fake and its serial
    number, then ``words`` words drawn from those. Anyone holding the header can rebuild the
    text (``expected_text``), so a duplicate, gap or splice is caught by comparing."""
    rng = random.Random(f"{tag}|{vendor}|{serial}")
    block = [rng.choice(_WORDS) for _ in range(min(words, _BLOCK))]
    reps, rest = divmod(words, len(block)) if block else (0, 0)
    # " ".join(block * reps + block[:rest]), built by repetition: megabytes in milliseconds
    parts = [" ".join(block)] * reps + ([" ".join(block[:rest])] if rest else [])
    return f"<{tag}|{vendor}|{serial}|{words}> " + " ".join(parts)


def expected_text(text: str) -> str | None:
    """The text the fake that wrote ``text``'s header sent in full (None: no header)."""
    found = _HEADER.match(text)
    if found is None:
        return None
    tag, vendor, serial, words = found.groups()
    return answer_text(tag, vendor, int(serial), int(words))


def header_of(text: str) -> tuple[str, str, int] | None:
    """(tag, vendor, serial) from an answer's header."""
    found = _HEADER.match(text)
    return None if found is None else (found[1], found[2], int(found[3]))


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed without compressing them all: after a full flush a
    deflate stream forgets its history, so every MiB of zeros compresses to the same bytes,
    made once and repeated (1 GiB in about a second instead of half a minute)."""
    mib = 1024 * 1024
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = packer.compress(bytes(mib)) + packer.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(size, mib)
    tail = packer.compress(bytes(rest)) + packer.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(bytes(mib), crc)
    crc = zlib.crc32(bytes(rest), crc)
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return head + piece * whole + tail + trailer


class ChaosEngine:
    """The per-fake state of chaos mode; ``FakeServer.run_step`` hands it every model request."""

    def __init__(self, config: Chaos) -> None:
        self.config = config
        self.served = 0
        self.faults: Counter[str] = Counter()
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._bomb: bytes | None = None
        if config.rates.get("gzip_bomb"):
            self.bomb()  # now, not while serving: it would stall every request to this fake

    def key_for(self, raw: bytes) -> tuple[str, str]:
        """(tag, reproducible key) of a request body."""
        found = _TAG.search(raw)
        if found is None:
            return "-", f"#{self.served}"
        tag = found.group(1).decode()
        seen = self._seen.pop(tag, 0)
        self._seen[tag] = seen + 1
        if len(self._seen) > _TAG_MEMORY:
            self._seen.popitem(last=False)
        return tag, f"{tag}#{seen}"

    def snapshot(self) -> dict[str, object]:
        return {"name": self.config.name, "served": self.served, "faults": dict(self.faults)}

    def reply(self, tag: str, serial: int, rng: random.Random, size: int = 0) -> Reply:
        cfg = self.config
        words = size // 4 + 1 if size else rng.randint(cfg.min_words, cfg.max_words)
        text = answer_text(tag, cfg.name, serial, words)
        chunk = max(cfg.chunk_size, size // 2048) if size else cfg.chunk_size
        return Reply(text=text, chunk_size=chunk, completion_tokens=words)

    def bomb(self) -> bytes:
        """``bomb_bytes`` of zeros as one gzip member (~1000:1), made once per fake."""
        if self._bomb is None:
            self._bomb = gzip_bomb(self.config.bomb_bytes)
        return self._bomb

    async def answer(self, server: FakeServer, call: Call) -> web.StreamResponse:
        tag, key = self.key_for(call.record.raw)
        self.served += 1
        serial = self.served
        fault = self.config.pick(key)
        rng = random.Random(f"{self.config.seed}|{key}|shape")
        if fault is None:
            return await _answer(server, call, self.reply(tag, serial, rng), rng)
        self.faults[fault] += 1
        size = self.config.oversized_bytes if fault == "oversized" else 0
        reply = self.reply(tag, serial, rng, size)
        return await _FAULT_ANSWERS[fault](self, server, call, reply, rng)


# --- the faults ------------------------------------------------------------------------------
FaultAnswer = Callable[
    [ChaosEngine, "FakeServer", "Call", Reply, random.Random], Awaitable[web.StreamResponse]
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


async def _answer(
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


_FAULT_ANSWERS: dict[str, FaultAnswer] = {
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
