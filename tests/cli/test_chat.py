"""``llmdispatcher chat`` one-shot and piped, against the fake OpenAI servers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from llmdispatcher import Response
from tests.cli import CliInvoker, one_line, run_cli, vendor_yaml, write_config
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail, MidStreamError, Reply


def test_streams_the_answer_and_prints_a_footer(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="Paris is the capital.", prompt_tokens=7, completion_tokens=5))
    result = cli("--config", config_file, "chat", "Capital of France?", "--model", "gpt-4o")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Paris is the capital.\n"
    footer = one_line(result.stderr)
    assert footer.startswith("openai · gpt-4o · 7 in + 5 out tokens · $0.000068 · ")
    assert "(first token " in footer
    assert footer.endswith(" · 0 retries")
    sent = fake_openai.last_request.json
    assert sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "Capital of France?"}]


def test_request_options_reach_the_vendor(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    options = ["--system", "Be brief.", "--temperature", "0.3", "--max-tokens", "50"]
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-4o-mini", *options)
    assert result.exit_code == 0, result.stderr
    sent = fake_openai.last_request.json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert (sent["model"], sent["temperature"], sent["max_completion_tokens"]) == (
        "gpt-4o-mini",
        0.3,
        50,
    )


def test_prompt_from_stdin_when_piped(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "chat", "-m", "gpt-4o", input="What is 2+2?\n")
    assert result.exit_code == 0, result.stderr
    assert fake_openai.last_request.json["messages"][-1]["content"] == "What is 2+2?\n"
    result = cli("-c", config_file, "chat", "-", "-m", "gpt-4o", input="dash prompt")
    assert result.exit_code == 0, result.stderr
    assert fake_openai.last_request.json["messages"][-1]["content"] == "dash prompt"


def test_empty_stdin_is_a_usage_error(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "chat", input="  \n")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "error: no prompt: pass it as an argument or pipe it on stdin"
    )
    assert fake_openai.requests == []
    result = cli("-c", config_file, "chat", " ")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "error: the prompt is empty: pass some text, or pipe it on stdin"
    )


def test_no_stream_sends_one_plain_request(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="whole answer"))
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-4o", "--no-stream")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "whole answer\n"
    assert "stream" not in fake_openai.last_request.json
    assert "(first token" not in result.stderr


def test_json_prints_the_response_with_its_field_names(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="forty-two", prompt_tokens=3, completion_tokens=2))
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-4o", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [f.name for f in dataclasses.fields(Response)]
    assert (data["content"], data["vendor"], data["model"]) == ("forty-two", "openai", "gpt-4o")
    assert data["usage"]["total_tokens"] == 5
    assert data["attempts"][0]["status"] == "ok"
    assert result.stderr == ""


def test_quiet_has_no_footer(cli: CliInvoker, config_file: Path) -> None:
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-4o", "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_default_model_comes_from_the_environment(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    assert cli("-c", config_file, "chat", "hi").exit_code == 0
    assert fake_openai.last_request.json["model"] == "local"
    result = cli("-c", config_file, "chat", "hi", env={"LLMDISPATCHER_MODEL": "gpt-4.1"})
    assert result.exit_code == 0
    assert fake_openai.last_request.json["model"] == "gpt-4.1"


@pytest.mark.parametrize("flag", ["--vendor", "--vendor-override"])
def test_vendor_override_sends_to_that_vendor_only(
    cli: CliInvoker,
    two_vendors: Path,
    fake_openai: FakeOpenAI,
    fake_openai_b: FakeOpenAI,
    flag: str,
) -> None:
    fake_openai_b.enqueue(Fail("server"))
    result = cli("-c", two_vendors, "chat", "hi", "-m", "gpt-4o", flag, "backup")
    assert result.exit_code == 1  # no fallback to main: the override means exactly that vendor
    assert fake_openai.requests == []
    assert len(fake_openai_b.requests) == 1


def test_unknown_vendor_is_a_config_error(
    cli: CliInvoker, two_vendors: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", two_vendors, "chat", "hi", "--vendor", "nope")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "error: unknown vendor 'nope': the configured vendors are main, backup "
        "(add it to the config file)"
    )
    assert fake_openai.requests == []


def test_a_known_vendor_without_its_key_names_the_variable(
    cli: CliInvoker, two_vendors: Path
) -> None:
    result = cli("-c", two_vendors, "chat", "hi", "--vendor", "openai")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        "error: unknown vendor 'openai': the configured vendors are main, backup "
        "(export OPENAI_API_KEY, or add it to the config file)"
    )


def test_footer_shows_fallback_and_retries(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        {"main": fake_openai, "backup": fake_openai_b},
        "fallback_vendors: [backup]",
        retries="retry_policy: {max_retries: 1, base_delay: 0, jitter: false}",
    )
    fake_openai.enqueue(Fail("server"), Fail("server"))
    result = cli("-c", config, "chat", "hi", "-m", "gpt-4o")
    assert result.exit_code == 0, result.stderr
    footer = one_line(result.stderr)
    assert footer.startswith("backup · gpt-4o · ")
    assert footer.endswith(" · 1 retry · fell back from main")


def test_bad_key_exits_1_with_the_cause_and_fix(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = write_config(
        tmp_path / "c.yaml", vendor_yaml("openai", fake_openai, key="sk-bad-key-999999")
    )
    result = cli("-c", config, "chat", "hi", "-m", "gpt-4o")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("error: openai HTTP 401 invalid_request_error: Incorrect API key")
    assert line.endswith(
        "(fix: check the API key of vendor 'openai' "
        "(its environment variable, or api_key in the config file))"
    )
    assert "sk-bad-key-999999" not in result.output
    assert result.stdout == ""


def test_model_not_found_points_at_the_models_command(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("not_found"))
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-9")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "The model `gpt-9` does not exist" in line
    assert "fix: `llmdispatcher models` lists what 'openai' serves" in line


def test_a_stream_that_breaks_keeps_the_partial_answer(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(MidStreamError(text="Hello there friend", after_chunks=2))
    result = cli("-c", config_file, "chat", "hi", "-m", "gpt-4o")
    assert result.exit_code == 1
    assert result.stdout == "Hello th\n"
    assert "fix: the answer broke off mid-stream; ask again" in one_line(result.stderr)


def test_invalid_option_values_are_usage_errors(cli: CliInvoker, config_file: Path) -> None:
    result = cli("-c", config_file, "chat", "hi", "--temperature", "3")
    assert result.exit_code == 2
    assert "Invalid value for '-t' / '--temperature'" in result.stderr
    result = cli("-c", config_file, "chat", "hi", "--max-tokens", "0")
    assert result.exit_code == 2


def test_local_with_an_unknown_local_model_is_a_config_error(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "chat", "hi", "--local", "--model", "no-such-model")
    assert result.exit_code == 2
    assert one_line(result.stderr).startswith(
        "error: no local model named 'no-such-model': pull it with Ollama, put a .gguf in "
        "LLMDISPATCHER_MODEL_DIRS, or give a path to a .gguf file (available here: "
    )
    assert "smollm2" in result.stderr
    assert fake_openai.requests == []


def test_local_runs_the_built_in_model_beside_cloud_vendors(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli(
        "-c",
        config_file,
        "chat",
        "What is the capital of France? Answer in one sentence.",
        "--local",
        "--max-tokens",
        "30",
        "--temperature",
        "0",
    )
    assert result.exit_code == 0, result.stderr
    assert "Paris" in result.stdout
    assert one_line(result.stderr).startswith("llamacpp · local · ")
    assert fake_openai.requests == []


def test_local_uses_the_vendor_named_ollama_and_the_given_model(
    cli: CliInvoker, tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    config = write_config(tmp_path / "c.yaml", {"cloud": fake_openai, "ollama": fake_openai_b})
    result = cli("-c", config, "chat", "hi", "--local", "--model", "qwen2.5:0.5b")
    assert result.exit_code == 0, result.stderr
    assert fake_openai.requests == []
    assert fake_openai_b.last_request.json["model"] == "qwen2.5:0.5b"
    assert one_line(result.stderr).startswith("ollama · qwen2.5:0.5b · ")
    result = cli("-c", config, "chat", "hi", "--local", "--vendor", "cloud")
    assert result.exit_code == 2
    assert "--local and --vendor both choose the vendor" in result.stderr


def test_subprocess_streams_pipes_and_exits_like_a_user_sees_it(
    config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="piped answer"))
    done = run_cli("--config", config_file, "chat", "-m", "gpt-4o", input="a piped question")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "piped answer\n"
    assert one_line(done.stderr).startswith("openai · gpt-4o · 9 in + 12 out tokens")
    assert "\x1b[" not in done.stdout + done.stderr  # no colour when piped
    assert fake_openai.last_request.json["messages"][-1]["content"] == "a piped question"
