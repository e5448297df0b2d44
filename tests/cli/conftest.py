"""Fixtures of the CLI tests: a clean environment, config files naming the fake vendors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import CliInvoker, is_setting, write_config
from tests.fakes.openai_fake import FakeOpenAI


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the config files a test writes decide which vendors exist."""
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)


@pytest.fixture
def cli() -> CliInvoker:
    return CliInvoker()


@pytest.fixture
def config_file(tmp_path: Path, fake_openai: FakeOpenAI) -> Path:
    """One vendor, ``openai``, served by the fake."""
    return write_config(tmp_path / "llmdispatcher.yaml", {"openai": fake_openai})


@pytest.fixture
def two_vendors(tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> Path:
    """``main`` (fake_openai) with ``backup`` (fake_openai_b) as its fallback."""
    return write_config(
        tmp_path / "two.yaml",
        {"main": fake_openai, "backup": fake_openai_b},
        "fallback_vendors: [backup]",
    )
