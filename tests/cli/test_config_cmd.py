"""``config init`` and ``config check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmdispatcher import Config
from llmdispatcher.cli.config_cmd import EXAMPLE_CONFIG
from tests.cli import CliInvoker, one_line, run_cli, vendor_yaml, write_config
from tests.fakes.openai_fake import FakeOpenAI

SECRET = "sk-live-secret-abcdefghijklmnop"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_the_example(cli: CliInvoker, in_tmp: Path) -> None:
    result = cli("config", "init")
    assert result.exit_code == 0, result.output
    assert (in_tmp / "llmdispatcher.yaml").read_text() == EXAMPLE_CONFIG
    assert result.stdout.splitlines()[0] == "wrote llmdispatcher.yaml"


def test_init_refuses_to_overwrite_without_force(cli: CliInvoker, in_tmp: Path) -> None:
    target = in_tmp / "mine.yaml"
    target.write_text("timeout: 5\n")
    result = cli("config", "init", "mine.yaml")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "error: mine.yaml already exists: pass --force to overwrite it"
    )
    assert target.read_text() == "timeout: 5\n"
    assert cli("config", "init", "mine.yaml", "--force").exit_code == 0
    assert target.read_text() == EXAMPLE_CONFIG


def test_init_writes_where_config_points(cli: CliInvoker, in_tmp: Path) -> None:
    assert cli("--config", "sub.yml", "config", "init").exit_code == 0
    assert (in_tmp / "sub.yml").read_text() == EXAMPLE_CONFIG
    result = cli("config", "init", "x.toml")
    assert result.exit_code == 2
    assert "config init writes YAML" in result.stderr


def test_the_example_is_valid_and_documents_every_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    path = tmp_path / "example.yaml"
    path.write_text(EXAMPLE_CONFIG)
    config = Config.from_file(path)
    assert [v.name for v in config.vendors] == ["openai"]
    for setting in Config.__dataclass_fields__:
        assert f"\n{setting}:" in EXAMPLE_CONFIG, setting


def test_check_the_written_example(cli: CliInvoker, in_tmp: Path) -> None:
    cli("config", "init")
    result = cli("config", "check", "llmdispatcher.yaml", env={"OPENAI_API_KEY": SECRET})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "  openai: type openai, https://api.openai.com/v1, key ***mnop" in out
    assert "retries   3 per vendor, exponential backoff from 500ms up to 30s, jittered" in out
    assert out.splitlines()[-1] == "ok: the configuration is valid"
    assert SECRET not in result.output
    result = cli("config", "check", "llmdispatcher.yaml")
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set: export it" in one_line(result.stderr)


def test_check_shows_vendors_rules_and_masks_secrets(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    vendors = (
        vendor_yaml("main", fake_openai, rpm=60, timeout=30)
        + vendor_yaml(
            "proxy",
            fake_openai,
            key=SECRET,
            headers={
                "X-Api-Key": SECRET,
                "X-Team": "blue",
                "Cookie": "session=cookie-secret-0123",
                "X-Auth": "xauth-secret-4567",
                "User-Agent": "my-app/1.0",
            },
        )
        + "  groq: {type: openai_compatible, preset: groq, api_key: gk-0, stream_usage: false}\n"
    )
    config = write_config(
        tmp_path / "c.yaml",
        vendors,
        "default_vendor: main",
        "fallback_vendors: [proxy]",
        "routing_rules: [{vendor: proxy, priority: 2, condition: {temperature_max: 0.5}}]",
    )
    result = cli("config", "check", config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"source    {config}"
    proxy = next(line for line in lines if line.startswith("  proxy: "))
    assert proxy.endswith(
        "key ***mnop, headers {X-Api-Key: ***mnop, X-Team: ***, Cookie: ***0123, "
        "X-Auth: ***4567, User-Agent: my-app/1.0}"
    )
    assert "cookie-secret" not in result.output
    assert "xauth-secret" not in result.output
    # Grouped settings read back as the file wrote them: flat, a preset by its name.
    main = next(line for line in lines if line.startswith("  main: "))
    assert main.endswith("timeout 30.0, rpm 60")
    groq = next(line for line in lines if line.startswith("  groq: "))
    assert groq.endswith("preset groq, stream_usage False")
    assert "default   main" in lines
    assert "fallbacks proxy" in lines
    assert "  [0] -> vendor proxy, priority 2: temperature in [-inf, 0.5]" in lines
    assert SECRET not in result.output


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("default_vendor: ghost", "default_vendor: 'ghost' is not a configured vendor"),
        ("fallback_vendors: [main, ghost]", "fallback_vendors[1]: 'ghost' is not a configured"),
        ("routing_rules: [{vendor: ghost}]", "routing_rules[0].vendor: 'ghost' is not a config"),
    ],
)
def test_check_finds_names_of_missing_vendors(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, extra: str, problem: str
) -> None:
    config = write_config(tmp_path / "c.yaml", {"main": fake_openai}, extra)
    result = cli("--config", config, "config", "check")
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith(f"error: {config}: ")
    assert problem in line
    assert line.endswith("(configured: main)")


def test_check_reports_schema_errors_with_the_key_path(cli: CliInvoker, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("retry_policy: {max_retries: many}\n")
    result = cli("config", "check", config)
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        f"error: {config}: retry_policy.max_retries: expected an integer, got 'many'"
    )


def test_check_from_the_environment(fake_openai: FakeOpenAI) -> None:
    """Depends on Dispatcher.from_env (every vendor module must import)."""
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": f"{fake_openai.url}/v1"}
    done = run_cli("config", "check", env=env)
    assert done.returncode == 0, done.stderr
    assert "source    the environment (no --config given)" in done.stdout
    assert f"  openai: type openai, {fake_openai.url}/v1, key ***mnop" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_check_an_http_template_vendor(cli: CliInvoker) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "http" / "tgi.yaml"
    env = {"TGI_URL": "http://127.0.0.1:8080", "HF_TOKEN": SECRET}
    result = cli("config", "check", example, env=env)
    assert result.exit_code == 0, result.output
    assert (
        "  tgi: type http, http://127.0.0.1:8080/generate, key ***mnop, method POST, "
        "models ('tgi',), health_url http://127.0.0.1:8080/health"
    ) in result.stdout
    assert SECRET not in result.output


def test_check_names_the_field_of_a_bad_template(cli: CliInvoker, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "vendors:\n  box:\n    type: http\n    url: http://127.0.0.1:9/generate\n"
        '    body: {inputs: "{{ promt }}"}\n    response: {text: generated_text}\n'
    )
    result = cli("config", "check", config)
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith(
        f"error: {config}: vendors.box: body.inputs: unknown field 'promt' in {{{{ promt }}}}"
    )
