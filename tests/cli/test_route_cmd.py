"""``route explain``: the vendor a request would go to, and why; nothing is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import CliInvoker, one_line, write_config
from tests.fakes.openai_fake import FakeOpenAI


@pytest.fixture
def routed(tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> Path:
    return write_config(
        tmp_path / "routed.yaml",
        {"main": fake_openai, "cheap": fake_openai_b},
        "default_vendor: main",
        "fallback_vendors: [cheap]",
        "routing_rules:",
        "  - {vendor: cheap, priority: 1, name: small, "
        "condition: {model_pattern: 'gpt-4o-mini*', max_tokens: 500}}",
    )


def explain(cli: CliInvoker, config: Path, *args: str) -> dict[str, str]:
    result = cli("-c", config, "route", "explain", "a prompt", *args)
    assert result.exit_code == 0, result.output
    return {line[:10].strip(): line[10:] for line in result.stdout.splitlines()}


def test_a_matching_rule_wins(
    cli: CliInvoker, routed: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--max-tokens", "100")
    assert shown == {
        "model": "gpt-4o-mini",
        "vendor": "cheap",
        "because": "routing_rules[0] 'small' (priority 1) matched: model matches "
        "'gpt-4o-mini*', max_tokens <= 500",
        "fallbacks": "none",
    }
    assert fake_openai.requests == []
    assert fake_openai_b.requests == []


def test_no_rule_falls_to_the_default_vendor_then_fallbacks(cli: CliInvoker, routed: Path) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--max-tokens", "1000")
    assert shown["vendor"] == "main"
    assert shown["because"] == "no routing rule matched; default_vendor"
    assert shown["fallbacks"] == "cheap"


def test_vendor_override(cli: CliInvoker, routed: Path) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--vendor", "main")
    assert shown["vendor"] == "main"
    assert shown["because"] == "--vendor chose it (no routing, no fallback)"
    assert shown["fallbacks"] == "none"


def test_json(cli: CliInvoker, routed: Path) -> None:
    result = cli("-c", routed, "route", "explain", "-m", "gpt-4o-mini", "--json")
    data = json.loads(result.stdout)
    assert data["vendors"] == ["main", "cheap"]  # no max_tokens: the rule does not match
    assert (data["reason"], data["rule"]) == ("default_vendor", None)
    result = cli(
        "-c", routed, "route", "explain", "-m", "gpt-4o-mini", "--max-tokens", "9", "--json"
    )
    data = json.loads(result.stdout)
    assert data["vendors"] == ["cheap"]
    assert data["rule"]["name"] == "small"
    assert data["rule"]["condition"]["max_tokens"] == 500


def test_unknown_vendor(cli: CliInvoker, routed: Path) -> None:
    result = cli("-c", routed, "route", "explain", "--vendor", "other")
    assert result.exit_code == 2
    assert "unknown vendor 'other': the configured vendors are main, cheap" in one_line(
        result.stderr
    )


def test_a_rule_naming_a_missing_vendor_is_a_config_error(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = write_config(
        tmp_path / "bad.yaml",
        {"main": fake_openai},
        "routing_rules: [{vendor: ghost, condition: {model_pattern: 'gpt-*'}}]",
    )
    result = cli("-c", config, "route", "explain", "-m", "gpt-4o")
    assert result.exit_code == 2
    assert "vendor 'ghost'" in one_line(result.stderr)
