"""Folding stream chunks back into one Response."""

import json

from llmdispatcher import StreamChunk, ToolCall, ToolCallDelta, Usage
from llmdispatcher.streaming import StreamAccumulator


def test_text_tool_pieces_finish_and_usage() -> None:
    acc = StreamAccumulator()
    for chunk in (
        StreamChunk(delta="Hel", vendor="v", model="m-1"),
        StreamChunk(delta="lo"),
        StreamChunk(tool_call_deltas=(ToolCallDelta(1, "call_b", "g", ""),)),
        StreamChunk(tool_call_deltas=(ToolCallDelta(0, "call_a", "f", '{"a"'),)),
        StreamChunk(
            tool_call_deltas=(
                ToolCallDelta(0, None, None, ": 1}"),
                ToolCallDelta(1, None, None, "{}"),
            )
        ),
        StreamChunk(finish_reason="tool_calls", usage=Usage(3, 4, 7)),
    ):
        acc.add(chunk)
    response = acc.response()
    assert response.content == "Hello"
    assert response.tool_calls == (
        ToolCall("call_a", "f", '{"a": 1}'),
        ToolCall("call_b", "g", "{}"),
    )
    assert json.loads(response.tool_calls[0].arguments) == {"a": 1}
    assert (response.finish_reason, response.usage) == ("tool_calls", Usage(3, 4, 7))
    assert (response.vendor, response.model) == ("v", "m-1")


def test_tool_calls_without_a_finish_reason_imply_tool_calls() -> None:
    acc = StreamAccumulator()
    acc.add(StreamChunk(tool_call_deltas=(ToolCallDelta(0, "c", "f", ""),)))
    assert acc.response().finish_reason == "tool_calls"
    assert acc.response().tool_calls[0].arguments == "{}"


def test_text_past_the_bound_is_not_kept_and_the_kept_text_stays_a_prefix() -> None:
    fold = StreamAccumulator("v", "m", max_text=10)
    passed = [fold.add(StreamChunk(delta=d)) for d in ("abcd", "efgh", "ijk", "l")]
    assert passed == [True, True, True, True]  # every piece is still passed on
    assert fold.text == "abcdefgh"  # "ijk" did not fit, and "l" after it is not kept either
    assert fold.cut
    assert fold.response().content == "abcdefgh"


def test_text_up_to_the_bound_is_kept_whole() -> None:
    fold = StreamAccumulator(max_text=8)
    for delta in ("abcd", "efgh"):
        fold.add(StreamChunk(delta=delta))
    assert (fold.text, fold.cut) == ("abcdefgh", False)


def test_many_small_pieces_come_back_in_order_across_blocks() -> None:
    fold = StreamAccumulator()
    pieces = [f"{i}," for i in range(1000)]  # several blocks of joined pieces, and a rest
    for piece in pieces:
        fold.add(StreamChunk(delta=piece))
    assert fold.text == "".join(pieces)
    assert not fold.cut
