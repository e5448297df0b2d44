"""``vendors``, ``test-vendor`` and ``models`` against healthy, misconfigured and dead vendors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.cli import CliInvoker, one_line, run_cli, vendor_yaml, write_config
from tests.fakes.openai_fake import DEFAULT_MODELS, FakeOpenAI
from tests.fakes.script import Fail, Reply, Stall

BAD_KEY = "sk-bad-key-0000000000"


def dead_url() -> str:
    """A local URL where nothing listens (a port just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def mixed(tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI) -> Path:
    """``good`` works, ``badkey`` has a wrong key, ``dead`` is unreachable."""
    vendors = (
        vendor_yaml("good", fake_openai)
        + vendor_yaml("badkey", fake_openai_b, key=BAD_KEY)
        + vendor_yaml("dead", dead_url())
    )
    return write_config(tmp_path / "mixed.yaml", vendors)


# --- vendors -------------------------------------------------------------------------------------
def test_vendors_table_when_all_are_healthy(cli: CliInvoker, two_vendors: Path) -> None:
    result = cli("-c", two_vendors, "vendors")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["VENDOR", "TYPE", "HEALTH", "LATENCY", "BREAKER", "MODELS"]
    assert [row.split()[:3] for row in rows] == [
        ["main", "openai", "ok"],
        ["backup", "openai", "ok"],
    ]
    assert all(row.split()[4] == "closed" for row in rows)
    assert all(row.endswith("5: gpt-4.1, gpt-4o, gpt-4o-mini, ...") for row in rows)
    assert header.index("MODELS") == rows[0].index("5: ")  # columns line up


def test_vendors_table_shows_what_is_down_and_why(cli: CliInvoker, mixed: Path) -> None:
    result = cli("-c", mixed, "vendors", "--timeout", "5")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    health = {line.split()[0]: line.split()[2] for line in lines[1:4]}
    assert health == {"good": "ok", "badkey": "down", "dead": "down"}
    assert any(line.startswith("badkey: ") and "Incorrect API key" in line for line in lines)
    assert any(line.startswith("dead: ") and "connection failed" in line for line in lines)
    assert BAD_KEY not in result.output


def test_vendors_json(cli: CliInvoker, mixed: Path) -> None:
    result = cli("-c", mixed, "vendors", "--json")
    assert result.exit_code == 1
    data = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert data["good"]["healthy"] is True
    assert data["good"]["models"] == sorted(DEFAULT_MODELS)
    assert data["badkey"]["healthy"] is False
    assert data["badkey"]["models"] is None
    assert "Incorrect API key" in data["badkey"]["models_error"]
    assert data["dead"]["type"] == "openai"


# --- test-vendor ---------------------------------------------------------------------------------
def test_test_vendor_ok(cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="OK"))
    result = cli("-c", config_file, "test-vendor", "openai")
    assert result.exit_code == 0, result.output
    line = one_line(result.stdout)
    assert line.startswith("openai  ok  replied 'OK' (gpt-4o-mini, ")
    sent = fake_openai.last_request.json
    assert sent["max_completion_tokens"] == 16
    assert sent["messages"] == [{"role": "user", "content": "Reply with the single word OK."}]


def test_test_vendor_with_a_model(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "test-vendor", "openai", "--model", "gpt-4.1")
    assert result.exit_code == 0, result.output
    assert fake_openai.last_request.json["model"] == "gpt-4.1"
    assert [r.path for r in fake_openai.requests] == ["/v1/chat/completions"]  # no listing


@pytest.mark.parametrize(
    ("name", "verdict", "cause", "fix"),
    [
        (
            "badkey",
            "bad key",
            "badkey HTTP 401 invalid_request_error: Incorrect API key provided",
            "fix: check the API key of vendor 'badkey'",
        ),
        (
            "dead",
            "unreachable",
            "dead: connection failed: cannot connect to",
            "fix: check that 'dead' is running and that its base_url is right",
        ),
    ],
)
def test_test_vendor_failures_say_why(
    cli: CliInvoker, mixed: Path, name: str, verdict: str, cause: str, fix: str
) -> None:
    result = cli("-c", mixed, "test-vendor", name)
    assert result.exit_code == 1
    head, cause_line, fix_line = result.stdout.splitlines()
    assert head.startswith(f"{name}  FAIL  {verdict} (")
    assert cause_line.strip().startswith(f"cause: {cause}")
    assert fix_line.strip().startswith(fix)


def test_test_vendor_model_not_found(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("not_found"))
    result = cli("-c", config_file, "test-vendor", "openai", "-m", "gpt-nope")
    assert result.exit_code == 1
    head, cause, fix = result.stdout.splitlines()
    assert head.startswith("openai  FAIL  model not found (gpt-nope, ")
    assert "The model `gpt-nope` does not exist" in cause
    assert "fix: `llmdispatcher models` lists what 'openai' serves" in fix


def test_test_vendor_timeout(cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Stall(seconds=10))
    result = cli("-c", config_file, "test-vendor", "openai", "--timeout", "0.3")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("openai  FAIL  timed out (gpt-4o-mini, ")
    assert "cause: no answer within 0.3s" in result.stdout


def test_test_vendor_all_with_progress(cli: CliInvoker, mixed: Path) -> None:
    result = cli("-c", mixed, "test-vendor")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert sorted(line[:5] for line in progress) == ["[1/3]", "[2/3]", "[3/3]"]
    verdicts = {line.split()[1]: " ".join(line.split()[2:4]) for line in progress}
    assert verdicts["good"].startswith("ok replied")
    assert verdicts["badkey"] == "FAIL bad"
    assert verdicts["dead"] == "FAIL unreachable"
    assert lines[-1] == "1 of 3 vendors ok"


def test_test_vendor_unknown_name(cli: CliInvoker, config_file: Path) -> None:
    result = cli("-c", config_file, "test-vendor", "nope")
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith("error: unknown vendor 'nope': the configured")


def test_test_vendor_json(cli: CliInvoker, config_file: Path) -> None:
    result = cli("-c", config_file, "test-vendor", "--json")
    assert result.exit_code == 0
    (check,) = json.loads(result.stdout)
    assert (check["name"], check["ok"], check["verdict"]) == ("openai", True, "ok")


def test_test_vendor_as_a_subprocess(mixed: Path) -> None:
    done = run_cli("--config", mixed, "test-vendor", "badkey")
    assert done.returncode == 1
    assert "FAIL  bad key" in done.stdout
    assert done.stderr == ""


# --- models --------------------------------------------------------------------------------------
def test_models_lists_each_vendor(cli: CliInvoker, two_vendors: Path) -> None:
    result = cli("-c", two_vendors, "models")
    assert result.exit_code == 0
    expected = [f"  {m}" for m in sorted(DEFAULT_MODELS)]
    assert result.stdout.splitlines() == [
        "main (5 models)",
        *expected,
        "backup (5 models)",
        *expected,
    ]


def test_models_of_one_vendor_and_as_json(cli: CliInvoker, mixed: Path) -> None:
    result = cli("-c", mixed, "models", "good", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"good": {"models": sorted(DEFAULT_MODELS), "error": None}}
    result = cli("-c", mixed, "models", "badkey")
    assert result.exit_code == 1
    assert one_line(result.stdout).startswith("badkey: cannot list models: badkey HTTP 401")


def test_models_of_a_vendor_that_cannot_list(
    cli: CliInvoker, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmdispatcher.vendors.base import Vendor
    from llmdispatcher.vendors.openai import OpenAIVendor

    monkeypatch.setattr(OpenAIVendor, "list_models", Vendor.list_models)
    result = cli("-c", config_file, "models")
    assert result.exit_code == 0
    assert result.stdout == "openai: this vendor does not list its models\n"
    result = cli("-c", config_file, "vendors")
    assert result.stdout.splitlines()[1].endswith("not listed")


def test_models_lists_model_groups(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = write_config(
        tmp_path / "g.yaml",
        {"main": fake_openai},
        "model_groups:",
        "  - {name: chat, deployments: [{vendor: main, model: gpt-4o}]}",
    )
    result = cli("-c", config, "models")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "chat (model group): main/gpt-4o"
    data = json.loads(cli("-c", config, "models", "--json").stdout)
    assert data["model_groups"] == {"chat": ["main/gpt-4o"]}


def test_models_local_lists_gguf_files_and_the_built_in_model(
    cli: CliInvoker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-test.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("LLMDISPATCHER_MODEL_DIRS", str(models))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # nothing answers there
    result = cli("models", "--local", "--json")
    assert result.exit_code == 0, result.output
    found = {m["name"]: m for m in json.loads(result.stdout)}
    assert found["tiny-test"]["runtime"] == "llamacpp"
    assert found["tiny-test"]["path"] == str(models / "tiny-test.gguf")
    assert "smollm2" in found
    table = cli("models", "--local").stdout.splitlines()
    assert table[0].split() == ["NAME", "RUNS", "WITH", "FROM"]
