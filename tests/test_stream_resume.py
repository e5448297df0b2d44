"""``on_stream_break``: a stream that breaks after its first token either fails
(``StreamInterrupted``, the default) or resumes on the next candidate, over real HTTP."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, RetryPolicy, StreamChunk
from llmdispatcher.errors import StreamInterrupted, VendorConnectionError
from llmdispatcher.settings.routing import Deployment, ModelGroup
from llmdispatcher.streaming import MAX_KEPT_CHARS
from llmdispatcher.types import ToolCallDelta
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import BreakStream, Reply
from tests.unit.echo_vendor import EchoVendor

HI = [{"role": "user", "content": "Tell me a story"}]


def dispatcher(a: FakeOpenAI, b: FakeOpenAI, **group: object) -> Dispatcher:
    chat = ModelGroup("chat", (Deployment("a", "model-a"), Deployment("b", "model-b")), **group)  # type: ignore[arg-type]
    vendors = [
        OpenAIVendor(name=name, api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1")
        for name, fake in (("a", a), ("b", b))
    ]
    config = Config(model_groups=(chat,), retry_policy=RetryPolicy(max_retries=0))
    return Dispatcher(config, vendors=vendors, clock=FakeClock(), rng=random.Random(1))


async def collect(d: Dispatcher) -> list[StreamChunk]:
    return [c async for c in d.stream(Request(model="chat", messages=HI))]


async def test_resume_continues_on_the_next_candidate_with_the_text_so_far(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(BreakStream(text="Once upon a time", after_chunks=2, chunk_size=5))
    fake_openai_b.enqueue(Reply(text=" there was a fox."))
    async with dispatcher(fake_openai, fake_openai_b, on_stream_break="resume") as d:
        chunks = await collect(d)
        stats = d.stats()
    assert "".join(c.delta for c in chunks) == "Once upon  there was a fox."
    final = chunks[-1]
    assert final.resumed_from == ("a/model-a",)
    assert final.finish_reason == "stop"
    assert [(a.vendor, a.status) for a in final.routing.attempts] == [
        ("a", "StreamInterrupted"),
        ("b", "ok"),
    ]
    continuation = fake_openai_b.last_request.json["messages"]
    assert continuation[-1] == {"role": "assistant", "content": "Once upon "}
    assert (stats.successful_requests, stats.failed_requests) == (1, 0)
    assert stats.vendor_stats["a"].failures == 1


async def test_error_is_the_default_and_keeps_the_text_delivered(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(BreakStream(text="Once upon a time", after_chunks=2, chunk_size=5))
    async with dispatcher(fake_openai, fake_openai_b) as d:
        with pytest.raises(StreamInterrupted) as caught:
            await collect(d)
    assert caught.value.partial_text == "Once upon "
    assert fake_openai_b.requests == []


async def test_a_break_with_no_candidate_left_stands(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="unused"))
    fake_openai_b.enqueue(BreakStream(text="Once upon a time", after_chunks=1, chunk_size=5))
    async with dispatcher(fake_openai, fake_openai_b, on_stream_break="resume") as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for _ in d.stream(Request(model="chat", messages=HI, vendor="b")):
                pass
    assert caught.value.partial_text == "Once "


class ToolThenBreak(EchoVendor):
    """Streams the first piece of a tool call, then loses the connection."""

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        self.calls.append(request.model)
        yield StreamChunk(tool_call_deltas=(ToolCallDelta(0, "call_1", "get_weather", '{"ci'),))
        raise VendorConnectionError("connection reset", vendor=self.name)


async def test_a_stream_that_sent_tool_calls_is_never_resumed() -> None:
    a, b = ToolThenBreak("a"), EchoVendor("b")
    group = ModelGroup(
        "chat", (Deployment("a", "m"), Deployment("b", "m")), on_stream_break="resume"
    )
    async with Dispatcher(Config(model_groups=(group,)), vendors=[a, b]) as d:
        with pytest.raises(StreamInterrupted):
            await collect(d)
    assert b.calls == []


def test_on_stream_break_is_checked() -> None:
    with pytest.raises(ValueError, match="on_stream_break must be one of error, resume"):
        ModelGroup("g", (Deployment("a", "m"),), on_stream_break="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_stream_break: must be one of error, resume"):
        Config(on_stream_break="sometimes")  # type: ignore[arg-type]


async def test_a_stream_too_long_to_keep_is_passed_on_whole_but_never_resumed(
    fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    # Past MAX_KEPT_CHARS the text is passed on but not kept: a resume would continue from an
    # incomplete prefix, so the break stands.
    piece = 1024 * 1024
    text = "x" * (MAX_KEPT_CHARS + 2 * piece)
    fake_openai.enqueue(BreakStream(text=text, after_chunks=10, chunk_size=piece))
    fake_openai_b.enqueue(Reply(text="never asked"))
    received: list[str] = []
    async with dispatcher(fake_openai, fake_openai_b, on_stream_break="resume") as d:
        with pytest.raises(StreamInterrupted):
            async for chunk in d.stream(Request(model="chat", messages=HI)):
                received.append(chunk.delta)
    assert sum(map(len, received)) == MAX_KEPT_CHARS + 2 * piece
    assert fake_openai_b.requests == []
