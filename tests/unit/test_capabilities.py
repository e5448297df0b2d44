"""A vendor refuses, before sending, what it cannot do; the dispatcher then falls back."""

import pytest

from llmdispatcher import Config, Dispatcher, Request
from llmdispatcher.errors import UnsupportedRequest
from llmdispatcher.vendors import Capabilities
from tests.unit.echo_vendor import EchoVendor

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
    assert text_only.calls == []


async def test_falls_back_to_a_vendor_that_can() -> None:
    text_only = EchoVendor("text-only", Capabilities(vision=False))
    vision = EchoVendor("vision", Capabilities())
    async with Dispatcher(Config(fallback_vendors=("vision",)), vendors=[text_only, vision]) as d:
        response = await d.send(IMAGE)
    assert (response.vendor, response.content) == ("vision", "what is it?")
    assert [a.status for a in response.attempts] == ["ok"]
    assert "cannot take images" in response.routing.excluded["text-only/m"]
    assert text_only.calls == []
