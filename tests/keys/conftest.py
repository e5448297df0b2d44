"""A key store URL on each backend: SQLite in a temporary file, and a fresh schema of the real
PostgreSQL on 127.0.0.1 (skipped locally when it is unreachable; required in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.test_ledger import _postgres_schema, postgres_server

__all__ = ["postgres_server"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        yield from _postgres_schema(request.getfixturevalue("postgres_server"))


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    yield from _postgres_schema(postgres_server)
