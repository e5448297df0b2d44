"""Fixtures of the gateway tests: one gateway process per session in front of the session's
fake vendors (each test resets the fakes it uses), and in-process apps for the fast tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import is_setting
from tests.fakes.anthropic_fake import FakeAnthropic
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import GatewayProcess, gateway_yaml


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def gateway_config(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai_server: FakeOpenAI,
    fake_openai_b_server: FakeOpenAI,
    fake_anthropic_server: FakeAnthropic,
) -> Path:
    folder = tmp_path_factory.mktemp("gateway")
    path = folder / "llmdispatcher.yaml"
    fakes = (fake_openai_server, fake_openai_b_server, fake_anthropic_server)
    path.write_text(gateway_yaml(*fakes, key_store=folder / "keys.db"))
    return path


@pytest.fixture(scope="session")
def gateway_process(gateway_config: Path) -> Iterator[GatewayProcess]:
    server = GatewayProcess("--config", gateway_config)
    server.wait_listening()
    yield server
    server.stop()


@pytest.fixture
def gateway(
    gateway_process: GatewayProcess,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> str:
    """The session gateway's base URL, with every fake behind it reset."""
    return gateway_process.url
