"""``stats``: what the ledger recorded of real chats, as tables or JSON; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import CliInvoker, one_line, write_config
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, Reply


def test_stats_after_chats(cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_config(tmp_path / "c.yaml", {"main": fake_openai}, f"ledger_url: '{ledger}'")
    fake_openai.enqueue(
        Reply(prompt_tokens=100, completion_tokens=20),
        Reply(prompt_tokens=50, completion_tokens=10),
        Fail("auth"),
    )
    for _ in range(3):
        cli("-c", config, "chat", "hi", "-m", "gpt-4o-mini", "--no-stream")
    result = cli("-c", config, "stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "3 requests, 2 ok, 1 failed, 0 retries, 0 fallbacks; "
        "150 prompt + 30 completion tokens; $0.0000"
    )
    assert lines[2].split()[:5] == ["VENDOR", "REQUESTS", "OK", "PROMPT", "COMPLETION"]
    assert lines[3].split()[:5] == ["main", "3", "66.7%", "150", "30"]
    data = json.loads(cli("--config", str(config), "stats", "--json", "--since", "1h").stdout)
    assert data["totals"]["requests"] == 3
    assert data["by_model"]["gpt-4o-mini"]["successes"] == 2
    assert float(data["totals"]["cost_usd"]) > 0


def test_stats_on_a_fresh_machine_prints_empty_json(
    cli: CliInvoker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMDISPATCHER_HOME", str(tmp_path / "fresh"))
    result = cli("stats", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["requests"] == 0
    assert data["by_vendor"] == {}


def test_chat_then_stats_use_the_data_directory(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMDISPATCHER_HOME", str(home))
    config = write_config(tmp_path / "c.yaml", {"main": fake_openai})
    fake_openai.enqueue(Reply(prompt_tokens=7, completion_tokens=3))
    assert cli("-c", config, "chat", "hi", "-m", "gpt-4o-mini", "--no-stream").exit_code == 0
    assert (home / "llmdispatcher.db").is_file()
    data = json.loads(cli("stats", "--json").stdout)
    assert data["totals"]["requests"] == 1
    assert data["totals"]["prompt_tokens"] == 7


def test_ledger_none_records_nothing(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLMDISPATCHER_HOME", str(home))
    config = write_config(tmp_path / "c.yaml", {"main": fake_openai}, "ledger_url: none")
    fake_openai.enqueue(Reply())
    assert cli("-c", config, "chat", "hi", "-m", "gpt-4o-mini", "--no-stream").exit_code == 0
    assert not home.exists()
    monkeypatch.setenv("LLMDISPATCHER_NO_LEDGER", "1")
    fake_openai.enqueue(Reply())
    config = write_config(tmp_path / "d.yaml", {"main": fake_openai})
    assert cli("-c", config, "chat", "hi", "-m", "gpt-4o-mini", "--no-stream").exit_code == 0
    assert not home.exists()
    result = cli("stats")
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith("error: recording is off")


def test_stats_needs_a_duration(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("stats", "--ledger", f"sqlite:///{tmp_path / 'l.db'}", "--since", "soon")
    assert result.exit_code == 2
    assert "--since 'soon': write a duration like 30m, 1h or 7d" in result.stderr
