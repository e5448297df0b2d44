"""Pytest fixtures for the fake Anthropic server (one per session, reset for each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .anthropic_fake import FakeAnthropic

__all__ = ["FAKE_ANTHROPIC_KEY", "fake_anthropic", "fake_anthropic_server"]

FAKE_ANTHROPIC_KEY = "sk-ant-test-fake-0123456789"


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    """The session's FakeAnthropic (not reset between tests: use ``fake_anthropic``)."""
    with FakeAnthropic(api_key=FAKE_ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """A started FakeAnthropic with an empty queue and log; key ``FAKE_ANTHROPIC_KEY``."""
    fake_anthropic_server.reset()
    yield fake_anthropic_server
    fake_anthropic_server.reset()
