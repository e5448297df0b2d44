"""Pytest fixtures for the fake cloud vendors, Bedrock and Vertex AI (one server per session,
reset for each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .bedrock_fake import FakeBedrock
from .vertex_fake import FakeVertex

__all__ = ["fake_bedrock", "fake_bedrock_server", "fake_vertex", "fake_vertex_server"]


@pytest.fixture(scope="session")
def fake_bedrock_server() -> Iterator[FakeBedrock]:
    """The session's FakeBedrock (not reset between tests: use ``fake_bedrock``)."""
    with FakeBedrock() as fake:
        yield fake


@pytest.fixture
def fake_bedrock(fake_bedrock_server: FakeBedrock) -> Iterator[FakeBedrock]:
    """A started FakeBedrock with an empty queue and log."""
    fake_bedrock_server.reset()
    yield fake_bedrock_server
    fake_bedrock_server.reset()


@pytest.fixture(scope="session")
def fake_vertex_server() -> Iterator[FakeVertex]:
    """The session's FakeVertex (not reset between tests: use ``fake_vertex``)."""
    with FakeVertex() as fake:
        yield fake


@pytest.fixture
def fake_vertex(fake_vertex_server: FakeVertex) -> Iterator[FakeVertex]:
    """A started FakeVertex with an empty queue, log and token store."""
    fake_vertex_server.reset()
    yield fake_vertex_server
    fake_vertex_server.reset()
