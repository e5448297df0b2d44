"""The command group itself: --version, --help everywhere, light imports, exit codes and the
error wrapper (one line, no traceback unless --debug)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import llmdispatcher
from llmdispatcher.cli import route_cmd
from tests.cli import ROOT, CliInvoker, one_line, run_cli, write_config
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail

COMMANDS = [
    ["chat"],
    ["embed"],
    ["vendors"],
    ["test-vendor"],
    ["models"],
    ["route"],
    ["route", "explain"],
    ["config"],
    ["config", "init"],
    ["config", "check"],
    ["stats"],
    ["replay"],
    ["serve"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "show"],
    ["keys", "update"],
    ["keys", "revoke"],
    ["keys", "team"],
    ["keys", "audit"],
]


def test_version(cli: CliInvoker) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"llmdispatcher {llmdispatcher.__version__}"


def test_help_lists_every_command(cli: CliInvoker) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1].strip().splitlines()
    names = [line.split()[0] for line in listed]
    assert names == [
        "chat",
        "embed",
        "vendors",
        "test-vendor",
        "models",
        "route",
        "config",
        "stats",
        "replay",
        "serve",
        "keys",
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(cli: CliInvoker, command: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = cli(*command, flag)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: llmdispatcher {' '.join(command)} ")


def test_help_imports_nothing_heavy() -> None:
    """--help on every command loads no HTTP, JSON or YAML library and no vendor module."""
    code = (
        "import sys\n"
        "from llmdispatcher.cli.main import main\n"
        f"for args in {[[*c, '--help'] for c in [[], *COMMANDS]]!r}:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "light = ('llmdispatcher.vendors', 'llmdispatcher.vendors.base')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'orjson', 'yaml')\n"
        "         or (m.startswith('llmdispatcher.vendors') and m not in light)]\n"
        "print('HEAVY:' + ','.join(sorted(heavy)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "HEAVY:"


def test_python_dash_m_and_exit_code_for_usage_errors() -> None:
    done = run_cli("--version")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"llmdispatcher {llmdispatcher.__version__}",
    )
    done = run_cli("no-such-command")
    assert done.returncode == 2
    assert "No such command 'no-such-command'" in done.stderr


def test_no_arguments_shows_usage(cli: CliInvoker) -> None:
    result = cli()
    assert result.exit_code == 2
    assert "Usage: llmdispatcher" in result.output


def test_missing_config_file_is_a_config_error(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("--config", tmp_path / "nope.yaml", "chat", "hi")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith("error: ")
    assert "nope.yaml: cannot read the config file" in line


def test_config_comes_from_the_environment_variable(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("chat", "hi", "-m", "gpt-4o", env={"LLMDISPATCHER_CONFIG": str(config_file)})
    assert result.exit_code == 0, result.stderr
    assert fake_openai.last_request.json["model"] == "gpt-4o"


def test_subcommand_config_overrides_the_global_one(
    cli: CliInvoker, config_file: Path, tmp_path: Path
) -> None:
    result = cli("--config", tmp_path / "missing.yaml", "route", "explain", "--config", config_file)
    assert result.exit_code == 0, result.stderr
    assert "openai" in result.stdout


def test_config_file_error_names_the_key(cli: CliInvoker, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("timeout: 30\nretries: 3\n")
    result = cli("--config", bad, "vendors")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "bad.yaml: retries: unknown setting; expected one of" in line
    assert "Traceback" not in result.output


def test_missing_key_in_config_is_exit_2_with_the_fix(cli: CliInvoker, tmp_path: Path) -> None:
    config = tmp_path / "env.yaml"
    config.write_text("vendors:\n  openai: {api_key: '${MY_TEST_OPENAI_KEY}'}\n")
    result = cli("--config", config, "chat", "hi")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "MY_TEST_OPENAI_KEY is not set: export it" in line


def test_unexpected_errors_are_one_line_unless_debug(
    cli: CliInvoker, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(route_cmd, "reason_text", broken)
    result = cli("--config", config_file, "route", "explain")
    assert result.exit_code == 1
    assert one_line(result.stderr) == (
        "error: unexpected RuntimeError: boom (run with --debug for the traceback)"
    )
    result = cli("--debug", "--config", config_file, "route", "explain")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'raise RuntimeError("boom")' in result.stderr


def test_keyboard_interrupt_exits_130_quietly(
    cli: CliInvoker, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(route_cmd, "reason_text", interrupted)
    result = cli("--config", config_file, "route", "explain")
    assert result.exit_code == 130
    assert result.stderr == ""


def test_no_vendor_at_all_is_exit_2_with_the_fix(
    cli: CliInvoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Depends on Dispatcher.from_env (every vendor module must import). Without a key, a
    config file or the built-in local model there is nothing to talk to."""
    from llmdispatcher import local_models

    monkeypatch.setattr(local_models, "embedded_default", lambda: None)
    result = cli("chat", "hi")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith("error: no vendor is configured: export OPENAI_API_KEY")
    assert "pip install" in line


def test_a_config_without_vendors_is_exit_2(cli: CliInvoker, tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("timeout: 10\n")
    result = cli("--config", config, "vendors")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        f"error: {config}: no vendors: add one under `vendors:` "
        "(`llmdispatcher config init` writes an example)"
    )


def test_debug_logs_every_attempt(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        {"openai": fake_openai},
        retries="retry_policy: {max_retries: 1, base_delay: 0, jitter: false}",
    )
    fake_openai.enqueue(Fail("server"))
    done = run_cli("--debug", "--config", config, "chat", "hi", "-m", "gpt-4o")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(e["event"], e.get("status")) for e in events] == [
        ("attempt", "VendorServerError"),
        ("RetryScheduled", None),
        ("attempt", "ok"),
        ("request", None),
    ]
    assert done.stderr.splitlines()[-1].endswith(" · 1 retry")
    assert FAKE_OPENAI_KEY not in done.stderr
