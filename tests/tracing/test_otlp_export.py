"""Spans leave the process: the OTLP/HTTP exporter posts them to a small receiver run by the
test, configured in the config file's way (``endpoint``) and the standard way
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmdispatcher import Config, Dispatcher, Request
from llmdispatcher.settings.tracing import Tracing
from llmdispatcher.vendors import OpenAIVendor
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI

HI = [{"role": "user", "content": "Say hello"}]


class Receiver:
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        found = ExportTraceServiceRequest()
        found.ParseFromString(await request.read())
        self.exports.append(found)
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[tuple[str, str, dict[str, object]]]:
        """(service name, span name, attributes) of every span received."""
        out = []
        for export in self.exports:
            for resource in export.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attrs = {a.key: a.value for a in span.attributes}
                        out.append((service, span.name, attrs))
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found.handle)
    server = TestServer(app)
    await server.start_server()
    yield found, str(server.make_url("")).rstrip("/")
    await server.close()


async def ask(fake: FakeOpenAI, tracing: Tracing) -> None:
    vendor = OpenAIVendor(api_key=FAKE_OPENAI_KEY, base_url=fake.url + "/v1")
    async with Dispatcher(Config(tracing=tracing), vendors=[vendor]) as d:
        await d.send(Request(model="gpt-4o-mini", messages=HI))
    # closing the dispatcher flushed its exporter


async def test_spans_are_exported_to_the_configured_endpoint(
    receiver: tuple[Receiver, str], fake_openai: FakeOpenAI
) -> None:
    found, url = receiver
    await ask(fake_openai, Tracing(endpoint=url, service_name="gateway-test"))
    spans = found.spans()
    assert {(service, name) for service, name, _ in spans} == {("gateway-test", "chat gpt-4o-mini")}
    assert len(spans) == 2  # the request and its one try
    assert set(found.paths) == {"/v1/traces"}


async def test_the_standard_variables_configure_the_exporter(
    receiver: tuple[Receiver, str], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, url = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    await ask(fake_openai, Tracing())
    assert {service for service, _, _ in found.spans()} == {"from-env"}
    systems = {a["gen_ai.system"].string_value for _, _, a in found.spans()}
    assert systems == {"openai"}
