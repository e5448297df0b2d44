"""``llmdispatcher embed`` against the fake OpenAI server, and with the built-in model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmdispatcher import local_models
from tests.cli import CliInvoker, one_line, run_cli
from tests.fakes.embeddings_wire import fake_vector
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail

SMALL = "text-embedding-3-small"


def test_prints_one_vector_per_text_and_a_footer(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "embed", "a cat", "a dog", "-m", SMALL, "--dimensions", "4")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        fake_vector("a cat", 4),
        fake_vector("a dog", 4),
    ]
    assert one_line(result.stderr).startswith(f"openai · {SMALL} · 4 in + 0 out tokens · $")
    assert fake_openai.last_request.json["input"] == ["a cat", "a dog"]


def test_json_prints_the_whole_answer(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "embed", "x", "-m", SMALL, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["vectors"] == [fake_vector("x", 1536)]
    assert (answer["vendor"], answer["model"]) == ("openai", SMALL)
    assert answer["usage"]["prompt_tokens"] == 1
    assert result.stderr == ""


def test_lines_of_stdin_are_the_texts(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    result = cli("-c", config_file, "embed", "-m", SMALL, "-q", input="first\n\nsecond\n")
    assert result.exit_code == 0, result.stderr
    assert fake_openai.last_request.json["input"] == ["first", "second"]
    assert len(result.stdout.splitlines()) == 2


def test_failures_and_usage_errors_exit_with_one_line(
    cli: CliInvoker, config_file: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Fail("auth"))
    failed = cli("-c", config_file, "embed", "x", "-m", SMALL)
    assert failed.exit_code == 1
    assert one_line(failed.stderr).startswith("error:")
    empty = cli("-c", config_file, "embed", "", "-m", SMALL)
    assert empty.exit_code == 2
    assert "a TEXT is empty" in empty.stderr
    unknown = cli("-c", config_file, "embed", "x", "--vendor", "nope")
    assert unknown.exit_code == 2
    assert "unknown vendor 'nope'" in unknown.stderr


@pytest.mark.skipif(
    local_models.smollm2_path() is None or local_models.embedded_embedder() is None,
    reason="the local model extras are not installed",
)
def test_with_no_key_the_built_in_model_answers() -> None:
    done = run_cli("embed", "cat", timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 384
    assert "local-embed · local-embed" in done.stderr
