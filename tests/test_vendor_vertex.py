"""VertexVendor beyond the shared behaviour suite: Google tokens (fetched once, refreshed before
they expire, Application Default Credentials from a file), URLs per location, the Claude body's
``anthropic_version``, listing and health, all against the strict fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmdispatcher import Request
from llmdispatcher.errors import AuthenticationError, ConfigError, UnsupportedRequest
from llmdispatcher.vendors import VertexVendor
from llmdispatcher.vendors.vertex import root_url
from tests.fakes.script import Reply
from tests.fakes.vertex_fake import (
    FAKE_CLIENT_ID,
    FakeVertex,
    adapter_for,
    credentials_for,
    write_service_account,
)

GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4-5@20250929"
VERTEX_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "CLOUD_ML_REGION",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(autouse=True)
def no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VERTEX_ENV:
        monkeypatch.delenv(name, raising=False)


def ask(model: str = GEMINI, **kw: object) -> Request:
    return Request(model=model, messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


async def test_one_token_serves_many_requests(fake_vertex: FakeVertex) -> None:
    vendor = adapter_for(fake_vertex)
    fake_vertex.enqueue(*(Reply(text=str(i)) for i in range(4)))
    for model in (GEMINI, CLAUDE, GEMINI):
        await vendor.send(ask(model))
    streamed = [c.delta async for c in vendor.stream(ask(CLAUDE))]
    assert "".join(streamed) == "3"
    assert fake_vertex.token_requests == 1
    tokens = {r.headers["authorization"] for r in fake_vertex.requests}
    assert len(tokens) == 1
    await vendor.aclose()


async def test_a_token_near_its_expiry_is_refreshed_first(fake_vertex: FakeVertex) -> None:
    # 200 s of life is inside google-auth's refresh margin (225 s): every token is stale at
    # once, so each request must fetch a fresh one rather than send one about to expire.
    fake_vertex.token_lifetime = 200
    vendor = adapter_for(fake_vertex)
    fake_vertex.enqueue(Reply(text="a"), Reply(text="b"))
    await vendor.send(ask())
    await vendor.send(ask())
    assert fake_vertex.token_requests == 2
    first, second = (r.headers["authorization"] for r in fake_vertex.requests)
    assert first != second
    await vendor.aclose()


async def test_application_default_credentials_from_a_file(
    fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    adc = write_service_account(fake_vertex, tmp_path / "service-account.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", fake_vertex.location)  # project: from the file
    fake_vertex.enqueue(Reply(text="via ADC"))
    vendor = VertexVendor(base_url=fake_vertex.url)
    assert (await vendor.send(ask(CLAUDE))).content == "via ADC"
    assert fake_vertex.token_requests == 1
    assert "x-goog-user-project" not in fake_vertex.last_request.headers
    await vendor.aclose()


async def test_a_quota_project_is_named_in_every_request(fake_vertex: FakeVertex) -> None:
    credentials = credentials_for(fake_vertex).with_quota_project("billing-project")
    vendor = adapter_for(fake_vertex, credentials=credentials)
    fake_vertex.enqueue(Reply(text="billed elsewhere"))
    await vendor.send(ask())
    assert fake_vertex.last_request.headers["x-goog-user-project"] == "billing-project"
    await vendor.aclose()


async def test_a_refused_refresh_is_an_authentication_error(fake_vertex: FakeVertex) -> None:
    from google.oauth2.credentials import Credentials

    bad = Credentials(
        token=None,
        refresh_token="1//revoked",
        client_id=FAKE_CLIENT_ID,
        client_secret="fake-client-secret",
        token_uri=f"{fake_vertex.url}/token",
    )
    vendor = adapter_for(fake_vertex, credentials=bad)
    with pytest.raises(AuthenticationError, match="invalid_grant"):
        await vendor.send(ask())
    health = await vendor.health()
    assert not health.ok
    assert fake_vertex.requests == []
    await vendor.aclose()


async def test_claude_body_and_anthropic_version(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="one"), Reply(text="two"))
    vendor = adapter_for(fake_vertex)
    await vendor.send(ask(CLAUDE, temperature=0.3))
    sent = fake_vertex.last_request
    assert sent.path.endswith(f"/publishers/anthropic/models/{CLAUDE}:rawPredict")
    assert sent.json["anthropic_version"] == "2026-10-21"
    assert "temperature" not in sent.json  # that version has no sampling parameters
    assert "model" not in sent.json
    older = adapter_for(fake_vertex, anthropic_version="vertex-2023-10-16")
    await older.send(ask(CLAUDE, temperature=0.3))
    sent = fake_vertex.last_request
    assert (sent.json["anthropic_version"], sent.json["temperature"]) == ("vertex-2023-10-16", 0.3)
    await vendor.aclose()
    await older.aclose()


async def test_gemini_path_and_version(fake_vertex: FakeVertex) -> None:
    fake_vertex.enqueue(Reply(text="g"))
    vendor = adapter_for(fake_vertex)
    await vendor.send(ask(GEMINI, max_tokens=20))
    sent = fake_vertex.last_request
    assert sent.path == (
        f"/v1beta1/projects/{fake_vertex.project}/locations/{fake_vertex.location}"
        f"/publishers/google/models/{GEMINI}:generateContent"
    )
    assert sent.json["generationConfig"] == {"maxOutputTokens": 20}
    assert "x-goog-api-key" not in sent.headers
    await vendor.aclose()


async def test_list_models_and_health(fake_vertex: FakeVertex) -> None:
    vendor = adapter_for(fake_vertex)
    assert await vendor.list_models() == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
    ]
    assert (await vendor.health()).ok
    await vendor.aclose()


def test_model_names_that_would_leave_their_path_are_refused(fake_vertex: FakeVertex) -> None:
    vendor = adapter_for(fake_vertex)
    for model in ("gemini-2.5-flash/../../x", "claude-x?y"):
        with pytest.raises(UnsupportedRequest, match="model"):
            vendor.check(ask(model))
    vendor.check(ask(CLAUDE))


async def test_a_missing_project_says_how_to_give_one(fake_vertex: FakeVertex) -> None:
    vendor = VertexVendor(
        location=fake_vertex.location,
        base_url=fake_vertex.url,
        credentials=credentials_for(fake_vertex),
    )
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        await vendor.send(ask())
    await vendor.aclose()


@pytest.mark.parametrize(
    ("location", "root"),
    [
        ("global", "https://aiplatform.googleapis.com"),
        ("us", "https://aiplatform.us.rep.googleapis.com"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
    ],
)
def test_root_urls_per_location(location: str, root: str) -> None:
    assert root_url(location) == root
    assert VertexVendor(project="p", location=location).base_url == root


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert VertexVendor.from_env() is None
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    assert VertexVendor.from_env() is None  # google-genai uses Vertex only when asked to
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("CLOUD_ML_REGION", "us-east5")
    found = VertexVendor.from_env()
    assert found is not None
    assert (found.project, found.location, found.pricing_name) == (
        "proj",
        "us-east5",
        "vertex/us-east5",
    )
    assert found.secrets() == ()  # no token before the first request
