"""Chaos mode for the fake vendors: fail at set rates, in every way a real vendor does.

``FakeOpenAI(chaos=Chaos(name="a", rates={"http_500": 0.05, "reset_mid_stream": 0.01}))``
answers each model request with a fault picked by rate, or else with a reply whose text is
unique and checkable (``answer_text``). Scripted steps are ignored in chaos mode.

Reproducible: the fault for a request is a pure function of the seed, the fake's name, the
request's tag (``[[id:TAG]]`` anywhere in its body; the soak puts one in the user message) and
how many times this fake has seen that tag, so a rerun with the same seed and the same requests
meets the same faults whatever the interleaving. Untagged requests use the fake's request count.

Faults (``FAULTS``, rendered by ``chaos_wire.py``); "stream" is a streamed request, "plain" a
non-streamed one:

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

import random
import re
import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from .chaos_wire import FAULT_ANSWERS, normal_answer
from .script import Reply

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
            return await normal_answer(server, call, self.reply(tag, serial, rng), rng)
        self.faults[fault] += 1
        size = self.config.oversized_bytes if fault == "oversized" else 0
        reply = self.reply(tag, serial, rng, size)
        return await FAULT_ANSWERS[fault](self, server, call, reply, rng)
