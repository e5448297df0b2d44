"""Config files: YAML and TOML, ${ENV} secrets, and errors that name file, key path and fix."""

from dataclasses import replace
from pathlib import Path

import pytest

from llmdispatcher import Config, Limits, RetryPolicy, RoutingCondition, RoutingRule
from llmdispatcher.errors import ConfigError
from llmdispatcher.vendors import Connection
from llmdispatcher.vendors.llamacpp import LocalOptions
from llmdispatcher.vendors.presets import PRESETS

YAML = """
default_vendor: primary
fallback_vendors: [backup]
timeout: 12
retry_policy: {max_retries: 2, backoff: linear, base_delay: 0.25, max_delay: 4, jitter: false}
routing_rules:
  - vendor: backup
    priority: 1
    condition: {model_pattern: "gpt-4*", max_tokens: 2000, temperature_min: 0, temperature_max: 1}
vendors:
  primary:
    type: openai
    api_key: ${TEST_PRIMARY_KEY}
    base_url: http://127.0.0.1:9/v1
  backup:
    type: openai
    api_key: ${TEST_MISSING_KEY:-fallback-key}
    timeout: 5
"""

TOML = """
default_vendor = "primary"
timeout = 12.5

[retry_policy]
max_retries = 1

[vendors.primary]
type = "openai"
api_key = "${TEST_PRIMARY_KEY}"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_loads_every_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PRIMARY_KEY", "sk-from-env-123456")
    config = Config.from_file(write(tmp_path, "c.yaml", YAML))
    assert config.default_vendor == "primary"
    assert config.fallback_vendors == ("backup",)
    assert config.timeout == 12.0
    assert config.retry_policy == RetryPolicy(2, "linear", 0.25, 4.0, False)
    assert config.routing_rules == (
        RoutingRule(
            vendor="backup", priority=1, condition=RoutingCondition("gpt-4*", 2000, 0.0, 1.0)
        ),
    )
    primary, backup = config.vendors
    assert primary.options["api_key"] == "sk-from-env-123456"
    assert backup.options == {
        "name": "backup",
        "api_key": "fallback-key",
        "connection": Connection(timeout=5.0),
    }
    assert "sk-from-env-123456" not in repr(config)


def test_toml_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PRIMARY_KEY", "k-123456")
    config = Config.from_file(write(tmp_path, "c.toml", TOML))
    assert (config.default_vendor, config.timeout, config.retry_policy.max_retries) == (
        "primary",
        12.5,
        1,
    )
    assert config.vendors[0].type == "openai"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timeout: fast\n", r"c\.yaml: timeout: expected a number, got 'fast'"),
        ("timeout: -1\n", r"c\.yaml: timeout: must be a positive number"),
        ("colour: red\n", r"c\.yaml: colour: unknown setting; expected one of .*default_vendor"),
        ("retry_policy: {max_retrys: 3}\n", r"retry_policy\.max_retrys: unknown setting"),
        ("retry_policy: {backoff: random}\n", r"retry_policy\.backoff: 'random' is not one of"),
        (
            "routing_rules: [{priority: 1}]\n",
            r"routing_rules\[0\]: routing_rules\[\]\.vendor/deployment/group/strategy: a rule "
            r"needs a target",
        ),
        (
            "routing_rules: [{vendor: x, condition: {model: y}}]\n",
            r"routing_rules\[0\]\.condition\.model: unknown setting",
        ),
        ("fallback_vendors: openai\n", r"fallback_vendors: expected a list"),
        ("vendors: {x: {type: nope}}\n", r"vendors\.x\.type: unknown vendor type 'nope'"),
        (
            "vendors: {openai: {api_key: k, colour: red}}\n",
            r"vendors\.openai\.colour: unknown setting; expected one of .*base_url",
        ),
        (
            "vendors: {openai: {api_key: k, timeout: soon}}\n",
            r"vendors\.openai\.timeout: expected a number",
        ),
        (
            "vendors: {openai: {api_key: k, rpm: 0}}\n",
            r"c\.yaml: vendors\.openai: rpm: must be a positive integer",
        ),
        (
            "vendors: {openai: {api_key: k, rpm: 5, limits: {rpm: 6}}}\n",
            r"c\.yaml: vendors\.openai\.limits\.rpm: given both here and flat beside it",
        ),
        (
            "vendors: {openai: {api_key: k, limits: {rpm: many}}}\n",
            r"c\.yaml: vendors\.openai\.limits\.rpm: expected an integer",
        ),
        (
            "vendors: {g: {type: openai_compatible, preset: nope, stream_usage: false}}\n",
            r"c\.yaml: vendors\.g\.preset: unknown preset 'nope'; expected one of groq",
        ),
        (
            "vendors: {openai: {api_key: '${TEST_NOT_SET_ANYWHERE}'}}\n",
            r"vendors\.openai\.api_key: environment variable TEST_NOT_SET_ANYWHERE is not set",
        ),
        ("- just\n- a list\n", r"the top level must be a mapping"),
        ("timeout: [1\n", r"not valid YAML"),
    ],
)
def test_bad_files_say_where_and_what(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Config.from_file(write(tmp_path, "c.yaml", text))


def test_bad_toml_and_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_file(write(tmp_path, "c.toml", "timeout = \n"))
    with pytest.raises(ConfigError, match=r"unknown config format '\.ini'"):
        Config.from_file(write(tmp_path, "c.ini", "x=1"))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        Config.from_file(tmp_path / "absent.yaml")


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    assert Config.from_file(write(tmp_path, "c.yaml", "")) == Config()


def test_flat_vendor_keys_fold_into_their_grouped_values(tmp_path: Path) -> None:
    text = """
vendors:
  openai: {api_key: k, rpm: 60, tpm: 9000, max_concurrency: 4, timeout: 30, headers: {X-Team: a}}
  capped: {type: openai, api_key: k, limits: {rpd: 100}}
  groq: {type: openai_compatible, preset: groq, stream_usage: false, connect_timeout: 2}
  box: {type: llamacpp, base_url: "http://127.0.0.1:1", n_ctx: 4096, max_queue: 0, rpm: 5}
"""
    specs = {s.name: s.options for s in Config.from_file(write(tmp_path, "c.yaml", text)).vendors}
    assert specs["openai"] == {
        "name": "openai",
        "api_key": "k",
        "limits": Limits(rpm=60, tpm=9000, max_concurrency=4),
        "connection": Connection(timeout=30.0, headers={"X-Team": "a"}),
    }
    assert specs["capped"]["limits"] == Limits(rpd=100)
    # The named preset is the base the flat fields override.
    assert specs["groq"]["preset"] == replace(PRESETS["groq"], stream_usage=False)
    assert specs["groq"]["connection"] == Connection(connect_timeout=2.0)
    assert specs["box"]["local"] == LocalOptions(n_ctx=4096, max_queue=0)
    assert specs["box"]["limits"] == Limits(rpm=5)
