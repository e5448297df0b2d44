"""Pytest fixtures for the OpenAI-family fakes: Azure OpenAI and llama.cpp's llama-server.

One server per session; each test gets it ``reset()`` (queue, log, key and toggles restored).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .azure_fake import FakeAzureOpenAI
from .llamacpp_fake import FakeLlamaServer

__all__ = [
    "FAKE_AZURE_AD_TOKEN",
    "FAKE_AZURE_KEY",
    "FAKE_LLAMACPP_KEY",
    "fake_azure",
    "fake_azure_server",
    "fake_llamacpp",
    "fake_llamacpp_server",
]

FAKE_AZURE_KEY = "azure-test-key-0123456789abcdef"
FAKE_AZURE_AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-entra-token"
FAKE_LLAMACPP_KEY = "llama-test-key-0123456789"


@pytest.fixture(scope="session")
def fake_azure_server() -> Iterator[FakeAzureOpenAI]:
    """The session's FakeAzureOpenAI (not reset between tests: use ``fake_azure``)."""
    with FakeAzureOpenAI(api_key=FAKE_AZURE_KEY, ad_token=FAKE_AZURE_AD_TOKEN) as fake:
        yield fake


@pytest.fixture
def fake_azure(fake_azure_server: FakeAzureOpenAI) -> Iterator[FakeAzureOpenAI]:
    """A started FakeAzureOpenAI: key ``FAKE_AZURE_KEY``, Entra token ``FAKE_AZURE_AD_TOKEN``,
    deployments ``DEFAULT_DEPLOYMENTS``."""
    fake_azure_server.reset()
    yield fake_azure_server
    fake_azure_server.reset()


@pytest.fixture(scope="session")
def fake_llamacpp_server() -> Iterator[FakeLlamaServer]:
    """The session's FakeLlamaServer (not reset between tests: use ``fake_llamacpp``)."""
    with FakeLlamaServer(api_key=FAKE_LLAMACPP_KEY) as fake:
        yield fake


@pytest.fixture
def fake_llamacpp(fake_llamacpp_server: FakeLlamaServer) -> Iterator[FakeLlamaServer]:
    """A started FakeLlamaServer started with ``--api-key FAKE_LLAMACPP_KEY`` (set
    ``fake.api_key = None`` for a server without auth; reset restores it)."""
    fake_llamacpp_server.reset()
    yield fake_llamacpp_server
    fake_llamacpp_server.reset()
