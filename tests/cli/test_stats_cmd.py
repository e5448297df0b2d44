"""``stats``: what the ledger recorded of real chats, as tables or JSON; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_stats_needs_a_ledger_and_a_duration(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("stats")
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith("error: no ledger to read: pass --ledger")
    result = cli("stats", "--ledger", f"sqlite:///{tmp_path / 'l.db'}", "--since", "soon")
    assert result.exit_code == 2
    assert "--since 'soon': write a duration like 30m, 1h or 7d" in result.stderr
