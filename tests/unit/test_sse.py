"""The incremental SSE and NDJSON decoders, fed in awkward pieces."""

from llmdispatcher.vendors.sse import NDJSONDecoder, SSEDecoder, SSEEvent


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


def test_ndjson_lines_across_chunks() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert decoder.feed(b":2}\n\n") == [b'{"b":2}']
    assert decoder.feed(b'{"c":3}') == []
    assert decoder.flush() == [b'{"c":3}']
