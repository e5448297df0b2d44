"""Pytest fixtures for the fake vendor servers.

Register once in tests/conftest.py with ``pytest_plugins = ["tests.fakes.fixtures"]`` (or
``from tests.fakes.fixtures import *``). One server per session; each test gets it ``reset()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_fake import FakeOpenAI

__all__ = [
    "FAKE_OPENAI_KEY",
    "fake_openai",
    "fake_openai_b",
    "fake_openai_b_server",
    "fake_openai_server",
]

FAKE_OPENAI_KEY = "sk-test-fake-0123456789"


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """The session's FakeOpenAI (not reset between tests: use ``fake_openai``)."""
    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI with an empty queue and log; key ``FAKE_OPENAI_KEY``."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture(scope="session")
def fake_openai_b_server() -> Iterator[FakeOpenAI]:
    """A second, independent FakeOpenAI (e.g. a fallback vendor), same key."""
    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def fake_openai_b(fake_openai_b_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai_b_server.reset()
    yield fake_openai_b_server
    fake_openai_b_server.reset()
