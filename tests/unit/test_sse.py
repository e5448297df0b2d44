"""The incremental SSE and NDJSON decoders, fed in awkward pieces."""

import time

import pytest

from llmdispatcher.vendors.sse import FrameTooLarge, NDJSONDecoder, SSEDecoder, SSEEvent


def feed_bytewise(decoder: SSEDecoder, data: bytes) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for i in range(len(data)):
        events += decoder.feed(data[i : i + 1])
    return events + decoder.flush()


def test_line_endings_all_work_even_split_byte_by_byte() -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        data = b"data: one" + sep + sep + b"event: named" + sep + b"data: two" + sep + sep
        assert feed_bytewise(SSEDecoder(), data) == [
            SSEEvent("message", "one"),
            SSEEvent("named", "two"),
        ]


def test_multiline_data_comments_and_no_space() -> None:
    data = b": keep-alive\n\ndata:a\ndata: b\n\n"
    assert SSEDecoder().feed(data) == [SSEEvent("message", "a\nb")]


def test_utf8_split_inside_a_character() -> None:
    payload = "data: héllo ✓\n\n".encode()
    decoder = SSEDecoder()
    cut = payload.index("✓".encode()) + 1
    assert decoder.feed(payload[:cut]) == []
    assert decoder.feed(payload[cut:]) == [SSEEvent("message", "héllo ✓")]


def test_flush_returns_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.flush() == [SSEEvent("message", "tail")]


def test_feed_data_gives_each_events_data_as_feed_does() -> None:
    data = b': ping\n\ndata: {"a":1}\n\nevent: x\ndata:two\ndata: lines\n\ndata: \n\ndata: end'
    whole, only_data = SSEDecoder(), SSEDecoder()
    found = whole.feed(data) + whole.flush()
    assert [e.data for e in found] == ['{"a":1}', "two\nlines", "", "end"]
    assert only_data.feed_data(data) + only_data.flush_data() == [e.data for e in found]


def test_ndjson_lines_across_chunks() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert decoder.feed(b":2}\n\n") == [b'{"b":2}']
    assert decoder.feed(b'{"c":3}') == []
    assert decoder.flush() == [b'{"c":3}']


def test_a_line_with_no_end_costs_linear_work() -> None:
    """8 MiB of one line in 1 KiB pieces: rescanning the held bytes for every piece (as
    before) copies ~32 GB and takes seconds; setting them aside and joining once at the line
    end takes ~10 ms. The bound is ~50x the linear cost, far below the quadratic one."""
    piece, pieces = b"x" * 1024, 8 * 1024
    started = time.perf_counter()
    sse = SSEDecoder(max_line=16 << 20)
    assert sse.feed(b"data: ") == []
    for _ in range(pieces):
        assert sse.feed(piece) == []
    (event,) = sse.feed(b"\r\n\r\n")
    assert len(event.data) == len(piece) * pieces
    ndjson = NDJSONDecoder(max_line=16 << 20)
    for _ in range(pieces):
        assert ndjson.feed(piece) == []
    assert [len(line) for line in ndjson.feed(b"\n")] == [len(piece) * pieces]
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("make", [SSEDecoder, NDJSONDecoder])
def test_a_line_past_the_bound_is_refused_as_it_grows(make: type[SSEDecoder]) -> None:
    decoder = make(max_line=10_000)
    decoder.feed(b"data: " + b"x" * 9_000)
    with pytest.raises(FrameTooLarge, match=r"ResponseBounds\.max_line_bytes"):
        decoder.feed(b"x" * 2_000)


@pytest.mark.parametrize("make", [SSEDecoder, NDJSONDecoder])
def test_a_whole_line_past_the_bound_in_one_chunk_is_refused(make: type[SSEDecoder]) -> None:
    with pytest.raises(FrameTooLarge):
        make(max_line=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_an_event_of_many_short_data_lines_is_bounded_too() -> None:
    decoder = SSEDecoder(max_line=1_000)
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"data: 0123456789\n" * 200)


def test_invalid_utf8_in_a_line_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        SSEDecoder().feed(b"data: \xff\xfe\n\n")


def test_cr_at_a_chunk_end_pairs_with_a_lf_at_the_next_start() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", "a\nb")]


def test_an_event_refused_for_its_size_leaves_nothing_behind_for_the_next() -> None:
    decoder = SSEDecoder(max_line=64)
    with pytest.raises(FrameTooLarge):
        decoder.feed_data(b"data: " + b"a" * 40 + b"\ndata: " + b"b" * 40 + b"\n")
    assert decoder.feed_data(b"\ndata: next\n\n") == ["next"]
