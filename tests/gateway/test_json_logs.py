"""``serve --log-format json`` as a real process: one JSON access line per request with the
listed fields and no secret (499 for a client that went away mid-stream), tracing turned on
by the standard ``OTEL_*`` variables (the spans reach a receiver run by the test), and the
response cache's outcome in each line."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, Stall
from tests.gateway import GatewayProcess, call, open_stream

KEY = "gw-json-logs-key-0123456789"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
ACCESS = re.compile(rb'"logger":"llmdispatcher\.access"')


class _Collector(BaseHTTPRequestHandler):
    posts: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str]]]:
    posts: list[str] = []
    handler = type("Collector", (_Collector,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", posts
    server.shutdown()
    server.server_close()


def access_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in gateway.lines if line.startswith("{")]
    return [line for line in found if line["logger"] == "llmdispatcher.access"]


def test_one_json_access_line_per_request_and_spans_exported(
    tmp_path: Path, fake_openai: FakeOpenAI, collector: tuple[str, list[str]]
) -> None:
    endpoint, posts = collector
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                "cache: {url: 'memory://'}",
                "gateway:",
                f"  api_keys: [{{name: logtest, key: {KEY}}}]",
                "vendors:",
                f"  openai: {{type: openai, base_url: '{fake_openai.url}/v1',"
                f" api_key: {FAKE_OPENAI_KEY}}}",
            ]
        )
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "json-logs-test"}
    gateway = GatewayProcess("--config", config, "--log-format", "json", env=env)
    try:
        url = gateway.wait_listening()
        fake_openai.enqueue(Reply("Hello!", prompt_tokens=9, completion_tokens=12))
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                "temperature": 0}  # fmt: skip
        headers = {"Authorization": f"Bearer {KEY}", "traceparent": TRACEPARENT}
        for _ in range(2):
            assert call("POST", f"{url}/v1/chat/completions", body, headers).status == 200
        wrong = {"Authorization": "Bearer gw-not-a-key-0123456789"}
        assert call("POST", f"{url}/v1/chat/completions", body, wrong).status == 401
        gateway.read_until(re.compile(rb'"status":401'))
        fake_openai.enqueue(Stall(30.0, after_chunks=1))
        conn, reply = open_stream(
            f"{url}/v1/chat/completions", {**body, "stream": True, "temperature": 1}, headers
        )
        assert reply.status == 200
        reply.read1(1)
        conn.close()  # the client goes away mid-stream
        gateway.read_until(re.compile(rb'"status":499'))
    finally:
        gateway.stop()
    assert all(json.loads(line) for line in gateway.lines if line.strip())  # JSON, every line
    miss, hit, refused, gone = access_lines(gateway)
    assert miss["key"] == hit["key"] == "logtest"
    assert (miss["status"], miss["cache"], miss["vendor"]) == (200, "miss", "openai")
    assert (miss["input_tokens"], miss["output_tokens"]) == (9, 12)
    assert miss["cost_usd"] > 0
    assert (hit["cache"], hit["input_tokens"], hit["cost_usd"]) == ("hit", 0, 0.0)
    assert miss["trace_id"] == hit["trace_id"] == CLIENT_TRACE
    assert (refused["status"], refused["key"]) == (401, None)
    assert (gone["status"], gone["cache"], gone["key"]) == (499, "bypass", "logtest")
    for line in (miss, hit, refused, gone):
        assert set(line) >= {"request_id", "model", "latency_s", "ttft_s"}
    text = gateway.log.decode()
    assert KEY not in text
    assert FAKE_OPENAI_KEY not in text
    assert '"hi"' not in text  # no content
    assert posts  # the spans left the process
    assert set(posts) == {"/v1/traces"}
