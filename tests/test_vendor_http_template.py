"""The custom HTTP vendor (type ``http``): what the config says reaches the wire as written,
what it cannot carry is refused before sending, and a bad description is an error that names
the field. The behaviour suite runs the two example formats (TGI, Ollama /api/generate)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from llmdispatcher import Config, Dispatcher, Request
from llmdispatcher.config_file import config_from_mapping
from llmdispatcher.errors import ConfigError, UnsupportedRequest, VendorConnectionError
from llmdispatcher.vendors import vendor_class
from llmdispatcher.vendors.http_template import HttpTemplateVendor, TemplateStreamDecoder
from llmdispatcher.vendors.http_template_spec import AnswerPaths, HttpTemplate, StreamFormat
from tests.fakes.fixtures_more_vendors import FAKE_TGI_KEY
from tests.fakes.http_examples import (
    EXAMPLES,
    ollama_generate_adapter,
    tgi_adapter,
    vendor_from_example,
)
from tests.fakes.ollama_generate_fake import FakeOllamaGenerate
from tests.fakes.script import Reply
from tests.fakes.tgi_fake import FakeTGI

ASK: list[Any] = [{"role": "user", "content": "Say hi"}]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def build(settings: dict[str, Any]) -> HttpTemplateVendor:
    config = config_from_mapping({"vendors": {"box": {"type": "http", **settings}}}, "test.yaml")
    (spec,) = config.vendors
    vendor = vendor_class(spec.type)(**spec.options)
    assert isinstance(vendor, HttpTemplateVendor)
    return vendor


MINIMAL: dict[str, Any] = {
    "url": "http://127.0.0.1:9/generate",
    "body": {"inputs": "{{ prompt }}"},
    "response": {"text": "generated_text"},
}


# --------------------------------------------------------------------------- what is sent
async def test_the_body_template_keeps_types_and_drops_missing_fields(fake_tgi: FakeTGI) -> None:
    vendor = tgi_adapter(fake_tgi)
    request = Request(
        model="tgi",
        messages=[{"role": "system", "content": "Be brief."}, *ASK],
        temperature=0.5,
        stop=["\n", "END"],
        extra={"seed": 7},
    )
    try:
        await vendor.send(request)
    finally:
        await vendor.aclose()
    sent = fake_tgi.last_request
    assert sent.path == "/generate"
    assert sent.headers["authorization"] == f"Bearer {FAKE_TGI_KEY}"
    assert sent.json == {
        "inputs": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hi<|im_end|>"
        "\n<|im_start|>assistant\n",
        # temperature a number, stop a list, the default max_tokens, seed from extra;
        # top_p was not given, so it is not sent at all
        "parameters": {
            "max_new_tokens": 512,
            "temperature": 0.5,
            "stop": ["\n", "END"],
            "seed": 7,
            "details": True,
        },
    }


async def test_quotes_in_a_prompt_cannot_break_out_of_the_body(fake_tgi: FakeTGI) -> None:
    vendor = tgi_adapter(fake_tgi)
    sly = 'x", "parameters": {"best_of": 9}, "y": "{{ api_key }}'
    try:
        await vendor.send(Request(model="tgi", messages=[{"role": "user", "content": sly}]))
    finally:
        await vendor.aclose()
    sent = fake_tgi.last_request.json
    assert sly in sent["inputs"]  # the text, placeholders and all, stays one string
    assert "best_of" not in sent["parameters"]
    assert FAKE_TGI_KEY not in json.dumps(sent)


async def test_system_goes_to_its_own_field_when_the_body_names_it(
    fake_ollama_generate: FakeOllamaGenerate,
) -> None:
    vendor = ollama_generate_adapter(fake_ollama_generate)
    fake_ollama_generate.enqueue(Reply(text="ok"), Reply(text="ok"))
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, *ASK]
    try:
        await vendor.send(Request(model="llama3.2", messages=messages, max_tokens=5))
        chunks = [c async for c in vendor.stream(Request(model="llama3.2", messages=ASK))]
    finally:
        await vendor.aclose()
    first, second = (r.json for r in fake_ollama_generate.requests)
    assert (first["system"], first["prompt"], first["stream"]) == ("Be brief.", "Say hi", False)
    assert first["options"] == {"num_predict": 5}
    assert "system" not in second  # no system message: the key is left out
    assert second["stream"] is True
    assert "".join(c.delta for c in chunks) == "ok"


# ------------------------------------------------------------------------ what is refused
@pytest.mark.parametrize(
    ("extra", "what"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "images",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "1"},
                ]
            },
            "tool calls",
        ),
    ],
)
def test_what_a_template_cannot_carry_is_refused_before_sending(
    fake_tgi: FakeTGI, extra: dict[str, Any], what: str
) -> None:
    vendor = tgi_adapter(fake_tgi)
    request = Request(**{"model": "tgi", "messages": ASK, **extra})
    with pytest.raises(UnsupportedRequest, match=what):
        vendor.check(request)


async def test_a_server_that_cannot_stream_refuses_streams() -> None:
    vendor = build(MINIMAL)
    assert vendor.capabilities.streaming is False
    with pytest.raises(UnsupportedRequest, match=r"stream\.format is none"):
        [c async for c in vendor.stream(Request(model="m", messages=ASK))]


# ------------------------------------------------------------------- health, models, routing
async def test_health_models_and_routing_by_name(fake_tgi: FakeTGI) -> None:
    vendor = tgi_adapter(fake_tgi)
    try:
        health = await vendor.health()
        assert health.ok, health.detail
        assert await vendor.list_models() == ["tgi"]
        assert vendor.serves("tgi")
        assert not vendor.serves("gpt-4o")
    finally:
        await vendor.aclose()
    down = build({**MINIMAL, "health_url": f"http://127.0.0.1:{closed_port()}/health"})
    try:
        health = await down.health()
    finally:
        await down.aclose()
    assert not health.ok
    assert vendor.pricing_name == "tgi"  # prices: {tgi: {...}} in a config file prices it


# -------------------------------------------------------------------- SSE [DONE] sentinels
def test_an_sse_sentinel_ends_the_stream_and_its_absence_is_an_error() -> None:
    template = HttpTemplate(
        url="http://127.0.0.1:9/v1/completions",
        body={"prompt": "{{ prompt }}", "stream": "{{ stream }}"},
        response=AnswerPaths(text="choices[0].text"),
        stream=StreamFormat(
            format="sse", answer=AnswerPaths(text="choices[0].text"), done_data="[DONE]"
        ),
    )
    vendor = HttpTemplateVendor(name="completions", template=template)
    decoder = TemplateStreamDecoder(vendor, "m")
    frames = b'data: {"choices": [{"text": "Hel"}]}\n\ndata: {"choices": [{"text": "lo"}]}\n\n'
    chunks = [*decoder.feed(frames), *decoder.feed(b"data: [DONE]\n\n"), *decoder.finish()]
    assert [c.delta for c in chunks] == ["Hel", "lo", ""]
    assert chunks[-1].finish_reason == "stop"
    cut = TemplateStreamDecoder(vendor, "m")
    list(cut.feed(frames))
    with pytest.raises(VendorConnectionError, match="before its last event"):
        list(cut.finish())


# ----------------------------------------------------------------- bad config, named fields
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"response": {"txt": "a"}}, r"vendors\.box\.response\.txt: unknown setting"),
        ({"response": {"text": "a..b"}}, r"vendors\.box\.response: text: 'a\.\.b' is not a path"),
        (
            {"body": {"parameters": {"max_new_tokens": "{{ max_token }}"}}},
            r"body\.parameters\.max_new_tokens: unknown field 'max_token'",
        ),
        ({"url": "127.0.0.1:8080/generate"}, r"url: .* must start with http"),
        (
            {"stream": {"format": "sse", "answer": {"text": "token.text"}}},
            r"vendors\.box\.stream: done_when: say how the last event is known",
        ),
        (
            {"stream": {"format": "websocket"}},
            r"vendors\.box\.stream\.format: 'websocket' is not one of",
        ),
        (
            {"response": {"text": "t", "finish_reasons": {"eos": "finished"}}},
            r"finish_reasons\.eos: 'finished' is not one of stop, length",
        ),
        ({"prompt_format": {"user": "{{ text }}"}}, r"prompt_format: user: only \{\{ content \}\}"),
        ({"defaults": {"max_tokenz": 5}}, r"defaults\.max_tokenz: unknown field"),
    ],
)
def test_bad_descriptions_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build({**MINIMAL, **change})


def test_a_missing_url_is_named() -> None:
    with pytest.raises(ConfigError, match=r"vendors\.box\.url: required setting is missing"):
        build({"body": {}, "response": {"text": "t"}})
    with pytest.raises(ConfigError, match="url, body and response are required"):
        HttpTemplateVendor(name="box")


def test_the_examples_load_as_files() -> None:
    for path in sorted(Path(EXAMPLES).glob("*.yaml")):
        assert path.read_text().startswith("#"), path  # each says what it describes
    assert {p.name for p in Path(EXAMPLES).glob("*.yaml")} == {"tgi.yaml", "ollama_generate.yaml"}


async def test_a_prices_section_named_after_the_vendor_prices_it(fake_tgi: FakeTGI) -> None:
    prices = {"tgi": {"tgi": {"input": 1.0, "output": 2.0, "as_of": "2026-12-01"}}}
    fake_tgi.enqueue(Reply(text="hi", prompt_tokens=1_000, completion_tokens=500))
    async with Dispatcher(Config(prices=prices), vendors=[tgi_adapter(fake_tgi)]) as dispatcher:
        answer = await dispatcher.send(Request(model="tgi", messages=ASK))
    assert answer.vendor == "tgi"
    assert answer.cost_usd == pytest.approx(0.002)  # 1,000 x $1/M + 500 x $2/M


async def test_a_header_naming_a_missing_key_is_not_sent(fake_tgi: FakeTGI) -> None:
    fake_tgi.api_key = None  # a TGI started without --api-key
    vendor = vendor_from_example("tgi.yaml", {"TGI_URL": fake_tgi.url, "HF_TOKEN": ""})
    try:
        answer = await vendor.send(Request(model="tgi", messages=ASK))
    finally:
        await vendor.aclose()
    assert answer.content
    assert "authorization" not in fake_tgi.last_request.headers
    assert vendor.secrets() == ()
