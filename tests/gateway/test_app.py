"""In-process tests of the app (aiohttp's test server): limits, the admission hook, errors that
must not leak, no-key mode, the stream encoders' exact bytes, and the gateway config section."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher, Request, Response, StreamChunk, ToolCallDelta, Usage
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.errors import ConfigError
from llmdispatcher.gateway.anthropic_api import AnthropicStreamEncoder, parse_messages
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.auth import ApiKey, KeyStore
from llmdispatcher.gateway.errors import ApiError
from llmdispatcher.gateway.metrics import MAX_MODELS, GatewayMetrics
from llmdispatcher.gateway.openai_api import OpenAIStreamEncoder
from llmdispatcher.vendors.base import Vendor

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class EchoVendor(Vendor):
    """Answers "echo: <last message>"; ``fail`` makes it raise instead."""

    capabilities = Vendor.capabilities

    def __init__(self, fail: BaseException | None = None) -> None:
        self.name = "echo"
        self.fail = fail

    async def send(self, request: Request) -> Response:
        if self.fail is not None:
            raise self.fail
        text = f"echo: {request.message_list[-1].text}"
        return Response(text, self.name, request.model, "stop", Usage(3, 2, 5))

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="echo", vendor=self.name, model=request.model)
        yield StreamChunk(finish_reason="stop", usage=Usage(3, 1, 4), vendor=self.name)


async def client_for(
    vendor: Vendor, settings: GatewayConfig | None = None, **kw: Any
) -> TestClient[Any, Any]:
    dispatcher = Dispatcher(vendors=[vendor])
    client = TestClient(TestServer(create_app(dispatcher, settings, **kw)))
    await client.start_server()
    return client


async def test_no_keys_means_no_auth_and_answers() -> None:
    client = await client_for(EchoVendor())
    try:
        reply = await client.post("/v1/chat/completions", json=CHAT)
        assert reply.status == 200
        assert (await reply.json())["choices"][0]["message"]["content"] == "echo: hi"
        assert reply.headers["x-llmdispatcher-vendor"] == "echo"
    finally:
        await client.close()


async def test_body_limit_is_413() -> None:
    client = await client_for(EchoVendor(), GatewayConfig(max_body_bytes=1024))
    try:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        reply = await client.post("/v1/chat/completions", json=big)
        assert reply.status == 413
        assert (await reply.json())["error"]["code"] == "request_too_large"
    finally:
        await client.close()


async def test_unexpected_errors_leak_nothing() -> None:
    client = await client_for(EchoVendor(fail=RuntimeError("secret internals at 0xdead")))
    try:
        reply = await client.post("/v1/chat/completions", json=CHAT)
        text = await reply.text()
        assert reply.status == 500
        assert "internal error (request id" in text
        assert "secret internals" not in text
        assert "Traceback" not in text
    finally:
        await client.close()


async def test_admission_hook_refusals_are_429_and_counted() -> None:
    async def admission(key: ApiKey | None, request: Request) -> None:
        raise ApiError(429, "over budget", code="budget_exceeded", retry_after=7)

    client = await client_for(EchoVendor(), admission=admission)
    try:
        reply = await client.post("/v1/messages", json={**CHAT, "max_tokens": 5})
        assert reply.status == 429
        assert reply.headers["retry-after"] == "7"
        assert (await reply.json())["error"]["type"] == "rate_limit_error"
        metrics = await (await client.get("/metrics")).text()
        assert (
            'llmdispatcher_rate_limit_rejections_total{key="",reason="budget_exceeded"} 1.0'
            in metrics
        )
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {**CHAT, "metadata": {"api_key": "spoofed", "team": "a", "x": 1}}),
        ("/v1/messages", {**CHAT, "max_tokens": 5}),
        ("/api/v1/chat/completions", {**CHAT, "metadata": {"api_key": "spoofed"}}),
    ],
)
async def test_requests_carry_the_callers_key_name_not_the_clients_claim(
    path: str, body: dict[str, Any]
) -> None:
    """``key:``/``team:`` budgets and the ledger read ``metadata["api_key"]`` and ``["team"]``:
    they must be the key's that authenticated, whatever the client wrote into its own metadata
    (a claimed team is dropped; other fields are kept)."""
    seen: list[Request] = []

    async def admission(key: ApiKey | None, request: Request) -> None:
        seen.append(request)

    token = "sk-gateway-key-0123456789"
    settings = GatewayConfig(api_keys=(ApiKeyConfig("team-a", key=token),))
    client = await client_for(EchoVendor(), settings, admission=admission)
    try:
        auth = {"Authorization": f"Bearer {token}", "x-api-key": token}
        assert (await client.post(path, json=body, headers=auth)).status == 200
    finally:
        await client.close()
    assert seen[0].metadata is not None
    assert seen[0].metadata["api_key"] == "team-a"
    assert "team" not in seen[0].metadata
    assert seen[0].metadata.get("x") == body.get("metadata", {}).get("x")


def test_openai_stream_frames_are_exact() -> None:
    encoder = OpenAIStreamEncoder("chatcmpl-1", "m", include_usage=True)
    head = encoder.head(StreamChunk(delta="Hi", vendor="v", model="m"))
    head = re.sub(rb'"created":\d+', b'"created":1700000000', head)
    prefix = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"m","choices":[{"index":0,"delta":'
    )
    suffix = b',"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    role = b'{"role":"assistant","content":"","refusal":null}'
    assert head == prefix + role + suffix + prefix + b'{"content":"Hi"}' + suffix
    tool = encoder.chunk(StreamChunk(tool_call_deltas=(ToolCallDelta(0, "call_1", "f", ""),)))
    assert (
        b'"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]'
        in tool
    )
    end = encoder.chunk(StreamChunk(finish_reason="stop", usage=Usage(1, 2, 3)))
    assert end.count(b"\n\n") == 2
    assert b'[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3' in end


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_text_frame_is_the_same_bytes_by_either_path(include_usage: bool) -> None:
    encoder = OpenAIStreamEncoder("chatcmpl-1", "m", include_usage)
    text = 'say "hi" \\ \u00e9\u2713\n'
    alone = encoder.chunk(StreamChunk(delta=text))  # text only: built from a template
    with_finish = encoder.chunk(StreamChunk(delta=text, finish_reason="stop"))  # the general path
    assert with_finish.startswith(alone)
    frame = json.loads(alone.removeprefix(b"data: "))
    assert frame["choices"] == [
        {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    ]
    assert ("usage" in frame) is include_usage
    assert encoder.chunk(StreamChunk()) == b""


def test_anthropic_stream_events() -> None:
    encoder = AnthropicStreamEncoder("msg_1", "m")
    out = encoder.head(StreamChunk(delta="Hi"))
    out += encoder.chunk(StreamChunk(tool_call_deltas=(ToolCallDelta(0, "t1", "f", '{"a":'),)))
    out += encoder.chunk(StreamChunk(tool_call_deltas=(ToolCallDelta(0, None, None, "1}"),)))
    out += encoder.chunk(
        StreamChunk(finish_reason="tool_calls", usage=Usage(5, 2, 7, cached_tokens=1))
    )
    names = [
        line.removeprefix(b"event: ") for line in out.split(b"\n") if line.startswith(b"event: ")
    ]
    block = [b"content_block_start", b"content_block_delta"]
    assert names == [
        b"message_start", *block, b"content_block_stop",
        *block, b"content_block_delta", b"content_block_stop",
        b"message_delta", b"message_stop",
    ]  # fmt: skip
    assert b'"stop_reason":"tool_use"' in out
    assert b'"input_tokens":4' in out


USE = {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "P"}}
RESULT = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sun"}]}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def test_anthropic_history_becomes_openai_messages() -> None:
    body = {
        "model": "m",
        "max_tokens": 9,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [USE]},
            {"role": "user", "content": [RESULT, {"type": "text", "text": "thanks"}, IMAGE]},
        ],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
    }  # fmt: skip
    request, stream = parse_messages(body)
    roles = [m.role for m in request.message_list]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert not stream
    assert request.message_list[2].tool_calls[0].arguments == '{"c":"P"}'  # type: ignore[index]
    assert request.message_list[3].content == "sun"
    assert request.message_list[4].images[0].url == "data:image/png;base64,AAAA"
    assert request.tool_choice == "required"
    assert request.max_tokens == 9


def test_keys_are_kept_as_hashes_and_compared_fully() -> None:
    plain = ApiKeyConfig("a", key="k" * 20)
    hashed = ApiKeyConfig(
        "b", key_sha256=hashlib.sha256(b"j" * 20).hexdigest(), allowed_models=("x*",)
    )
    store = KeyStore([plain, hashed])
    assert store.identify("k" * 20).name == "a"  # type: ignore[union-attr]
    found = store.identify("j" * 20)
    assert found is not None
    assert found.allows("x-1")
    assert not found.allows("y")
    assert store.identify("k" * 19) is None
    assert "kkkk" not in repr(plain)
    assert "kkkk" not in repr(store.identify("k" * 20))


def test_model_label_values_are_capped() -> None:
    metrics = GatewayMetrics()
    labels = {metrics.model_label(f"m{i}", served=True) for i in range(MAX_MODELS + 50)}
    assert len(labels) == MAX_MODELS + 1
    assert "other" in labels


def test_gateway_section_of_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_KEY", "from-env-key-0123456789")
    path = tmp_path / "c.yaml"
    path.write_text(
        "gateway:\n  port: 9000\n  workers: 2\n  max_body_bytes: 2048\n"
        "  api_keys:\n    - {name: ci, key: '${GW_KEY}', allowed_models: ['gpt-*']}\n"
    )
    gateway = Config.from_file(path).gateway
    assert (gateway.port, gateway.workers, gateway.max_body_bytes) == (9000, 2, 2048)
    assert gateway.api_keys == (
        ApiKeyConfig("ci", key="from-env-key-0123456789", allowed_models=("gpt-*",)),
    )
    assert "from-env-key" not in repr(gateway)
    toml = tmp_path / "c.toml"
    toml.write_text('[gateway]\nhost = "::1"\nshutdown_grace_s = 3\n')
    assert Config.from_file(toml).gateway.shutdown_grace_s == 3.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gateway: {prot: 1}", "gateway.prot: unknown setting"),
        ("gateway: {port: x}", "gateway.port: expected an integer"),
        ("gateway: {workers: 0}", "gateway.workers: must be at least 1"),
        ("gateway: {api_keys: [{name: a}]}", "give exactly one of key or key_sha256"),
        ("gateway: {api_keys: [{name: a, key: short}]}", "at least 16 characters"),
        ("gateway: {api_keys: [{name: a, key_sha256: abc}]}", "64 hex digits"),
        (
            "gateway: {api_keys: [{name: a, key: '0123456789abcdef', allowed: []}]}",
            "gateway.api_keys[0].allowed: unknown setting",
        ),
    ],
)
def test_gateway_section_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config.from_file(path)
