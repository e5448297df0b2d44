"""The fake Ollama server is faithful: the official ``ollama`` SDK talks to it like to Ollama."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import ollama
import pytest

from tests.fakes.fixtures_ollama import FAKE_OLLAMA_KEY as KEY
from tests.fakes.ollama_fake import OVERLOADED, FakeOllama
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, Stall, ToolCallSpec

MODEL = "llama3.2"
MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image bytes").decode()


@pytest.fixture
def client(fake_ollama: FakeOllama) -> Iterator[ollama.Client]:
    # The SDK never retries; it reads OLLAMA_API_KEY only from the environment.
    with ollama.Client(host=fake_ollama.url, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def raw(fake: FakeOllama, body: Any, path: str = "/api/chat") -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(fake.url + path, content=content, headers=headers)


# --------------------------------------------------------------------------- success paths
def test_non_stream_text(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    fake_ollama.enqueue(Reply(text="Bonjour", prompt_tokens=5, completion_tokens=7))
    done = client.chat(model=MODEL, messages=MSGS, options={"temperature": 0.2, "num_ctx": 4096})
    assert (done.model, done.done, done.done_reason) == (MODEL, True, "stop")
    assert done.message.role == "assistant"
    assert done.message.content == "Bonjour"
    assert done.message.tool_calls is None
    assert (done.prompt_eval_count, done.eval_count) == (5, 7)
    assert done.eval_duration == 7 * 20_000_000  # nanoseconds
    assert done.total_duration is not None
    assert done.total_duration > done.eval_duration
    assert done.created_at is not None
    assert done.created_at.endswith("Z")
    sent = fake_ollama.last_request
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json["stream"] is False
    assert sent.json["options"] == {"temperature": 0.2, "num_ctx": 4096}


@pytest.mark.parametrize(("finish", "done_reason"), [("stop", "stop"), ("length", "length")])
def test_done_reasons(
    fake_ollama: FakeOllama, client: ollama.Client, finish: str, done_reason: str
) -> None:
    fake_ollama.enqueue(Reply(finish=finish), Reply(finish=finish))
    assert client.chat(model=MODEL, messages=MSGS).done_reason == done_reason
    parts = list(client.chat(model=MODEL, messages=MSGS, stream=True))
    assert parts[-1].done_reason == done_reason
    assert all(p.done_reason is None for p in parts[:-1])


def test_stream_text(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    fake_ollama.enqueue(Reply(text=text, chunk_size=5, prompt_tokens=11, completion_tokens=9))
    parts = list(client.chat(model=MODEL, messages=MSGS, stream=True))
    assert "".join(p.message.content or "" for p in parts) == text
    assert len(parts) == 9 + 1  # 43 chars / 5 per line, then the done line
    *body, last = parts
    assert not any(p.done for p in body)
    assert all(p.eval_count is None for p in body)  # counters only on the done line
    assert (last.done, last.message.content) == (True, "")
    assert (last.prompt_eval_count, last.eval_count) == (11, 9)
    assert fake_ollama.last_request.json["stream"] is True


def test_stream_is_the_default_and_ndjson(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="abcdef", chunk_size=3))
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS})  # no "stream": it streams
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert resp.text.endswith("\n")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [line["message"]["content"] for line in lines] == ["abc", "def", ""]
    assert [line["done"] for line in lines] == [False, False, True]
    assert set(lines[-1]) >= {"done_reason", "eval_count", "total_duration", "created_at"}
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS, "stream": False})
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.json()["done"] is True


def test_prompt_eval_count_is_absent_for_a_cached_prompt(
    fake_ollama: FakeOllama, client: ollama.Client
) -> None:
    fake_ollama.enqueue(Reply(prompt_tokens=0, completion_tokens=4))
    done = client.chat(model=MODEL, messages=MSGS)
    assert done.prompt_eval_count is None
    assert done.eval_count == 4


def test_empty_messages_loads_the_model(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    fake_ollama.enqueue(Reply(text="never used"))
    assert client.chat(model=MODEL, messages=[]).done_reason == "load"
    assert client.chat(model=MODEL, messages=[], keep_alive=0).done_reason == "unload"
    assert fake_ollama.pending == 1


def test_tool_calls_non_stream_and_follow_up(
    fake_ollama: FakeOllama, client: ollama.Client
) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_weather", {})]
    fake_ollama.enqueue(Reply(text="", tool_calls=specs, finish="tool_calls"))
    done = client.chat(model=MODEL, messages=MSGS, tools=TOOLS)
    assert done.done_reason == "stop"  # Ollama has no tool_calls finish reason
    calls = done.message.tool_calls
    assert calls is not None
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {}),
    ]
    assert fake_ollama.last_request.json["tools"][0]["function"]["name"] == "get_weather"
    follow = [*MSGS, done.message, {"role": "tool", "content": "18C", "tool_name": "get_weather"}]
    assert client.chat(model=MODEL, messages=follow, tools=TOOLS).message.content
    sent = fake_ollama.last_request.json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "content": "18C", "tool_name": "get_weather"}


def test_tool_call_wire_shape_new_and_legacy(fake_ollama: FakeOllama) -> None:
    body = {"model": MODEL, "messages": MSGS, "tools": TOOLS, "stream": False}
    spec = [ToolCallSpec("get_weather", {"city": "Oslo"})]
    fake_ollama.enqueue(Reply(text="", tool_calls=spec, finish="tool_calls"))
    call = raw(fake_ollama, body).json()["message"]["tool_calls"][0]
    assert call["id"].startswith("call_")
    assert len(call["id"]) == len("call_") + 8
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}
    fake_ollama.legacy_tool_calls = True
    fake_ollama.enqueue(Reply(text="", tool_calls=spec, finish="tool_calls"))
    call = raw(fake_ollama, body).json()["message"]["tool_calls"][0]
    assert call == {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}


def test_tool_calls_stream_whole_one_line_each(
    fake_ollama: FakeOllama, client: ollama.Client
) -> None:
    specs = [ToolCallSpec("a", {"x": 1, "long": "y" * 30}), ToolCallSpec("b", {"z": [1, 2]})]
    fake_ollama.enqueue(Reply(text="Checking.", tool_calls=specs, finish="tool_calls"))
    parts = list(client.chat(model=MODEL, messages=MSGS, tools=TOOLS, stream=True))
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        (s.name, s.arguments) for s in specs
    ]
    assert [len(p.message.tool_calls or ()) for p in parts if p.message.tool_calls] == [1, 1]
    assert "".join(p.message.content or "" for p in parts) == "Checking."


def test_images_as_bare_base64(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    message = {"role": "user", "content": "What is this?", "images": [b"raw image bytes"]}
    assert client.chat(model="llava", messages=[message]).message.content
    sent = fake_ollama.last_request.json["messages"][0]["images"]
    assert sent == [base64.b64encode(b"raw image bytes").decode()]
    data_uri = {"role": "user", "content": "x", "images": [f"data:image/png;base64,{PNG}"]}
    resp = raw(fake_ollama, {"model": "llava", "messages": [data_uri], "stream": False})
    assert resp.status_code == 400
    assert resp.json() == {"error": "illegal base64 data at input byte 4"}


def test_optional_fields_are_accepted(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    for fmt in ("json", schema):
        done = client.chat(
            model=MODEL,
            messages=[{"role": "system", "content": "Answer in JSON."}, *MSGS],
            format=fmt,
            keep_alive="5m",
            think=False,
            options={"temperature": 0.2, "top_p": 0.9, "top_k": 40, "num_predict": 64},
        )
        assert done.message.content == "Hello from the fake"
    done = client.chat(
        model=MODEL, messages=MSGS, keep_alive=-1, options={"stop": ["END"], "seed": 1}
    )
    assert done.done


def test_models_list_and_version(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    models = client.list().models
    assert [m.model for m in models] == list(fake_ollama.models)
    assert models[0].details is not None
    assert models[0].details.format == "gguf"
    assert models[0].size is not None
    tags = httpx.get(fake_ollama.url + "/api/tags", headers={"Authorization": f"Bearer {KEY}"})
    assert tags.json()["models"][0]["name"] == "llama3.2:latest"
    assert httpx.get(fake_ollama.url + "/").text == "Ollama is running"
    version = httpx.get(fake_ollama.url + "/api/version", headers=tags.request.headers)
    assert version.json()["version"].count(".") == 2


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "status", "needle"),
    [
        ("rate_limit", 429, "too many requests"),
        ("quota", 429, "weekly usage limit"),
        ("server", 500, "llama runner process has terminated"),
        ("overloaded", 503, "server busy, please try again.  maximum pending requests exceeded"),
        ("auth", 401, "unauthorized"),
        ("bad_request", 400, "json: cannot unmarshal"),
        ("not_found", 404, 'model "llama3.2" not found, try pulling it first'),
        ("context_length", 400, "the input length exceeds the context length"),
        ("timeout", 408, "timed out"),
        ("conflict", 409, "conflict"),
    ],
)
def test_fail_kinds_raise_response_error(
    fake_ollama: FakeOllama, client: ollama.Client, kind: str, status: int, needle: str
) -> None:
    fake_ollama.enqueue(Fail(kind))
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=MODEL, messages=MSGS)
    assert info.value.status_code == status
    assert needle in info.value.error
    assert KEY not in str(info.value)


def test_error_body_is_a_bare_string_with_retry_headers(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Fail("overloaded", retry_after="3"), Fail("server", status=502))
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS})
    assert resp.status_code == 503
    assert resp.json() == {"error": OVERLOADED}
    assert resp.headers["retry-after"] == "3"
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS})
    assert resp.status_code == 502
    assert "retry-after" not in resp.headers


def test_mid_stream_error_is_a_response_error_with_status_minus_one(
    fake_ollama: FakeOllama, client: ollama.Client
) -> None:
    fake_ollama.enqueue(MidStreamError(text="abcdefghijkl", after_chunks=2, kind="server"))
    got: list[str] = []
    with pytest.raises(ollama.ResponseError) as info:
        got.extend(
            p.message.content or "" for p in client.chat(model=MODEL, messages=MSGS, stream=True)
        )
    assert "".join(got) == "abcdefgh"
    assert info.value.status_code == -1
    assert "llama runner process has terminated" in info.value.error


def test_mid_stream_error_line_wire_format(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(MidStreamError(text="abcd", after_chunks=1, kind="overloaded"))
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS})
    assert resp.status_code == 200
    lines = resp.text.splitlines()
    assert json.loads(lines[-1]) == {"error": OVERLOADED}
    assert len(lines) == 2
    fake_ollama.enqueue(MidStreamError(kind="server"))  # non-stream: a plain error status
    resp = raw(fake_ollama, {"model": MODEL, "messages": MSGS, "stream": False})
    assert resp.status_code == 500


def test_break_stream_raises_a_transport_error(
    fake_ollama: FakeOllama, client: ollama.Client
) -> None:
    fake_ollama.enqueue(BreakStream(text="abcdefghijkl", after_chunks=1), BreakStream())
    got: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        got.extend(
            p.message.content or "" for p in client.chat(model=MODEL, messages=MSGS, stream=True)
        )
    assert "".join(got) == "abcd"
    with pytest.raises(httpx.RemoteProtocolError):  # non-stream: dropped before any byte
        client.chat(model=MODEL, messages=MSGS)
    assert fake_ollama.disconnects == 0  # the fake hung up, not the client


def test_scripted_fail_wins_over_auth_and_validation(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Fail("server"), Fail("overloaded"), Reply(text="never"))
    with ollama.Client(host=fake_ollama.url) as anonymous:
        with pytest.raises(ollama.ResponseError) as first:
            anonymous.chat(model=MODEL, messages=MSGS)
        with pytest.raises(ollama.ResponseError) as second:
            anonymous.chat(model="not-pulled", messages=MSGS)
        with pytest.raises(ollama.ResponseError) as third:  # a Reply needs an acceptable request
            anonymous.chat(model=MODEL, messages=MSGS)
    assert (first.value.status_code, second.value.status_code) == (500, 503)
    assert (third.value.status_code, third.value.error) == (401, "unauthorized")
    assert fake_ollama.pending == 1


def test_api_key_from_the_environment(
    fake_ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", KEY)
    with ollama.Client(host=fake_ollama.url) as c:
        assert c.chat(model=MODEL, messages=MSGS).done
    monkeypatch.setenv("OLLAMA_API_KEY", "wrong-key-000000")
    with ollama.Client(host=fake_ollama.url) as c, pytest.raises(ollama.ResponseError) as info:
        c.list()
    assert info.value.status_code == 401
    fake_ollama.api_key = None  # a local server takes anything, and nothing
    monkeypatch.delenv("OLLAMA_API_KEY")
    with ollama.Client(host=fake_ollama.url) as c:
        assert c.chat(model=MODEL, messages=MSGS).done
    assert "authorization" not in fake_ollama.last_request.headers


# ------------------------------------------------------------------------ strict validation
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"messages": MSGS}, 400, "model is required"),
        ({"model": "", "messages": MSGS}, 400, "model is required"),
        (
            {"model": "mistral", "messages": MSGS},
            404,
            'model "mistral" not found, try pulling it first',
        ),
        (
            {"model": "qwen2.5", "messages": MSGS},
            404,
            'model "qwen2.5" not found, try pulling it first',
        ),
        (
            {"model": MODEL, "messages": MSGS, "temperature": 0.1},
            400,
            'json: unknown field "temperature"',
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            },
            400,
            "json: cannot unmarshal array into Go struct field Message.messages.content "
            "of type string",
        ),
        (
            {"model": MODEL, "messages": [{"role": "bot", "content": "x"}]},
            400,
            'invalid role "bot" in messages[0]',
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x", "name": "bob"}]},
            400,
            'json: unknown field "name"',
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
            },
            400,
            "json: cannot unmarshal string into Go struct field "
            "ToolCallFunction.messages.tool_calls.function.arguments "
            "of type api.ToolCallFunctionArguments",
        ),
        (
            {"model": MODEL, "messages": MSGS, "stream": "yes"},
            400,
            "ChatRequest.stream of type bool",
        ),
        (
            {"model": MODEL, "messages": MSGS, "options": {"temprature": 1}},
            400,
            'invalid option provided: "temprature"',
        ),
        (
            {"model": MODEL, "messages": MSGS, "options": {"num_ctx": "big"}},
            500,
            'option "num_ctx" must be of type integer',
        ),
        (
            {"model": MODEL, "messages": MSGS, "format": "xml"},
            400,
            'invalid format: expected "json" or a valid JSON schema',
        ),
        (
            {"model": MODEL, "messages": MSGS, "keep_alive": "5 minutes"},
            400,
            'time: invalid duration "5 minutes"',
        ),
        ({"model": MODEL, "messages": MSGS, "think": "max"}, 400, "invalid think value"),
        (
            {"model": MODEL, "messages": MSGS, "tools": [{"type": "function", "function": {}}]},
            400,
            "function.name is required",
        ),
        ([MSGS], 400, "json: cannot unmarshal array into Go value of type api.ChatRequest"),
    ],
)
def test_strict_validation_rejects(
    fake_ollama: FakeOllama, body: Any, status: int, message: str
) -> None:
    fake_ollama.enqueue(Reply(text="must not be used"))
    resp = raw(fake_ollama, body)
    assert resp.status_code == status
    assert message in resp.json()["error"]
    assert set(resp.json()) == {"error"}
    assert fake_ollama.pending == 1  # a rejected request consumes no scripted step


def test_raw_http_edges(fake_ollama: FakeOllama) -> None:
    resp = raw(fake_ollama, b"")
    assert (resp.status_code, resp.json()) == (400, {"error": "missing request body"})
    assert raw(fake_ollama, b"{nope").status_code == 400
    resp = raw(fake_ollama, {}, path="/api/nope")
    assert (resp.status_code, resp.text) == (404, "404 page not found")
    resp = httpx.get(fake_ollama.url + "/api/chat")
    assert resp.status_code == 404


# ----------------------------------------------------------------- timing and hang-ups
def test_stall_and_client_timeout_counts_disconnect(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Stall(seconds=5))
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        ollama.Client(host=fake_ollama.url, headers=headers, timeout=0.2) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        c.chat(model=MODEL, messages=MSGS)
    assert fake_ollama.wait_for_disconnect(timeout=1.0)


async def test_async_client_stream(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="async works", chunk_size=3, delay_s=0.05))
    headers = {"Authorization": f"Bearer {KEY}"}
    started = time.perf_counter()
    async with ollama.AsyncClient(host=fake_ollama.url, headers=headers) as c:
        stream = await c.chat(model=MODEL, messages=MSGS, stream=True)
        text = "".join([p.message.content or "" async for p in stream])
    assert text == "async works"
    assert time.perf_counter() - started >= 0.05
    async with (
        aiohttp.ClientSession(fake_ollama.url, headers=headers) as http,
        http.get("/api/tags") as r,
    ):
        assert r.status == 200
        assert len((await r.json())["models"]) == len(fake_ollama.models)


def test_logprobs(fake_ollama: FakeOllama, client: ollama.Client) -> None:
    fake_ollama.enqueue(Reply(text="Hi there", chunk_size=4), Reply(text="Hi there", chunk_size=4))
    done = client.chat(model=MODEL, messages=MSGS, logprobs=True, top_logprobs=2)
    assert done.logprobs is not None
    assert [t.token for t in done.logprobs] == ["Hi t", "here"]
    assert len(done.logprobs[0].top_logprobs or ()) == 2
    streamed = [
        t.token
        for part in client.chat(model=MODEL, messages=MSGS, stream=True, logprobs=True)
        for t in part.logprobs or ()
    ]
    assert streamed == ["Hi t", "here"]
