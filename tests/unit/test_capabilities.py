"""A vendor refuses, before sending, what it cannot do; the dispatcher then falls back."""

from collections.abc import AsyncIterator

import pytest

from llmdispatcher import Config, Dispatcher, Request, Response, StreamChunk, Usage
from llmdispatcher.errors import UnsupportedRequest
from llmdispatcher.vendors import Capabilities, Vendor


class EchoVendor(Vendor):
    """A minimal in-process vendor: answers with the last user message."""

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.name = name
        self.capabilities = capabilities
        self.calls = 0

    async def send(self, request: Request) -> Response:
        self.calls += 1
        return Response(
            content=request.message_list[-1].text,
            vendor=self.name,
            model=request.model,
            finish_reason="stop",
            usage=Usage(),
        )

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        yield StreamChunk(delta=request.message_list[-1].text, finish_reason="stop")


IMAGE = Request(
    model="m",
    messages=[
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ],
)
TOOLS = Request(
    model="m",
    messages=[{"role": "user", "content": "x"}],
    tools=[{"type": "function", "function": {"name": "f"}}],
)
JSON = Request(
    model="m", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}
)


@pytest.mark.parametrize(
    ("request_", "caps", "what"),
    [
        (IMAGE, Capabilities(vision=False), "images"),
        (TOOLS, Capabilities(tools=False), "tools"),
        (JSON, Capabilities(json_mode=False), "response_format"),
    ],
)
async def test_refused_before_sending(request_: Request, caps: Capabilities, what: str) -> None:
    text_only = EchoVendor("text-only", caps)
    async with Dispatcher(vendors=[text_only]) as d:
        with pytest.raises(UnsupportedRequest, match=f"cannot take {what}"):
            await d.send(request_)
    assert text_only.calls == 0


async def test_falls_back_to_a_vendor_that_can() -> None:
    text_only = EchoVendor("text-only", Capabilities(vision=False))
    vision = EchoVendor("vision", Capabilities())
    async with Dispatcher(Config(fallback_vendors=("vision",)), vendors=[text_only, vision]) as d:
        response = await d.send(IMAGE)
    assert (response.vendor, response.content) == ("vision", "what is it?")
    assert [a.status for a in response.attempts] == ["UnsupportedRequest", "ok"]
    assert text_only.calls == 0
