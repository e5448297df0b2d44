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
    head = result.stdout.splitlines()[:4]  # then one line per candidate and exclusion
    return {line[:10].strip(): line[10:] for line in head}


def test_a_matching_rule_wins(
    cli: CliInvoker, routed: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--max-tokens", "100")
    assert shown == {
        "model": "gpt-4o-mini",
        "goes to": "cheap/gpt-4o-mini",
        "because": "routing_rules[0] 'small' (priority 1) matched: model matches "
        "'gpt-4o-mini*', max_tokens <= 500",
        "then": "no fallback",
    }
    assert fake_openai.requests == []
    assert fake_openai_b.requests == []


def test_no_rule_falls_to_the_default_vendor_then_fallbacks(cli: CliInvoker, routed: Path) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--max-tokens", "1000")
    assert shown["goes to"] == "main/gpt-4o-mini"
    assert shown["because"] == "no routing rule matched; default_vendor"
    assert shown["then"] == "cheap/gpt-4o-mini"


def test_vendor_override(cli: CliInvoker, routed: Path) -> None:
    shown = explain(cli, routed, "-m", "gpt-4o-mini", "--vendor", "main")
    assert shown["goes to"] == "main/gpt-4o-mini"
    assert shown["because"] == "--vendor chose it (no routing, no fallback)"
    assert shown["then"] == "no fallback"


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


def test_a_model_group_shows_scored_candidates_and_exclusions(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    config = write_config(
        tmp_path / "groups.yaml",
        {"main": fake_openai, "cheap": fake_openai_b},
        "model_groups:",
        "  - name: chat",
        "    strategy: cost",
        "    deployments:",
        "      - {vendor: main, model: big, input_price: 5, output_price: 15}",
        "      - {vendor: cheap, model: small, input_price: 0.1, output_price: 0.4}",
        "      - {vendor: cheap, model: tiny, context_window: 8}",
    )
    result = cli("-c", config, "route", "explain", "hello there", "-m", "chat")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "model     chat (model group, cost)"
    assert lines[1] == "goes to   cheap/small"
    assert lines[4].startswith("  cheap/small score ")
    assert lines[5].startswith("  main/big score ")
    assert lines[6].startswith("  excluded cheap/tiny: context window too small for cheap/tiny")
    data = json.loads(cli("-c", config, "route", "explain", "hi", "-m", "chat", "--json").stdout)
    assert [c["deployment"] for c in data["candidates"]] == ["cheap/small", "main/big"]
    assert list(data["excluded"]) == ["cheap/tiny"]
    assert fake_openai.requests == fake_openai_b.requests == []
