"""``llmdispatcher replay`` on a ledger recorded against fake vendors: the table, --json,
--html, and usage errors naming the option."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, Request
from tests.cli import CliInvoker
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI


def config_yaml(path: Path, a: FakeOpenAI, b: FakeOpenAI, strategy: str, ledger: Path) -> Path:
    vendors = {
        name: {"type": "openai", "api_key": FAKE_OPENAI_KEY, "base_url": f"{fake.url}/v1"}
        for name, fake in (("a", a), ("b", b))
    }
    group = {
        "name": "chat",
        "strategy": strategy,
        "deployments": [
            {"vendor": "a", "model": "gpt-4o", "input_price": 2.5, "output_price": 10},
            {"vendor": "b", "model": "gpt-4o-mini", "input_price": 0.15, "output_price": 0.6},
        ],
    }
    path.write_text(json.dumps({"vendors": vendors, "model_groups": [group],
                                "ledger_url": f"sqlite:///{ledger}"}))  # fmt: skip
    return path


@pytest.fixture
def configs(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> tuple[Path, Path]:
    ledger = tmp_path / "ledger.db"
    current = config_yaml(tmp_path / "current.yaml", fake_openai, fake_openai_b, "weighted", ledger)
    proposal = config_yaml(tmp_path / "proposal.yaml", fake_openai, fake_openai_b, "cost", ledger)

    async def record() -> None:
        async with Dispatcher(Config.from_file(current)) as d:
            for n in range(40):
                await d.send(Request(model="chat", messages=[{"role": "user", "content": f"q{n}"}]))

    asyncio.run(record())
    return current, proposal


def test_replay_prints_the_comparison(cli: CliInvoker, configs: tuple[Path, Path],
                                      tmp_path: Path) -> None:  # fmt: skip
    current, proposal = configs
    html = tmp_path / "report.html"
    result = cli("replay", "--config", proposal, "--baseline", current, "--since", "1h",
                 "--html", html)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "baseline" in result.stdout
    assert "proposal" in result.stdout
    assert "vendor b" in result.stdout
    assert "40 requests replayed" in result.stdout
    assert html.read_text().startswith("<!doctype html>")


def test_replay_json_against_what_was_recorded(cli: CliInvoker, configs: tuple[Path, Path]) -> None:
    _, proposal = configs
    result = cli("replay", "-c", proposal, "--since", "1h", "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["baseline_label"] == "recorded"
    assert report["baseline"]["requests"] == report["proposal"]["requests"] == 40
    assert report["proposal"]["vendors"] == {"b": 40}  # cost puts the cheaper one first
    assert report["proposal"]["cost_usd"] < report["baseline"]["cost_usd"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "1h", "--from", "2026-12-01"], "--since and --from/--to"),
        (["--from", "2026-12-02", "--to", "2026-12-01"], "--to must come after --from"),
        (["--from", "yesterday"], "--from 'yesterday': write a date"),
        (["--since", "1h", "--sample", "0"], "--sample"),
    ],
)
def test_usage_errors_name_the_option(
    cli: CliInvoker, configs: tuple[Path, Path], args: list[str], message: str
) -> None:
    _, proposal = configs
    result = cli("replay", "--config", proposal, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_an_empty_window_says_so(cli: CliInvoker, configs: tuple[Path, Path]) -> None:
    _, proposal = configs
    result = cli("replay", "--config", proposal, "--from", "2020-01-01", "--to", "2020-01-02")
    assert result.exit_code == 2
    assert "no recorded request in that window" in result.output
