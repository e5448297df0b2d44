"""Pytest fixtures for the fake Gemini server: one server per session, reset for every test.

Register with ``pytest_plugins = ["tests.fakes.fixtures_gemini"]`` in tests/conftest.py (or
``from tests.fakes.fixtures_gemini import *`` in a test module).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .gemini_fake import FAKE_GEMINI_KEY, FakeGemini

__all__ = [
    "FAKE_GEMINI_KEY",
    "fake_gemini",
    "fake_gemini_b",
    "fake_gemini_b_server",
    "fake_gemini_server",
]


@pytest.fixture(scope="session")
def fake_gemini_server() -> Iterator[FakeGemini]:
    """The session's FakeGemini (not reset between tests: use ``fake_gemini``)."""
    with FakeGemini(api_key=FAKE_GEMINI_KEY) as fake:
        yield fake


@pytest.fixture
def fake_gemini(fake_gemini_server: FakeGemini) -> Iterator[FakeGemini]:
    """A started FakeGemini with an empty queue and log; key ``FAKE_GEMINI_KEY``."""
    fake_gemini_server.reset()
    yield fake_gemini_server
    fake_gemini_server.reset()


@pytest.fixture(scope="session")
def fake_gemini_b_server() -> Iterator[FakeGemini]:
    """A second, independent FakeGemini (e.g. a fallback vendor), same key."""
    with FakeGemini(api_key=FAKE_GEMINI_KEY) as fake:
        yield fake


@pytest.fixture
def fake_gemini_b(fake_gemini_b_server: FakeGemini) -> Iterator[FakeGemini]:
    fake_gemini_b_server.reset()
    yield fake_gemini_b_server
    fake_gemini_b_server.reset()
