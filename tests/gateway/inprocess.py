"""In-process gateways for the edge tests: a vendor that serves one model (any other is a 404,
as real vendors answer) and an app in front of it whose retries wait on a ``FakeClock``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Dispatcher, Request, Response, StreamChunk, Usage
from llmdispatcher.clock import FakeClock
from llmdispatcher.config import GatewayConfig
from llmdispatcher.errors import ModelNotFound
from llmdispatcher.gateway.app import create_app
from llmdispatcher.vendors.base import Vendor

MESSAGES = [{"role": "user", "content": "hi"}]


class OneModelVendor(Vendor):
    """Serves only ``known``; any other model is a 404, as real vendors answer."""

    capabilities = Vendor.capabilities

    def __init__(self, known: str = "known-model") -> None:
        self.name = "echo"
        self.known = known

    async def send(self, request: Request) -> Response:
        if request.model != self.known:
            raise ModelNotFound(f"no model {request.model[:40]!r}", vendor=self.name, status=404)
        return Response("ok", self.name, request.model, "stop", Usage(3, 2, 5))

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="ok", vendor=self.name, model=request.model)
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 1, 4), vendor=self.name)


async def edge_client(
    vendor: Vendor, settings: GatewayConfig | None = None, **kw: Any
) -> TestClient[Any, Any]:
    """An in-process gateway in front of ``vendor``; retries wait on a ``FakeClock``."""
    dispatcher = Dispatcher(vendors=[vendor], clock=FakeClock())
    client = TestClient(TestServer(create_app(dispatcher, settings, **kw)))
    await client.start_server()
    return client


async def metrics_size(client: TestClient[Any, Any]) -> int:
    return len(await (await client.get("/metrics")).read())


CHAT = {"model": "known-model", "messages": MESSAGES}
