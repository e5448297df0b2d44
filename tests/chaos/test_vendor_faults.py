"""Each chaos fault is on the wire exactly as specified (tests/fakes/chaos.py), seen through a
raw socket so that no HTTP library retries, decodes or hides anything."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.chaos import Chaos, answer_text, expected_text, header_of
from tests.fakes.gemini_fake import FakeGemini
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.server import FakeServer

from .raw import ANTHROPIC, GEMINI, OLLAMA, OPENAI, Raw, exchange, request_bytes

FAKES: dict[str, type[FakeServer]] = {
    OPENAI: FakeOpenAI,
    ANTHROPIC: FakeAnthropic,
    GEMINI: FakeGemini,
    OLLAMA: FakeOllama,
}
VENDORS = tuple(FAKES)
SMALL = {"long_line_bytes": 2 * 1024 * 1024, "bomb_bytes": 8 * 1024 * 1024}
Start = Callable[..., FakeServer]


@pytest.fixture
def chaos_fake() -> Iterator[Start]:
    """``chaos_fake(vendor, fault, **chaos options)``: a started fake failing every request so."""
    started: list[FakeServer] = []

    def start(vendor: str, fault: str | None, **options: Any) -> FakeServer:
        rates = {fault: 1.0} if fault else {}
        fake = FAKES[vendor]().set_chaos(Chaos(name=vendor, rates=rates, **(SMALL | options)))
        started.append(fake.start())
        return fake

    yield start
    for fake in started:
        fake.stop()


def ask(fake: FakeServer, vendor: str, *, stream: bool, tag: str = "t1", **kw: Any) -> Raw:
    return exchange(fake.port, request_bytes(vendor, stream=stream, text=f"[[id:{tag}]]"), **kw)


def stream_texts(vendor: str, body: bytes) -> str:
    """The answer text carried by a complete stream body of ``vendor``'s format."""
    text = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        payload = line.removeprefix(b"data: ") if vendor != OLLAMA else line
        if not payload.startswith(b"{"):
            continue
        obj = orjson.loads(payload)
        if vendor == OPENAI:
            text += [c["delta"].get("content") or "" for c in obj["choices"]]
        elif vendor == ANTHROPIC:
            text.append((obj.get("delta") or {}).get("text") or "")
        elif vendor == GEMINI:
            text += [p.get("text", "") for c in obj["candidates"] for p in c["content"]["parts"]]
        else:
            text.append(obj["message"]["content"])
    return "".join(text)


def plain_text(vendor: str, body: bytes) -> str:
    obj = orjson.loads(body)
    if vendor == OPENAI:
        return str(obj["choices"][0]["message"]["content"])
    if vendor == ANTHROPIC:
        return str(obj["content"][0]["text"])
    if vendor == GEMINI:
        return str(obj["candidates"][0]["content"]["parts"][0]["text"])
    return str(obj["message"]["content"])


# --- no fault: a unique, checkable answer ------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("stream", [False, True])
def test_answers_are_unique_and_checkable(chaos_fake: Start, vendor: str, stream: bool) -> None:
    fake = chaos_fake(vendor, None)
    texts = []
    for _ in range(2):
        raw = ask(fake, vendor, stream=stream)
        assert (raw.status, raw.ended) == (200, "eof")
        texts.append(stream_texts(vendor, raw.body) if stream else plain_text(vendor, raw.body))
    assert all(expected_text(t) == t for t in texts)
    assert [header_of(t) for t in texts] == [("t1", vendor, 1), ("t1", vendor, 2)]
    assert texts[0] != texts[1]


def test_answer_text_rebuilds_only_from_its_own_header() -> None:
    text = answer_text("req-7", "a", 3, 20)
    assert expected_text(text) == text
    assert expected_text(text + " extra") != text + " extra"
    assert expected_text(text.replace("<req-7|a|3|", "<req-7|a|4|")) != text


# --- reproducible from a seed ------------------------------------------------------------------
def test_faults_follow_the_seed_not_the_order() -> None:
    rates = {"http_500": 0.3, "reset_before_head": 0.2}
    one, two = Chaos(rates=rates, seed=7, name="a"), Chaos(rates=rates, seed=7, name="a")
    keys = [f"req{i}#0" for i in range(300)]
    picked = [one.pick(k) for k in keys]
    assert picked == [two.pick(k) for k in reversed(keys)][::-1]
    assert picked != [Chaos(rates=rates, seed=8, name="a").pick(k) for k in keys]
    share = picked.count("http_500") / len(picked)
    assert 0.2 < share < 0.4


def test_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        Chaos(rates={"http_418": 0.1})
    with pytest.raises(ValueError, match="sum to <= 1"):
        Chaos(rates={"http_500": 0.7, "http_502": 0.7})


def test_the_chaos_endpoint_counts_requests_and_faults(chaos_fake: Start) -> None:
    fake = chaos_fake(OPENAI, "http_500")
    for n in range(3):
        ask(fake, OPENAI, stream=False, tag=f"r{n}")
    head = b"GET /_chaos HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    found = orjson.loads(exchange(fake.port, head).body)
    assert found == {"name": OPENAI, "served": 3, "faults": {"http_500": 3}}
    assert fake.requests == []  # counted, not kept


# --- HTTP errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("fault", "status"),
    [("http_500", 500), ("http_503", 503), ("http_529", 529), ("rate_limit", 429)],
)
def test_error_statuses_carry_the_vendor_body(
    chaos_fake: Start, vendor: str, fault: str, status: int
) -> None:
    raw = ask(chaos_fake(vendor, fault), vendor, stream=True)
    assert raw.status == status
    assert "retry-after" not in raw.headers
    assert "retry-after-ms" not in raw.headers
    assert isinstance(orjson.loads(raw.body), dict)


@pytest.mark.parametrize("vendor", VENDORS)
def test_rate_limit_with_retry_after(chaos_fake: Start, vendor: str) -> None:
    raw = ask(chaos_fake(vendor, "rate_limit_retry_after", retry_after="7"), vendor, stream=False)
    assert (raw.status, raw.headers["retry-after"]) == (429, "7")


def test_502_is_a_proxy_html_page(chaos_fake: Start) -> None:
    raw = ask(chaos_fake(OPENAI, "http_502"), OPENAI, stream=False)
    assert raw.status == 502
    assert raw.headers["content-type"].startswith("text/html")
    assert b"502 Bad Gateway" in raw.body


# --- connection faults -------------------------------------------------------------------------
def test_refused_resets_then_the_port_refuses(chaos_fake: Start) -> None:
    fake = chaos_fake(OPENAI, "refused", refuse_s=60)
    raw = ask(fake, OPENAI, stream=False)
    assert (raw.status, raw.ended) == (0, "reset")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fake.port), timeout=5).close()


def test_refused_port_reopens(chaos_fake: Start) -> None:
    fake = chaos_fake(OPENAI, "refused", refuse_s=0.05)
    ask(fake, OPENAI, stream=False)
    for _ in range(500):  # bounded: reopened after about 50 ms
        try:
            socket.create_connection(("127.0.0.1", fake.port), timeout=5).close()
            break
        except ConnectionRefusedError:
            time.sleep(0.01)
    else:
        pytest.fail("the port never reopened")
    assert ask(fake, OPENAI, stream=False, tag="t2").ended == "reset"


@pytest.mark.parametrize("vendor", VENDORS)
def test_reset_before_head(chaos_fake: Start, vendor: str) -> None:
    raw = ask(chaos_fake(vendor, "reset_before_head"), vendor, stream=True)
    assert (raw.status, raw.body, raw.ended) == (0, b"", "reset")


@pytest.mark.parametrize("vendor", VENDORS)
def test_reset_mid_body_plain(chaos_fake: Start, vendor: str) -> None:
    raw = ask(chaos_fake(vendor, "reset_mid_body"), vendor, stream=False)
    assert (raw.status, raw.ended) == (200, "reset")
    length = int(raw.headers["content-length"])
    assert 0 < len(raw.body) < length


@pytest.mark.parametrize("vendor", VENDORS)
def test_reset_mid_stream_after_whole_frames(chaos_fake: Start, vendor: str) -> None:
    raw = ask(chaos_fake(vendor, "reset_mid_stream"), vendor, stream=True)
    assert (raw.status, raw.ended) == (200, "reset")
    text = stream_texts(vendor, raw.body)  # every frame sent is whole
    assert text
    expected = expected_text(text)
    assert expected is not None
    assert expected.startswith(text)
    assert text != expected


def test_reset_mid_body_of_a_stream_cuts_inside_a_frame(chaos_fake: Start) -> None:
    raw = ask(chaos_fake(OPENAI, "reset_mid_body"), OPENAI, stream=True)
    assert (raw.status, raw.ended) == (200, "reset")
    assert not raw.body.endswith(b"\n\n")
    assert b"[DONE]" not in raw.body


@pytest.mark.parametrize("vendor", [OPENAI, ANTHROPIC])
def test_stream_stalls_after_the_first_token(chaos_fake: Start, vendor: str) -> None:
    fake = chaos_fake(vendor, "stall_after_first_token", stall_s=60)
    raw = ask(fake, vendor, stream=True, timeout=0.5)  # silence, then we give up
    assert (raw.status, raw.ended) == (200, "timeout")
    text = stream_texts(vendor, raw.body)
    assert text.startswith(f"<t1|{vendor}|1|"[:16])  # the header's start
    assert 0 < len(text) <= 16  # one content frame of chunk_size characters
    assert fake.wait_for_disconnect(5)


def test_plain_request_stalls_before_the_head(chaos_fake: Start) -> None:
    raw = ask(chaos_fake(OPENAI, "stall_after_first_token", stall_s=60), OPENAI, stream=False,
              timeout=0.5)  # fmt: skip
    assert (raw.status, raw.body, raw.ended) == (0, b"", "timeout")


def test_trickle_sends_a_plain_body_one_byte_at_a_time(chaos_fake: Start) -> None:
    fake = chaos_fake(OPENAI, "trickle", trickle_interval_s=0.1)
    raw = ask(fake, OPENAI, stream=False, limit=4)
    assert raw.status == 200
    assert sum(raw.reads) == 4
    assert len(raw.reads) >= 3  # one byte per read (two if this reader was held up)


def test_trickle_after_the_first_token_of_a_stream(chaos_fake: Start) -> None:
    fake = chaos_fake(OPENAI, "trickle", trickle_interval_s=0.1)
    raw = ask(fake, OPENAI, stream=True, reads=5)
    assert raw.status == 200
    first = raw.body.split(b"\n\n")
    assert first[1].startswith(b"data: ")  # the head frame and one content frame, whole
    assert max(raw.reads[1:]) <= 6  # then one byte per chunk of the chunked framing


# --- bad bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_malformed_json(chaos_fake: Start, vendor: str) -> None:
    fake = chaos_fake(vendor, "malformed_json")
    plain = ask(fake, vendor, stream=False)
    assert plain.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(plain.body)
    raw = ask(fake, vendor, stream=True, tag="t2")
    assert (raw.status, raw.ended) == (200, "eof")
    broken = [line for line in _json_lines(vendor, raw.body) if not _parses(line)]
    assert len(broken) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_invalid_utf8(chaos_fake: Start, vendor: str) -> None:
    fake = chaos_fake(vendor, "invalid_utf8")
    for stream in (False, True):
        raw = ask(fake, vendor, stream=stream, tag=f"s{stream}")
        assert raw.status == 200
        assert raw.body.count(b"\xff") == 1
        with pytest.raises(UnicodeDecodeError):
            raw.body.decode("utf-8")
        if stream:
            bad = [line for line in _json_lines(vendor, raw.body) if b"\xff" in line]
            assert len(bad) == 1


@pytest.mark.parametrize("vendor", [OPENAI, OLLAMA])
def test_long_line_has_no_newline(chaos_fake: Start, vendor: str) -> None:
    raw = ask(chaos_fake(vendor, "long_line"), vendor, stream=True)
    assert (raw.status, raw.ended) == (200, "eof")
    last = raw.body.replace(b"\r\n", b"\n").rsplit(b"\n", 1)[-1]
    assert len(last) == SMALL["long_line_bytes"]


def test_long_line_plain_is_a_body_that_size(chaos_fake: Start) -> None:
    raw = ask(chaos_fake(OPENAI, "long_line"), OPENAI, stream=False)
    assert (raw.status, len(raw.body)) == (200, SMALL["long_line_bytes"])


@pytest.mark.parametrize("stream", [False, True])
def test_gzip_bomb(chaos_fake: Start, stream: bool) -> None:
    raw = ask(chaos_fake(ANTHROPIC, "gzip_bomb"), ANTHROPIC, stream=stream)
    assert (raw.status, raw.headers["content-encoding"]) == (200, "gzip")
    assert len(raw.body) == int(raw.headers["content-length"])
    inflated = gzip.decompress(raw.body)
    assert len(inflated) == SMALL["bomb_bytes"]
    assert len(inflated) > 500 * len(raw.body)
    assert not inflated.strip(b"\0")


@pytest.mark.parametrize("vendor", [OPENAI, GEMINI])
@pytest.mark.parametrize("stream", [False, True])
def test_oversized_is_a_valid_answer_far_too_long(
    chaos_fake: Start, vendor: str, stream: bool
) -> None:
    raw = ask(chaos_fake(vendor, "oversized", oversized_bytes=1 << 20), vendor, stream=stream)
    assert (raw.status, raw.ended) == (200, "eof")
    text = stream_texts(vendor, raw.body) if stream else plain_text(vendor, raw.body)
    assert len(text.encode()) >= 1 << 20
    assert expected_text(text) == text


def _json_lines(vendor: str, body: bytes) -> list[bytes]:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    payloads = [line.removeprefix(b"data: ") if vendor != OLLAMA else line for line in lines]
    return [p for p in payloads if p.startswith(b"{")]


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
