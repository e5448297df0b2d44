"""What a client sees when things go wrong, on a running gateway: validation errors naming the
field, upstream failures mapped to real statuses (for streams too, before the first token),
in-stream errors after it, hang-ups reaching the vendor, graceful shutdown, and the first log
line without a config file."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmdispatcher import local_models
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, MidStreamError, Stall
from tests.gateway import AUTH, GatewayProcess, call, gateway_yaml, open_stream

MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
CHAT = {"model": "gpt-4o", "messages": MSGS}
STREAM = {**CHAT, "stream": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "bogus", "content": "x"}]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"messages": MSGS}, "model"),
        ({**CHAT, "temperature": 5}, "temperature"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (
            {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
            "tools[0].function.parameters",
        ),
        ({**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**STREAM, "n": 2}, "n"),
        ({**CHAT, "top_logprobs": 2}, "top_logprobs"),
        ({**STREAM, "tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools[0]"),
        ({**CHAT, "tools": [{"type": "custom"}]}, "tools[0].custom"),
        ({**CHAT, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ([1, 2], "body"),
    ],
)
def test_validation_errors_name_the_field(gateway: str, body: Any, param: str) -> None:
    reply = call("POST", f"{gateway}/v1/chat/completions", body, AUTH)
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]


def test_bad_json_and_unknown_routes(gateway: str) -> None:
    bad = call("POST", f"{gateway}/v1/chat/completions", raw=b"{nope", headers=AUTH)
    assert bad.status == 400
    assert bad.json()["error"]["param"] == "body"
    missing = call("GET", f"{gateway}/v1/nothing", headers=AUTH)
    assert missing.status == 404
    assert "no endpoint GET /v1/nothing" in missing.json()["error"]["message"]
    assert call("GET", f"{gateway}/v1/chat/completions", headers=AUTH).status == 405


def test_the_vendors_bad_request_is_the_clients(gateway: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("bad_request"))
    reply = call("POST", f"{gateway}/v1/chat/completions", CHAT, AUTH)
    assert reply.status == 400
    assert "scripted by the fake" in reply.json()["error"]["message"]
    assert reply.headers["x-llmdispatcher-attempts"] == "1"


@pytest.mark.parametrize(
    ("kind", "status"), [("server", 502), ("rate_limit", 429), ("overloaded", 503)]
)
@pytest.mark.parametrize("stream", [False, True])
def test_exhausted_failover_gets_the_mapped_status(
    gateway: str,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    kind: str,
    status: int,
    stream: bool,
) -> None:
    for fake in (fake_openai, fake_openai_b):
        fake.enqueue(Fail(kind, retry_after="0"), Fail(kind, retry_after="0"))
    reply = call("POST", f"{gateway}/v1/chat/completions", {**CHAT, "stream": stream}, AUTH)
    assert reply.status == status  # a stream too: never 200 and then an error
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-llmdispatcher-attempts"] == "4"
    assert reply.headers["x-llmdispatcher-vendor"] == "backup"


def test_stream_failing_before_its_first_token_fails_over(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(MidStreamError(after_chunks=0), MidStreamError(after_chunks=0))
    reply = call("POST", f"{gateway}/v1/chat/completions", STREAM, AUTH)
    assert reply.status == 200
    assert reply.headers["x-llmdispatcher-vendor"] == "backup"
    assert reply.body.endswith(b"data: [DONE]\n\n")


def test_error_after_the_first_token_is_an_error_event(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(MidStreamError(after_chunks=2, kind="server"))
    reply = call("POST", f"{gateway}/v1/chat/completions", STREAM, AUTH)
    assert reply.status == 200
    frames = reply.body.decode().split("\n\n")
    assert "data: [DONE]" not in frames
    error = json.loads(frames[-2].removeprefix("data: "))["error"]
    assert error["type"] == "upstream_error"
    assert "after output reached the caller" in error["message"]


@pytest.mark.parametrize("after_chunks", [1, 0], ids=["mid-stream", "before-first-token"])
def test_client_hang_up_reaches_the_vendor(
    gateway: str, fake_openai: FakeOpenAI, after_chunks: int
) -> None:
    fake_openai.enqueue(Stall(seconds=30, after_chunks=after_chunks))
    if after_chunks:
        conn, response = open_stream(f"{gateway}/v1/chat/completions", STREAM, AUTH)
        _read_until(response, b"Hell")
    else:
        conn = _post_without_reading(gateway)
        assert fake_openai.wait_for_requests(1, timeout=5)
    conn.close()
    started = time.monotonic()
    assert fake_openai.wait_for_disconnect(timeout=5)
    assert time.monotonic() - started < 2


def _read_until(response: Any, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        data = response.read1(65536)
        assert data, seen
        seen += data
    return seen


def _post_without_reading(gateway: str) -> Any:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(gateway)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json", **AUTH}
    conn.request("POST", "/v1/chat/completions", json.dumps(STREAM).encode(), headers)
    return conn


@pytest.fixture
def own_gateway(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> Any:
    """A gateway process of the test's own (it will be stopped), 1 s shutdown grace."""
    config = tmp_path / "c.yaml"
    config.write_text(gateway_yaml(fake_openai, fake_openai_b, fake_anthropic, grace_s=1.5))
    server = GatewayProcess("--config", config)
    server.wait_listening()
    yield server
    server.stop()


def test_graceful_shutdown_lets_streams_finish(
    own_gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Stall(seconds=0.7, after_chunks=1))
    conn, response = open_stream(f"{own_gateway.url}/v1/chat/completions", STREAM, AUTH)
    _read_until(response, b"Hell")
    own_gateway.proc.send_signal(15)
    own_gateway.read_until(re.compile(rb"shutting down"))
    time.sleep(0.1)  # the log line comes just before the listening socket closes
    with pytest.raises(ConnectionError):  # refused (or reset, if it raced the close)
        call("GET", f"{own_gateway.url}/api/v1/health")
    rest = response.read()
    conn.close()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert own_gateway.stop() == 0
    assert fake_openai.disconnects == 0


def test_shutdown_deadline_cancels_what_is_left(
    own_gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Stall(seconds=30, after_chunks=1))
    conn, response = open_stream(f"{own_gateway.url}/v1/chat/completions", STREAM, AUTH)
    _read_until(response, b"Hell")
    started = time.monotonic()
    assert own_gateway.stop() == 0, own_gateway.log.decode()
    assert 1.0 < time.monotonic() - started < 6
    assert fake_openai.wait_for_disconnect(timeout=5)
    conn.close()


@pytest.mark.skipif(
    local_models.smollm2_path() is None or not local_models.runtime_available(),
    reason="the local model extra is not installed",
)
def test_without_config_the_first_log_line_says_embedded_default() -> None:
    server = GatewayProcess()
    try:
        server.wait_listening(timeout=60)
        assert "serving the embedded default" in server.lines[0]
        assert "SmolLM2" in server.lines[0]
        models = call("GET", f"{server.url}/v1/models").json()["data"]
        assert {"local", "smollm2"} <= {m["id"] for m in models}
    finally:
        assert server.stop() == 0


@contextmanager
def two_workers(tmp_path: Path, config_text: str) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with ``--workers 2``, once both workers listen: (process, url)."""
    config = tmp_path / "c.yaml"
    config.write_text(config_text)
    server = GatewayProcess("--config", config, "--workers", "2")
    try:
        url = server.wait_listening(timeout=30)
        server.read_until(re.compile(rb"\(pid (\d+)[^\n]*\n[\s\S]*\(pid (?!\1)\d+"), timeout=60)
        yield server, url
    finally:
        assert server.stop() == 0


def test_workers_share_the_port_and_the_metrics(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    text = gateway_yaml(fake_openai, fake_openai_b, fake_anthropic)
    with two_workers(tmp_path, text) as (server, url):
        assert any("(2 workers)" in line for line in server.lines)
        for _ in range(12):  # a new connection each: the kernel spreads them over the workers
            assert call("POST", f"{url}/v1/chat/completions", CHAT, AUTH).status == 200
        text = call("GET", f"{url}/metrics", headers=AUTH).body.decode()
        counted = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("llmdispatcher_requests_total{")
        ]
        assert sum(counted) == 12  # whichever worker answers the scrape reports both


def test_workers_share_the_stats(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    """Each worker publishes its statistics about once a second; any worker reports them all."""
    text = gateway_yaml(fake_openai, fake_openai_b, fake_anthropic)
    with two_workers(tmp_path, text) as (_, url):
        for _ in range(12):  # a new connection each: the kernel spreads them over the workers
            assert call("POST", f"{url}/v1/chat/completions", CHAT, AUTH).status == 200
        deadline = time.monotonic() + 5  # each worker publishes about once a second
        agreeing = 0
        while agreeing < 10:  # in a row, on new connections: whichever worker answers
            stats = call("GET", f"{url}/api/v1/stats", headers=AUTH).json()
            if (stats["total_requests"], stats["workers"]) == (12, 2):
                agreeing += 1
            else:
                assert time.monotonic() < deadline, stats
                agreeing = 0
                time.sleep(0.1)
        assert stats["vendor_stats"]["openai"]["successes"] == 12
        assert stats["vendor_stats"]["openai"]["latency_p50_s"] is not None


def test_workers_share_rate_limits_through_the_state_backend(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    """openai allows 5 requests a minute. Two workers with the default memory:// backend would
    each grant 5; through the shared backend the pair grants 5, and the rest fall back."""
    text = gateway_yaml(fake_openai, fake_openai_b, fake_anthropic)
    text = text.replace('  openai: {"type": "openai",', '  openai: {"rpm": 5, "type": "openai",')
    with two_workers(tmp_path, text) as (server, url):
        assert any("share rate limits and budgets through sqlite" in line for line in server.lines)
        replies = [call("POST", f"{url}/v1/chat/completions", CHAT, AUTH) for _ in range(12)]
        assert [r.status for r in replies] == [200] * 12
        served_by = [r.headers["x-llmdispatcher-vendor"] for r in replies]
        assert served_by.count("openai") == 5
        assert served_by.count("backup") == 7
        assert len(fake_openai.requests) == 5
