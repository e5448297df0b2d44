"""``llmdispatcher keys``: create, list, show, update, revoke and team budgets on the data
directory's database (or the config's key store), as text and JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli import CliInvoker, clean_environ, cli_command, one_line


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("LLMDISPATCHER_HOME", str(folder))
    return folder


def test_create_prints_the_key_alone_once(cli: CliInvoker, home: Path) -> None:
    result = cli("keys", "create", "billing", "--team", "payments", "--budget", "50/month",
                 "--rpm", "60", "--models", "gpt-4o*,claude-*", "--expires", "30d")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"sk-llmd-[A-Za-z0-9]{40}\n", result.stdout)
    plaintext = result.stdout.strip()
    assert "not shown again" in result.stderr
    assert plaintext not in result.stderr
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["billing"]
    assert listed[0]["budget_usd"] == "50"
    assert listed[0]["models"] == ["gpt-4o*", "claude-*"]
    assert plaintext not in json.dumps(listed)
    assert plaintext.encode() not in (home / "llmdispatcher.db").read_bytes()


def test_a_viewer_key_for_the_dashboard(cli: CliInvoker) -> None:
    viewer = json.loads(cli("keys", "create", "ops", "--role", "viewer", "--json").stdout)
    plain = json.loads(cli("keys", "create", "app", "--json").stdout)
    assert (viewer["role"], plain["role"]) == ("viewer", "client")
    refused = cli("keys", "create", "x", "--role", "root")
    assert refused.exit_code == 2
    assert "'root' is not one of 'client', 'viewer'" in refused.stderr


def test_show_update_revoke(cli: CliInvoker) -> None:
    created = json.loads(cli("keys", "create", "app", "--json").stdout)
    key_id = created["id"]
    assert created["key"].startswith("sk-llmd-")
    shown = cli("keys", "show", key_id)
    assert shown.exit_code == 0
    assert f"id               {key_id}" in shown.stdout
    updated = json.loads(cli("keys", "update", key_id, "--tpm", "1000", "--json").stdout)
    assert updated["tpm"] == 1000
    cleared = json.loads(cli("keys", "update", key_id, "--tpm", "none", "--json").stdout)
    assert cleared["tpm"] is None
    revoked = json.loads(cli("keys", "revoke", key_id, "--json").stdout)
    assert revoked["revoked_at"] is not None
    table = cli("keys", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "TEAM"]
    assert table[1].split()[-1] == "revoked"
    assert json.loads(cli("keys", "list", "--active", "--json").stdout) == []
    trail = json.loads(cli("keys", "audit", "--json").stdout)
    assert [e["action"] for e in trail] == ["revoke", "update", "update", "create"]
    assert trail[0]["actor"].startswith("cli")
    assert created["key"] not in json.dumps(trail)
    assert cli("keys", "audit").stdout.splitlines()[0].split() == [
        "AT",
        "ACTOR",
        "ACTION",
        "TARGET",
    ]


def test_team_budget(cli: CliInvoker) -> None:
    result = cli("keys", "team", "web", "--budget", "500/month")
    assert result.stdout.strip() == "team web: $500/month"
    assert json.loads(cli("keys", "team", "web", "--budget", "none", "--json").stdout) == {
        "name": "web",
        "budget_usd": None,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "a b"), "error: name: 1-64 characters"),
        (("create", "x", "--budget", "lots/month"), "error: budget_usd: a positive number"),
        (("create", "x", "--budget", "5/week"), "error: budget_period: one of day, month, total"),
        (("create", "x", "--expires", "soon"), "error: expires_in: 'soon' is not a duration"),
        (("create", "x", "--rpm", "many"), "error: --rpm: a whole number, or none"),
        (("show", "key_nope"), "error: no key with id 'key_nope'"),
        (("update", "key_nope"), "error: nothing to change"),
    ],
)
def test_errors_are_one_line_naming_the_field(
    cli: CliInvoker, args: tuple[str, ...], message: str
) -> None:
    result = cli("keys", *args)
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith(message)


def test_duplicate_names_are_refused(cli: CliInvoker) -> None:
    assert cli("keys", "create", "a").exit_code == 0
    result = cli("keys", "create", "a")
    assert result.exit_code == 2
    assert one_line(result.stderr) == "error: name: a key named 'a' exists already"


def test_the_config_file_chooses_the_store(cli: CliInvoker, tmp_path: Path, home: Path) -> None:
    store = tmp_path / "keys.db"
    config = tmp_path / "c.yaml"
    config.write_text(f"gateway: {{key_store_url: 'sqlite:///{store}'}}\nvendors: {{}}\n")
    assert cli("-c", config, "keys", "create", "a").exit_code == 0
    assert store.is_file()
    assert not home.exists()


def test_create_as_a_subprocess_writes_only_the_key_to_stdout(home: Path) -> None:
    import subprocess

    done = subprocess.run(
        cli_command("keys", "create", "piped"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_environ(), "LLMDISPATCHER_HOME": str(home)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"sk-llmd-[A-Za-z0-9]{40}\n", done.stdout)
