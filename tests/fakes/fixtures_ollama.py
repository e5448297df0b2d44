"""Pytest fixtures for the fake Ollama server (tests/fakes/ollama_fake.py).

One server per session; each test gets it ``reset()``. The server is keyed (``FAKE_OLLAMA_KEY``,
as Ollama cloud or an authenticating proxy): set ``fake.api_key = None`` inside a test for a
keyless local server (``reset()`` restores the key).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .ollama_fake import FakeOllama

__all__ = ["FAKE_OLLAMA_KEY", "fake_ollama", "fake_ollama_server"]

FAKE_OLLAMA_KEY = "ollama-test-fake-0123456789"


@pytest.fixture(scope="session")
def fake_ollama_server() -> Iterator[FakeOllama]:
    """The session's FakeOllama (not reset between tests: use ``fake_ollama``)."""
    with FakeOllama(api_key=FAKE_OLLAMA_KEY) as fake:
        yield fake


@pytest.fixture
def fake_ollama(fake_ollama_server: FakeOllama) -> Iterator[FakeOllama]:
    """A started FakeOllama with an empty queue and log, default models, key ``FAKE_OLLAMA_KEY``."""
    fake_ollama_server.reset()
    yield fake_ollama_server
    fake_ollama_server.reset()
