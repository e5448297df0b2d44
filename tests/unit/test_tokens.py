"""Token estimates: the documented approximation, tiktoken only from disk, never the network."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmdispatcher.tokens import (
    DEFAULT_MAX_OUTPUT,
    approx_text_tokens,
    encoding_name_for,
    estimate_prompt_tokens,
    estimate_request_tokens,
    estimate_text_tokens,
    tokenizer_for,
)
from llmdispatcher.types import Request

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every test here runs with the network cut; any attempt is recorded and refused."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access is not allowed in token estimation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], "token estimation tried to reach the network"


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiktoken cache directory with no encoding files in it."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def request(**overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/b.png", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "user", "name": "bob", "content": "Yo"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"},
    }
    return Request(**{**fields, **overrides})


# -- the approximation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("abcd", 1), ("abcde", 2), ("é", 1), ("日本", 2), ("x" * 4_000, 1_000)],
)
def test_the_approximation_is_utf8_bytes_over_four(text: str, tokens: int) -> None:
    assert approx_text_tokens(text) == tokens


def test_without_an_encoding_on_disk_estimates_use_the_approximation(empty_cache: Path) -> None:
    assert tokenizer_for("gpt-4o") == "approx"
    assert estimate_text_tokens("The quick brown fox.", "gpt-4o") == 5
    assert estimate_text_tokens("") == 0


def test_a_prompt_estimate_counts_every_part(empty_cache: Path) -> None:
    # reply priming 3
    # system: 4 + "You are helpful." 4                               = 8
    # user:   4 + "Hi" 1 + image 765 + low-detail image 85           = 855
    # assistant tool call: 4 + 3 + "f" + '{"a":1}' (8 bytes) 2       = 9
    # tool:   4 + "42" 1                                             = 5
    # user named bob: 4 + 1 + "bob" 1 + "Yo" 1                       = 7
    # tools JSON, 76 bytes: 19; response_format JSON, 22 bytes: 6
    assert estimate_prompt_tokens(request()) == 912


def test_estimates_are_deterministic_and_within_sane_bounds(empty_cache: Path) -> None:
    text = "The committee will meet on Tuesday to review next year's budget. " * 200
    long = request(messages=[{"role": "user", "content": text}], tools=None, response_format=None)
    first = estimate_prompt_tokens(long)
    assert first == estimate_prompt_tokens(long)
    words = len(text.split())
    assert words <= first <= 2 * words


def test_worst_case_adds_the_output_bound(empty_cache: Path) -> None:
    prompt = estimate_prompt_tokens(request())
    assert estimate_request_tokens(request(max_tokens=100)) == prompt + 100
    assert estimate_request_tokens(request(), max_output=16_384) == prompt + 16_384
    assert estimate_request_tokens(request()) == prompt + DEFAULT_MAX_OUTPUT
    assert estimate_request_tokens(request(), default_output=10) == prompt + 10


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("openai/gpt-6.2-sol", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_openai_families_use_o200k(model: str | None, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


# -- tiktoken, from disk only -----------------------------------------------------------------


def test_a_damaged_encoding_file_is_not_refetched(empty_cache: Path) -> None:
    """tiktoken deletes a file whose hash is wrong and downloads it again: we must not let it."""
    cached = empty_cache / hashlib.sha1(O200K_URL.encode()).hexdigest()
    cached.write_bytes(b"not an encoding")
    assert tokenizer_for("gpt-4o") == "approx"
    assert estimate_text_tokens("hello world", "gpt-4o") == approx_text_tokens("hello world")
    assert cached.read_bytes() == b"not an encoding"


def test_a_disabled_tiktoken_cache_means_the_approximation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken would download on every use
    assert tokenizer_for("gpt-4o") == "approx"


def test_tiktoken_is_used_when_its_encoding_is_on_disk() -> None:
    pytest.importorskip("tiktoken")
    if tokenizer_for("gpt-4o") == "approx":
        pytest.skip("no tiktoken encoding file on disk (set TIKTOKEN_CACHE_DIR to use one)")
    assert tokenizer_for("gpt-4o").startswith("tiktoken:")
    assert estimate_text_tokens("hello world", "gpt-4o") == 2
    assert estimate_prompt_tokens(request()) > 850  # the images alone are 850
