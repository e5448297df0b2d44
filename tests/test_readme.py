"""README.md's examples are true: every Python block runs, the YAML block loads, and every
CLI command it shows exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmdispatcher import Config
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", README, re.S)
YAML = re.findall(r"```yaml\n(.*?)```", README, re.S)
VENDOR_ENV = ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA", "LLMDISPATCHER", "AWS")


def test_the_readme_has_examples() -> None:
    assert len(PYTHON) >= 3
    assert len(YAML) >= 1


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_blocks_run(code: str, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(VENDOR_ENV) or k == "LLMDISPATCHER_HOME"  # the test data directory
    }
    env |= {"OPENAI_API_KEY": FAKE_OPENAI_KEY, "OPENAI_BASE_URL": fake_openai.url + "/v1"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if "send" in code:
        assert fake_openai.requests  # it really went through the (fake) vendor


def test_yaml_block_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-readme-0123456789")
    path = tmp_path / "readme.yaml"
    path.write_text(YAML[0])
    config = Config.from_file(path)
    assert [g.name for g in config.model_groups] == ["chat-default", "chat-local"]
    assert [v.name for v in config.vendors] == ["openai", "anthropic", "ollama"]
    for i, block in enumerate(YAML[1:], 1):  # every other YAML example loads too
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(block)
        assert Config.from_file(path).vendors


def test_every_cli_command_shown_exists() -> None:
    from click.testing import CliRunner

    from llmdispatcher.cli.main import main

    shown = set(re.findall(r"^llmdispatcher ([a-z-]+)", README, re.M))
    shown |= set(re.findall(r"\| llmdispatcher ([a-z-]+)", README))
    assert {"chat", "vendors", "test-vendor", "route", "config"} <= shown
    for command in shown:
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
