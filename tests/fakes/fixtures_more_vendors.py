"""Pytest fixtures for the fakes of Cohere, Mistral and the custom-HTTP formats (TGI's native
API, Ollama's ``/api/generate``). One server per session; each test gets it ``reset()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cohere_fake import FakeCohere
from .mistral_fake import FakeMistral
from .ollama_generate_fake import FakeOllamaGenerate
from .server import FakeServer
from .tgi_fake import FakeTGI

__all__ = [
    "FAKE_COHERE_KEY",
    "FAKE_MISTRAL_KEY",
    "FAKE_OLLAMA_GENERATE_KEY",
    "FAKE_TGI_KEY",
    "fake_cohere",
    "fake_cohere_server",
    "fake_mistral",
    "fake_mistral_server",
    "fake_ollama_generate",
    "fake_ollama_generate_server",
    "fake_tgi",
    "fake_tgi_server",
]

FAKE_COHERE_KEY = "co-test-fake-0123456789"
FAKE_MISTRAL_KEY = "mistral-test-fake-0123456789"
FAKE_TGI_KEY = "hf_test_fake_0123456789"
FAKE_OLLAMA_GENERATE_KEY = "ollama-gen-test-fake-0123456789"


def _fresh(server: FakeServer) -> Iterator[FakeServer]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="session")
def fake_cohere_server() -> Iterator[FakeCohere]:
    with FakeCohere(api_key=FAKE_COHERE_KEY) as fake:
        yield fake


@pytest.fixture
def fake_cohere(fake_cohere_server: FakeCohere) -> Iterator[FakeServer]:
    """A started FakeCohere with an empty queue and log; key ``FAKE_COHERE_KEY``."""
    yield from _fresh(fake_cohere_server)


@pytest.fixture(scope="session")
def fake_mistral_server() -> Iterator[FakeMistral]:
    with FakeMistral(api_key=FAKE_MISTRAL_KEY) as fake:
        yield fake


@pytest.fixture
def fake_mistral(fake_mistral_server: FakeMistral) -> Iterator[FakeServer]:
    """A started FakeMistral with an empty queue and log; key ``FAKE_MISTRAL_KEY``."""
    yield from _fresh(fake_mistral_server)


@pytest.fixture(scope="session")
def fake_tgi_server() -> Iterator[FakeTGI]:
    with FakeTGI(api_key=FAKE_TGI_KEY) as fake:
        yield fake


@pytest.fixture
def fake_tgi(fake_tgi_server: FakeTGI) -> Iterator[FakeServer]:
    """A started FakeTGI (started with --api-key ``FAKE_TGI_KEY``), empty queue and log."""
    yield from _fresh(fake_tgi_server)


@pytest.fixture(scope="session")
def fake_ollama_generate_server() -> Iterator[FakeOllamaGenerate]:
    with FakeOllamaGenerate(api_key=FAKE_OLLAMA_GENERATE_KEY) as fake:
        yield fake


@pytest.fixture
def fake_ollama_generate(fake_ollama_generate_server: FakeOllamaGenerate) -> Iterator[FakeServer]:
    """A started FakeOllamaGenerate (keyed), empty queue and log."""
    yield from _fresh(fake_ollama_generate_server)
