"""A minimal in-process vendor for routing tests: answers with the last user message."""

from collections.abc import AsyncIterator

from llmdispatcher import Request, Response, StreamChunk, Usage
from llmdispatcher.vendors import Capabilities, Vendor


class EchoVendor(Vendor):
    def __init__(
        self, name: str, capabilities: Capabilities | None = None, prefixes: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.capabilities = capabilities or Capabilities()
        self.model_prefixes = prefixes
        self.calls: list[str] = []

    async def send(self, request: Request) -> Response:
        self.calls.append(request.model)
        return Response(
            content=request.message_list[-1].text,
            vendor=self.name,
            model=request.model,
            finish_reason="stop",
            usage=Usage(1, 1, 2),
        )

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        self.calls.append(request.model)
        yield StreamChunk(delta=request.message_list[-1].text, finish_reason="stop")
