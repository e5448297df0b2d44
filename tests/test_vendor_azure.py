"""Our Azure OpenAI adapter through the Dispatcher, against the fake Azure resource."""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmdispatcher import Config, Dispatcher, FakeClock, Request, RetryPolicy, StreamChunk, Usage
from llmdispatcher.errors import (
    AuthenticationError,
    ConfigError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    StreamInterrupted,
    UnsupportedRequest,
    VendorError,
    VendorServerError,
    VendorTimeout,
)
from llmdispatcher.vendors.azure import AzureOpenAIVendor
from tests.fakes.azure_fake import FakeAzureOpenAI, adapter_for
from tests.fakes.fixtures_openai_family import FAKE_AZURE_AD_TOKEN as TOKEN
from tests.fakes.fixtures_openai_family import FAKE_AZURE_KEY as KEY
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, Stall, ToolCallSpec

VERSION = "2024-10-21"
HELLO = Request(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
AZURE_ENV = ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT")


def dispatcher(*vendors: AzureOpenAIVendor, clock: FakeClock | None = None) -> Dispatcher:
    policy = RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8)
    return Dispatcher(
        Config(retry_policy=policy),
        vendors=vendors,
        clock=clock or FakeClock(),
        rng=random.Random(7),
    )


def azure(fake: FakeAzureOpenAI, **kwargs: Any) -> AzureOpenAIVendor:
    vendor = adapter_for(fake, **kwargs)
    assert isinstance(vendor, AzureOpenAIVendor)
    return vendor


async def collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in chunks]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*AZURE_ENV, "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------ request and reply
async def test_send_uses_the_deployment_route_and_keeps_the_requested_model(
    fake_azure: FakeAzureOpenAI,
) -> None:
    fake_azure.enqueue(
        Reply(text="Hi!", prompt_tokens=7, completion_tokens=3, cached_tokens=2, reasoning_tokens=1)
    )
    async with dispatcher(azure(fake_azure)) as d:
        response = await d.send(HELLO)
    assert (response.content, response.finish_reason) == ("Hi!", "stop")
    assert response.model == "gpt-4o-mini-2024-07-18"  # what Azure answered
    assert [(a.vendor, a.model) for a in response.attempts] == [("azure", "gpt-4o-mini")]
    assert response.usage == Usage(7, 3, 10, cached_tokens=2, reasoning_tokens=1)
    assert "prompt_filter_results" in response.raw
    sent = fake_azure.last_request
    assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent.query == {"api-version": VERSION}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_deployment_mapping_then_default_deployment_then_model_name(
    fake_azure: FakeAzureOpenAI,
) -> None:
    vendor = azure(fake_azure, deployments={"house-model": "gpt-4.1"})
    fallback = azure(fake_azure, name="azure2", deployments="o3-mini")
    async with dispatcher(vendor, fallback) as d:
        mapped = await d.send(Request(model="house-model", messages=HELLO.messages))
        plain = await d.send(HELLO)
        default = await d.send(Request(model="anything", messages=HELLO.messages, vendor="azure2"))
    paths = [r.path.split("/")[3] for r in fake_azure.requests]
    assert paths == ["gpt-4.1", "gpt-4o-mini", "o3-mini"]
    assert [r.json["model"] for r in fake_azure.requests] == paths
    assert (mapped.model, plain.model, default.model) == (
        "gpt-4.1-2025-04-14",
        "gpt-4o-mini-2024-07-18",
        "o3-mini-2025-01-31",
    )


async def test_v1_surface(fake_azure: FakeAzureOpenAI) -> None:
    vendor = azure(fake_azure, api_version="v1", deployments={"fast": "gpt-4o-mini"})
    async with dispatcher(vendor) as d:
        response = await d.send(Request(model="fast", messages=HELLO.messages))
        models = await vendor.list_models()
    sent = fake_azure.last_request
    assert (sent.path, sent.query, sent.json["model"]) == (
        "/openai/v1/chat/completions",
        {},
        "gpt-4o-mini",
    )
    assert sent.headers["api-key"] == KEY
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert models == ["fast"]  # the mapping's keys are the names requests use


@pytest.mark.parametrize(
    "model", ["..", "gpt-4o/../../other", "gpt-4o?api-version=x", "gpt 4o", "gpt-4o%2F..", "."]
)
async def test_a_deployment_never_walks_the_url_path(
    fake_azure: FakeAzureOpenAI, model: str
) -> None:
    vendor = azure(fake_azure)
    request = Request(model=model, messages=HELLO.messages)
    refused = rf"model {re.escape(repr(model))} cannot be sent to vendor 'azure': it goes into"
    async with dispatcher(vendor) as d:
        with pytest.raises(UnsupportedRequest, match=refused):
            vendor.check(request)
        with pytest.raises(UnsupportedRequest, match=refused):
            await vendor.send(request)
        with pytest.raises(UnsupportedRequest, match=refused):
            await d.send(request)
    assert fake_azure.requests == []


async def test_deployment_names_reach_the_request_line_as_written(
    fake_azure: FakeAzureOpenAI,
) -> None:
    vendor = azure(fake_azure, deployments={"house": "gpt-4.1"})
    fake_azure.deployments["my_deploy.v2~x"] = "gpt-4o-2024-11-20"  # every unreserved character
    async with dispatcher(vendor) as d:
        for model in ("gpt-4o-mini", "house", "my_deploy.v2~x"):
            fake_azure.enqueue(Reply(text="ok"))
            await d.send(Request(model=model, messages=HELLO.messages))
    assert [r.target for r in fake_azure.requests] == [
        f"/openai/deployments/{name}/chat/completions?api-version={VERSION}"
        for name in ("gpt-4o-mini", "gpt-4.1", "my_deploy.v2~x")
    ]


async def test_request_fields_images_and_json_mode(fake_azure: FakeAzureOpenAI) -> None:
    request = Request(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Reply in json."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
        ],
        temperature=0.3,
        max_tokens=40,
        stop=["END"],
        response_format={"type": "json_object"},
        extra={"seed": 1},
    )
    fake_azure.enqueue(Reply(text='{"a": 1}', finish="length"))
    async with dispatcher(azure(fake_azure)) as d:
        response = await d.send(request)
    body = fake_azure.last_request.json
    assert body["max_completion_tokens"] == 40
    assert (body["temperature"], body["stop"], body["seed"]) == (0.3, ["END"], 1)
    assert body["response_format"] == {"type": "json_object"}
    parts = body["messages"][1]["content"]
    assert [p["image_url"]["url"][:10] for p in parts[1:]] == ["data:image", "https://ex"]
    assert response.finish_reason == "length"


async def test_content_filter_finish_reason(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(Reply(text="partial", finish="content_filter"))
    fake_azure.enqueue(Reply(text="partial", finish="content_filter"))
    async with dispatcher(azure(fake_azure)) as d:
        sent = await d.send(HELLO)
        streamed = await collect(d.stream(HELLO))
    assert sent.finish_reason == "content_filter"
    assert streamed[-1].finish_reason == "content_filter"


# -------------------------------------------------------------------------------- streams
async def test_stream_skips_azure_filter_chunks(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(Reply(text="Streaming on Azure.", chunk_size=5, prompt_tokens=4))
    async with dispatcher(azure(fake_azure)) as d:
        chunks = await collect(d.stream(HELLO))
    *body, last = chunks
    assert "".join(c.delta for c in body) == "Streaming on Azure."
    assert all(c.delta for c in body)  # the prompt-filter and filter-only chunks carry nothing
    assert (last.finish_reason, last.usage) == ("stop", Usage(4, 12, 16))
    assert last.model == "gpt-4o-mini-2024-07-18"
    assert fake_azure.last_request.json["stream_options"] == {"include_usage": True}


async def test_tool_round_trip_and_streamed_tool_calls(fake_azure: FakeAzureOpenAI) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"}), ToolCallSpec("get_weather", {})]
    fake_azure.enqueue(
        Reply(text="", tool_calls=specs, finish="tool_calls"),
        Reply(text="", tool_calls=specs, finish="tool_calls", chunk_size=3),
        Reply(text="Sunny."),
    )
    ask = Request(model="gpt-4o", messages=HELLO.messages, tools=[WEATHER])
    async with dispatcher(azure(fake_azure)) as d:
        response = await d.send(ask)
        chunks = await collect(d.stream(ask))
        history = [
            *HELLO.messages,
            {"role": "assistant", "content": None, "tool_calls": list(response.tool_calls)},
            *[
                {"role": "tool", "tool_call_id": c.id, "content": "18C"}
                for c in response.tool_calls
            ],
        ]
        answer = await d.send(Request(model="gpt-4o", messages=history, tools=[WEATHER]))
    assert response.finish_reason == "tool_calls"
    assert [json.loads(c.arguments) for c in response.tool_calls] == [{"city": "Paris"}, {}]
    joined: dict[int, str] = {}
    for chunk in chunks:
        for delta in chunk.tool_call_deltas:
            joined[delta.index] = joined.get(delta.index, "") + delta.arguments
    assert [json.loads(v) for v in joined.values()] == [{"city": "Paris"}, {}]
    assert chunks[-1].finish_reason == "tool_calls"
    assert answer.content == "Sunny."
    sent = fake_azure.last_request.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]


async def test_mid_stream_error_before_first_token_is_retried(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(MidStreamError(after_chunks=0), BreakStream(), Reply(text="third"))
    async with dispatcher(azure(fake_azure)) as d:
        chunks = await collect(d.stream(HELLO))
    assert "".join(c.delta for c in chunks) == "third"
    assert len(fake_azure.requests) == 3


async def test_mid_stream_error_after_first_token_interrupts(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(MidStreamError(text="Hello world", after_chunks=2, chunk_size=4))
    seen: list[str] = []
    async with dispatcher(azure(fake_azure)) as d:
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in d.stream(HELLO):
                seen.append(chunk.delta)
    assert caught.value.partial_text == "Hello wo" == "".join(seen)
    assert len(fake_azure.requests) == 1


async def test_a_consumer_that_stops_mid_stream_hangs_up_on_azure(
    fake_azure: FakeAzureOpenAI,
) -> None:
    fake_azure.enqueue(Stall(seconds=10, after_chunks=2))
    async with dispatcher(azure(fake_azure, azure_ad_token=lambda: TOKEN)) as d:
        stream = d.stream(HELLO)
        assert (await anext(stream)).delta
        await stream.aclose()  # type: ignore[attr-defined]
        assert await fake_azure.wait_for_disconnect_async(2.0)


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "error", "retryable"),
    [
        ("rate_limit", RateLimitError, True),
        ("quota", RateLimitError, False),
        ("server", VendorServerError, True),
        ("overloaded", VendorServerError, True),
        ("timeout", VendorTimeout, True),
        ("conflict", VendorServerError, True),
        ("auth", AuthenticationError, False),
        ("bad_request", InvalidRequestError, False),
        ("not_found", ModelNotFound, False),
        ("context_length", ContextLengthExceeded, False),
    ],
)
async def test_every_fail_kind_maps_to_its_error(
    fake_azure: FakeAzureOpenAI, kind: str, error: type[VendorError], retryable: bool
) -> None:
    fake_azure.enqueue(Fail(kind), Fail(kind), Reply(text="recovered"))
    vendor = azure(fake_azure)
    with pytest.raises(error) as caught:
        await vendor.send(HELLO)
    await vendor.aclose()
    assert type(caught.value) is error
    assert (caught.value.retryable, caught.value.vendor) == (retryable, "azure")
    async with dispatcher(azure(fake_azure)) as d:
        if retryable:
            assert (await d.send(HELLO)).content == "recovered"
        else:
            with pytest.raises(error):
                await d.send(HELLO)
    assert fake_azure.pending == (0 if retryable else 1)


async def test_gateway_errors_keep_their_codes(fake_azure: FakeAzureOpenAI) -> None:
    async with dispatcher(azure(fake_azure)) as d:
        with pytest.raises(ModelNotFound) as missing:
            await d.send(Request(model="gpt-99", messages=HELLO.messages))
    async with dispatcher(azure(fake_azure, api_key="wrong-key-00000000")) as d:
        with pytest.raises(AuthenticationError) as denied:
            await d.send(HELLO)
    assert (missing.value.status, missing.value.error_code) == (404, "DeploymentNotFound")
    assert (denied.value.status, denied.value.error_code) == (401, "401")
    assert "Access denied" in denied.value.message


async def test_filtered_prompt_is_a_content_filter_error_not_retried(
    fake_azure: FakeAzureOpenAI,
) -> None:
    fake_azure.filter_prompt_containing = "forbidden"
    clock = FakeClock()
    async with dispatcher(azure(fake_azure), clock=clock) as d:
        with pytest.raises(InvalidRequestError) as caught:
            await d.send(
                Request(model="gpt-4o", messages=[{"role": "user", "content": "forbidden"}])
            )
    assert type(caught.value) is InvalidRequestError
    assert (caught.value.status, caught.value.error_code) == (400, "content_filter")
    assert caught.value.retryable is False
    assert (len(fake_azure.requests), clock.sleeps) == (1, [])


async def test_retry_after_is_honoured(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(
        Fail("rate_limit", retry_after="3"), Fail("overloaded", retry_after_ms="1250"), Reply()
    )
    clock = FakeClock()
    async with dispatcher(azure(fake_azure), clock=clock) as d:
        await d.send(HELLO)
    assert clock.sleeps == [3.0, 1.25]


async def test_credentials_never_appear_in_errors(fake_azure: FakeAzureOpenAI) -> None:
    fake_azure.enqueue(
        Fail("bad_request", message=f"echo {KEY}"), Fail("bad_request", message=f"echo {TOKEN}")
    )
    by_key = azure(fake_azure)
    by_token = azure(fake_azure, azure_ad_token=lambda: TOKEN)
    errors = []
    for vendor in (by_key, by_token):
        with pytest.raises(InvalidRequestError) as caught:
            await vendor.send(HELLO)
        errors.append(str(caught.value))
        await vendor.aclose()
    assert all("echo ***" in text for text in errors)
    assert not any(KEY in text or TOKEN in text for text in errors)
    assert KEY not in repr(by_key)


# ----------------------------------------------------------------------------------- auth
async def test_static_entra_token(fake_azure: FakeAzureOpenAI) -> None:
    async with dispatcher(azure(fake_azure, azure_ad_token=TOKEN)) as d:
        await d.send(HELLO)
    headers = fake_azure.last_request.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in headers


@pytest.mark.parametrize("is_async", [False, True])
async def test_token_provider_is_called_before_every_request(
    fake_azure: FakeAzureOpenAI, is_async: bool
) -> None:
    calls: list[str] = []

    def sync_provider() -> str:
        calls.append("sync")
        return TOKEN

    async def async_provider() -> str:
        calls.append("async")
        return TOKEN

    provider = async_provider if is_async else sync_provider
    vendor = azure(fake_azure, azure_ad_token=provider)
    async with dispatcher(vendor) as d:
        await d.send(HELLO)
        await collect(d.stream(HELLO))
        assert (await vendor.health()).ok
    assert len(calls) == 3
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fake_azure.requests)


@pytest.mark.parametrize("outcome", ["raises", "empty"])
async def test_a_failing_token_provider_is_an_authentication_error(
    fake_azure: FakeAzureOpenAI, outcome: str
) -> None:
    def provider() -> str:
        if outcome == "raises":
            raise RuntimeError("credential unavailable")
        return ""

    vendor = azure(fake_azure, azure_ad_token=provider)
    async with dispatcher(vendor) as d:
        with pytest.raises(AuthenticationError, match="the azure_ad_token provider"):
            await d.send(HELLO)
        health = await vendor.health()
    assert not health.ok
    assert "the azure_ad_token provider" in health.detail
    assert fake_azure.requests == []


# --------------------------------------------------------------------- configuration, env
def test_construction_from_the_sdks_environment_variables(
    fake_azure: FakeAzureOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert AzureOpenAIVendor.from_env() is None
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_azure.url)
    with pytest.raises(ConfigError, match="OPENAI_API_VERSION"):
        AzureOpenAIVendor.from_env()
    monkeypatch.setenv("OPENAI_API_VERSION", VERSION)
    vendor = AzureOpenAIVendor.from_env()
    assert vendor is not None
    assert (vendor.name, vendor.base_url, vendor.api_version) == (
        "azure",
        fake_azure.url + "/openai",
        VERSION,
    )
    assert vendor.credential_headers() == {"api-key": KEY}
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", TOKEN)  # the SDK prefers the token
    assert AzureOpenAIVendor().credential_headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert AzureOpenAIVendor(api_key="explicit").credential_headers() == {"api-key": "explicit"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"api_version": VERSION, "azure_endpoint": "https://r"}, "AZURE_OPENAI_API_KEY"),
        ({"api_key": "k", "api_version": VERSION}, "AZURE_OPENAI_ENDPOINT"),
        ({"api_key": "k", "azure_endpoint": "https://r"}, "OPENAI_API_VERSION"),
        (
            {"api_key": "k", "azure_ad_token": "t", "azure_endpoint": "https://r"},
            "mutually exclusive",
        ),
    ],
)
def test_configuration_errors_name_the_fix(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        AzureOpenAIVendor(**kwargs)


async def test_health_and_list_models(fake_azure: FakeAzureOpenAI) -> None:
    vendor = azure(fake_azure)
    health = await vendor.health()
    models = await vendor.list_models()
    bad = azure(fake_azure, api_key="wrong-key-00000000")
    bad_health = await bad.health()
    await vendor.aclose()
    await bad.aclose()
    assert health.ok
    assert models == sorted(set(fake_azure.deployments.values()))
    assert fake_azure.requests[0].path == "/openai/models"
    assert fake_azure.requests[0].query == {"api-version": VERSION}
    assert not bad_health.ok
    assert "401" in bad_health.detail
