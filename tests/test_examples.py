"""The scripts in examples/ run as users run them (subprocesses), against the fake vendors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmdispatcher import Config
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VENDOR_ENV = ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA", "LLAMACPP")


def run(script: str, *args: str, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(VENDOR_ENV)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def openai_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": FAKE_OPENAI_KEY, "OPENAI_BASE_URL": fake.url + "/v1"}


def test_quickstart_async(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Paris is the capital of France."), Reply(text="Paris."))
    out = run("quickstart_async.py", "gpt-4o-mini", env=openai_env(fake_openai))
    assert "openai/gpt-4o-mini: Paris is the capital of France." in out
    assert "tokens: 21" in out
    assert out.rstrip().endswith("Paris.")


def test_quickstart_sync(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="Red, yellow, blue."), Reply(text="Red and blue."))
    out = run("quickstart_sync.py", "gpt-4o-mini", env=openai_env(fake_openai))
    assert out.splitlines() == ["Red, yellow, blue.", "Red and blue.", "requests: 2, ok: 2"]


def test_fallback_and_retries(fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> None:
    fake_openai.enqueue(Fail("server"), *[Fail("overloaded")] * 2)
    env = {
        "PRIMARY_URL": fake_openai.url + "/v1",
        "PRIMARY_KEY": FAKE_OPENAI_KEY,
        "BACKUP_URL": fake_openai_b.url + "/v1",
        "BACKUP_KEY": FAKE_OPENAI_KEY,
    }
    out = run("fallback_and_retries.py", env=env)
    assert out.splitlines() == [
        "gpt-4o: answered by backup after primary:VendorServerError -> "
        "primary:VendorServerError -> primary:VendorServerError -> backup:ok",
        "gpt-4o-mini: answered by backup after backup:ok",
        "retries: 2, fallbacks: 1",
    ]


def test_example_config_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example-123456")
    config = Config.from_file(EXAMPLES / "llmdispatcher.yaml")
    assert [v.name for v in config.vendors] == ["openai", "backup"]
    assert config.fallback_vendors == ("backup",)
    assert config.routing_rules[0].vendor == "backup"
