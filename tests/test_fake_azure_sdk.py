"""The fake Azure OpenAI server is faithful: ``openai.AzureOpenAI`` talks to it like to Azure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.azure_fake import DENIED_KEY, DENIED_TOKEN, FakeAzureOpenAI
from tests.fakes.fixtures_openai_family import FAKE_AZURE_AD_TOKEN as TOKEN
from tests.fakes.fixtures_openai_family import FAKE_AZURE_KEY as KEY
from tests.fakes.script import BreakStream, Fail, MidStreamError, Reply, ToolCallSpec

VERSION = "2024-10-21"
MSGS: list[Any] = [{"role": "user", "content": "Say hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(fake_azure: FakeAzureOpenAI) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=fake_azure.url, api_key=KEY, api_version=VERSION, max_retries=0
    ) as c:
        yield c


@pytest.fixture
async def aclient(fake_azure: FakeAzureOpenAI) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_azure.url, api_key=KEY, api_version=VERSION, max_retries=0
    ) as c:
        yield c


# --------------------------------------------------------------------------- success paths
def test_non_stream_on_the_deployment_route(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.enqueue(Reply(text="Bonjour", prompt_tokens=5, completion_tokens=7, cached_tokens=2))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    done = raw.parse()
    assert done.model == "gpt-4o-mini-2024-07-18"  # the model version, not the deployment
    assert done.choices[0].message.content == "Bonjour"
    extra = done.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["jailbreak"] == {
        "filtered": False,
        "detected": False,
    }
    choice_extra = done.choices[0].model_extra or {}
    assert choice_extra["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert done.usage is not None
    assert done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 2
    assert raw.headers["x-ms-region"] == "East US"
    assert raw.headers["apim-request-id"] == raw.headers["x-request-id"]
    sent = fake_azure.last_request
    assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent.query == {"api-version": VERSION}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.json == {"model": "gpt-4o-mini", "messages": MSGS}


@pytest.mark.parametrize(("finish", "filtered"), [("length", False), ("content_filter", True)])
def test_finish_reasons_and_choice_filter_results(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI, finish: str, filtered: bool
) -> None:
    fake_azure.enqueue(Reply(finish=finish))
    choice = client.chat.completions.create(model="gpt-4o", messages=MSGS).choices[0]
    assert choice.finish_reason == finish
    assert (choice.model_extra or {})["content_filter_results"]["violence"]["filtered"] is filtered


def test_stream_opens_with_prompt_filter_chunk_and_ends_with_filter_only_chunk(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.enqueue(Reply(text="Hello there", chunk_size=4, prompt_tokens=3))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    first, *middle, filter_only, usage = chunks
    assert (first.choices, first.id, first.model, first.created) == ([], "", "", 0)
    assert "prompt_filter_results" in (first.model_extra or {})
    assert middle[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in middle)
    assert text == "Hello there"
    assert {c.model for c in middle} == {"gpt-4o-2024-11-20"}
    assert filter_only.model == ""
    assert filter_only.choices[0].delta.content is None
    assert filter_only.choices[0].finish_reason is None
    assert "content_filter_offsets" in (filter_only.choices[0].model_extra or {})
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.prompt_tokens == 3


def test_stream_helper_copes_with_azure_chunks(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    specs = [ToolCallSpec("get_weather", {"city": "Paris"})]
    fake_azure.enqueue(Reply(text="Checking.", tool_calls=specs, finish="tool_calls"))
    with client.chat.completions.stream(model="gpt-4o", messages=MSGS, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Checking."
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_calls_non_stream_and_follow_up(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.enqueue(
        Reply(
            text="", tool_calls=[ToolCallSpec("get_weather", {"city": "Oslo"})], finish="tool_calls"
        )
    )
    done = client.chat.completions.create(model="gpt-4o", messages=MSGS, tools=TOOLS)
    message = done.choices[0].message
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Oslo"},
    )
    follow = [*MSGS, message.model_dump(exclude_none=True)]
    follow.append({"role": "tool", "tool_call_id": call.id, "content": "12C"})
    assert client.chat.completions.create(model="gpt-4o", messages=follow, tools=TOOLS).choices


def test_azure_deployment_in_the_client_routes_every_call(fake_azure: FakeAzureOpenAI) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=fake_azure.url,
        azure_deployment="gpt-4.1",
        api_key=KEY,
        api_version=VERSION,
        max_retries=0,
    ) as c:
        done = c.chat.completions.create(model="ignored-by-azure", messages=MSGS)
        models = [m.id for m in c.models.list()]
    assert done.model == "gpt-4.1-2025-04-14"
    assert fake_azure.requests[0].path == "/openai/deployments/gpt-4.1/chat/completions"
    assert fake_azure.requests[1].path == "/openai/models"  # listing leaves the deployment
    assert "gpt-4o-2024-11-20" in models


# ----------------------------------------------------------------------------------- auth
def test_entra_token_and_token_provider(fake_azure: FakeAzureOpenAI) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return TOKEN

    with openai.AzureOpenAI(
        azure_endpoint=fake_azure.url, azure_ad_token=TOKEN, api_version=VERSION, max_retries=0
    ) as c:
        assert c.chat.completions.create(model="gpt-4o", messages=MSGS).choices
    assert fake_azure.last_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in fake_azure.last_request.headers
    with openai.AzureOpenAI(
        azure_endpoint=fake_azure.url,
        azure_ad_token_provider=provider,
        api_version=VERSION,
        max_retries=0,
    ) as c:
        c.chat.completions.create(model="gpt-4o", messages=MSGS)
        c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(calls) == 2  # called before every request


def test_wrong_credentials_are_401_with_gateway_bodies(fake_azure: FakeAzureOpenAI) -> None:
    wrong = "wrong-azure-key-0000000000"
    with (
        openai.AzureOpenAI(
            azure_endpoint=fake_azure.url, api_key=wrong, api_version=VERSION, max_retries=0
        ) as c,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert (info.value.code, info.value.type) == ("401", None)
    assert info.value.message.endswith(DENIED_KEY)
    assert wrong not in info.value.response.text
    with (
        openai.AzureOpenAI(
            azure_endpoint=fake_azure.url,
            azure_ad_token="expired",
            api_version=VERSION,
            max_retries=0,
        ) as c,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert info.value.message.endswith(DENIED_TOKEN)


# ---------------------------------------------------------------------------------- routes
def test_missing_or_bad_api_version_is_404_resource_not_found(fake_azure: FakeAzureOpenAI) -> None:
    url = fake_azure.url + "/openai/deployments/gpt-4o/chat/completions"
    payload = {"messages": MSGS}
    for query in ({}, {"api-version": "latest"}):
        resp = httpx.post(url, params=query, json=payload, headers={"api-key": KEY})
        assert resp.status_code == 404
        assert resp.json() == {"error": {"code": "404", "message": "Resource not found"}}
    ok = httpx.post(
        url, params={"api-version": "2025-04-01-preview"}, json=payload, headers={"api-key": KEY}
    )
    assert ok.status_code == 200  # "model" may be left out on the deployment route


def test_unknown_deployment_is_deployment_not_found(client: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-99", messages=MSGS)
    assert info.value.code == "DeploymentNotFound"
    assert "does not exist" in info.value.message


def test_v1_surface_with_the_plain_client(fake_azure: FakeAzureOpenAI) -> None:
    with openai.OpenAI(base_url=fake_azure.url + "/openai/v1/", api_key=KEY, max_retries=0) as c:
        done = c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="no-such-deployment", messages=MSGS)
        assert [m.id for m in c.models.list()]
    assert done.model == "gpt-4o-mini-2024-07-18"
    sent = fake_azure.requests[0]
    assert (sent.path, sent.query) == ("/openai/v1/chat/completions", {})
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # the key as a bearer token
    # vendors.md §2: AzureOpenAI on the v1 URL wrongly inserts /deployments/{model}
    with (
        openai.AzureOpenAI(
            base_url=fake_azure.url + "/openai/v1/",
            api_key=KEY,
            api_version="preview",
            max_retries=0,
        ) as c,
        pytest.raises(openai.NotFoundError) as info,
    ):
        c.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert fake_azure.last_request.path == "/openai/v1/deployments/gpt-4o/chat/completions"
    assert info.value.code == "404"


def test_models_listing_needs_the_api_version(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == sorted(set(fake_azure.deployments.values()))
    assert fake_azure.last_request.query == {"api-version": VERSION}
    assert httpx.get(fake_azure.url + "/openai/models", headers={"api-key": KEY}).status_code == 404


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kind", "exc", "status", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "429"),
        ("quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("server", openai.InternalServerError, 500, "InternalServerError"),
        ("overloaded", openai.InternalServerError, 503, "ServiceUnavailable"),
        ("auth", openai.AuthenticationError, 401, "401"),
        ("bad_request", openai.BadRequestError, 400, None),
        ("not_found", openai.NotFoundError, 404, "DeploymentNotFound"),
        ("context_length", openai.BadRequestError, 400, "context_length_exceeded"),
        ("timeout", openai.APIStatusError, 408, "Timeout"),
        ("conflict", openai.ConflictError, 409, "409"),
    ],
)
def test_fail_kinds_raise_sdk_classes(
    fake_azure: FakeAzureOpenAI,
    client: openai.AzureOpenAI,
    kind: str,
    exc: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    fake_azure.enqueue(Fail(kind))
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert type(info.value) is exc
    assert (info.value.status_code, info.value.code) == (status, code)
    assert info.value.response.headers["apim-request-id"]
    assert KEY not in str(info.value)


def test_rate_limit_carries_retry_headers_and_names_the_version(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.enqueue(Fail("rate_limit", retry_after="6", retry_after_ms="6000"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    headers = info.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("6", "6000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert f"API version {VERSION}" in info.value.message
    assert "Please retry after 6 seconds" in info.value.message


def test_filtered_prompt_is_a_content_filter_400(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.filter_prompt_containing = "forbidden"
    fake_azure.enqueue(Reply(text="never"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "say something forbidden"}]
        )
    assert (info.value.code, info.value.param) == ("content_filter", "prompt")
    body = info.value.body
    assert isinstance(body, dict)
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["violence"]["filtered"] is True
    assert fake_azure.pending == 1  # a refused request consumes no scripted step
    assert client.chat.completions.create(model="gpt-4o", messages=MSGS).choices


def test_body_validation_is_openais(client: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSGS, extra_body={"bogus": 1})
    assert "Unrecognized request argument supplied: bogus" in info.value.message


def test_mid_stream_error_and_broken_stream(
    fake_azure: FakeAzureOpenAI, client: openai.AzureOpenAI
) -> None:
    fake_azure.enqueue(
        MidStreamError(text="abcdefgh", after_chunks=1, kind="server"),
        BreakStream(text="abcdefgh", after_chunks=1),
    )
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True):
            got.extend(ch.delta.content or "" for ch in c.choices)
    assert not isinstance(info.value, openai.APIStatusError)
    assert "".join(got) == "abcd"
    assert "Backend returned unexpected response" in info.value.message
    with pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))


async def test_async_client_with_async_token_provider(fake_azure: FakeAzureOpenAI) -> None:
    async def provider() -> str:
        return TOKEN

    fake_azure.enqueue(Reply(text="async ok"))
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_azure.url,
        azure_ad_token_provider=provider,
        api_version=VERSION,
        max_retries=0,
    ) as c:
        stream = await c.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "async ok"
    assert fake_azure.last_request.headers["authorization"] == f"Bearer {TOKEN}"
