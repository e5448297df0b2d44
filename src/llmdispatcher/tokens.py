"""Local token estimates for prompts: fast, deterministic, never a network call.

Estimates feed routing (cost, context-window checks, tokens-per-minute limits) before a request
is sent; the vendor's reported usage, not these, is what cost is computed from.

Two methods, chosen per call:

- **tiktoken**, when it is installed *and* its encoding file is already on disk:
  ``o200k_base`` for OpenAI's current families (gpt-4o, gpt-4.1, gpt-5, gpt-6, o-series),
  ``cl100k_base`` for everything else (exact for gpt-4/gpt-3.5, a proxy for other vendors);
  either stands in for the other when only one is on disk. tiktoken downloads encoding files on
  first use, so we look for the file first, where tiktoken keeps it (``$TIKTOKEN_CACHE_DIR``,
  else ``$DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``), and check its SHA-256 - a
  missing or damaged file would make tiktoken fetch it. To enable tiktoken on an offline host,
  copy the files into that directory (or run ``tiktoken.get_encoding(...)`` once online).
- **approximation** otherwise: ``ceil(utf-8 bytes / 4)`` for text. Measured against
  cl100k_base it reads English prose and JSON about 15-20% high, German and Russian within 10%,
  indented code about a third low and Chinese or Japanese about half (other vendors' tokenizers
  differ again): leave headroom when checking a context window with it.

A prompt's estimate adds, to the text of every message: 4 tokens of per-message overhead
(role and separators), the name's tokens plus 1 when a message has one, each tool call's name
and arguments plus 3, a fixed 765 tokens per image (85 with ``detail: "low"``; 765 is OpenAI's
cost of a 1024x1024 high-detail image), 3 tokens priming the reply, and the tokens of the
tools' JSON schemas and the ``response_format`` as JSON.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from .types import Message, Request

DEFAULT_MAX_OUTPUT = 4096
BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
NAME_OVERHEAD = 1
TOOL_CALL_OVERHEAD = 3
REPLY_PRIMING = 3
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOW_DETAIL = 85

# Where tiktoken downloads each encoding from (the cache key) and the file's SHA-256.
_ENCODING_FILES: Mapping[str, tuple[str, str]] = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
_O200K_FAMILIES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-6",
    "o1",
    "o3",
    "o4",
    "chatgpt-",
    "gpt-oss",
    "codex",
)


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def approx_text_tokens(text: str) -> int:
    """The approximation: ``ceil(len(text.encode("utf-8")) / 4)``."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def encoding_name_for(model: str | None) -> str:
    """The tiktoken encoding that fits ``model``: o200k_base for OpenAI's current families."""
    name = (model or "").lower().rpartition("/")[2]
    return "o200k_base" if name.startswith(_O200K_FAMILIES) else "cl100k_base"


def tokenizer_for(model: str | None) -> str:
    """What estimates for ``model`` use now: ``"tiktoken:<encoding>"`` or ``"approx"``."""
    found = _encoder_for(model)
    return f"tiktoken:{found[0]}" if found else "approx"


def estimate_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` for ``model``: tiktoken when available offline, else the approximation."""
    if not text:
        return 0
    return _text_counter(model)(text)


def estimate_prompt_tokens(request: Request) -> int:
    """Tokens the request's prompt will take (messages, images, tools, response format)."""
    # One encoder lookup per request, not per text: it reads the environment each time.
    count = _text_counter(request.model)
    total = REPLY_PRIMING
    for message in request.message_list:
        total += _message_tokens(message, count)
    if request.tools:
        total += count(_json([tool.to_openai() for tool in request.tool_list]))
    if request.response_format:
        total += count(_json(request.response_format))
    return total


def estimate_request_tokens(
    request: Request, *, max_output: int | None = None, default_output: int = DEFAULT_MAX_OUTPUT
) -> int:
    """The worst case a request can use: its prompt plus the most it may generate.

    The output bound is ``request.max_tokens``, else the model's ``max_output`` (from the price
    table, when the caller has it), else ``default_output``.
    """
    return estimate_prompt_tokens(request) + (request.max_tokens or max_output or default_output)


def _message_tokens(message: Message, count: Callable[[str], int]) -> int:
    tokens = MESSAGE_OVERHEAD + count(message.text)
    if message.name:
        tokens += NAME_OVERHEAD + count(message.name)
    for call in message.tool_calls or ():
        tokens += TOOL_CALL_OVERHEAD + count(call.name + call.arguments)
    for image in message.images:
        tokens += IMAGE_TOKENS_LOW_DETAIL if image.detail == "low" else IMAGE_TOKENS
    return tokens


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _text_counter(model: str | None) -> Callable[[str], int]:
    """How to count the tokens of a text for ``model``, as things stand now."""
    found = _encoder_for(model)
    if found is None:
        return _approx_or_zero
    encode = found[1].encode_ordinary
    return lambda text: len(encode(text)) if text else 0


def _approx_or_zero(text: str) -> int:
    return approx_text_tokens(text) if text else 0


def _encoder_for(model: str | None) -> tuple[str, _Encoder] | None:
    """The preferred encoding for ``model``, else the other one, if either loads offline."""
    # Memoised per model and cache setting: this runs for every request the router sees.
    # Without tiktoken installed (the default) there is nothing to look up, and reading the
    # environment was a tenth of the router's time.
    if not _tiktoken_installed():
        return None
    return _encoder_memo(
        model, os.environ.get("TIKTOKEN_CACHE_DIR"), os.environ.get("DATA_GYM_CACHE_DIR")
    )


@functools.cache
def _tiktoken_installed() -> bool:
    return importlib.util.find_spec("tiktoken") is not None


@functools.lru_cache(maxsize=512)
def _encoder_memo(
    model: str | None, tiktoken_dir: str | None, gym_dir: str | None
) -> tuple[str, _Encoder] | None:
    preferred = encoding_name_for(model)
    cache_dir = _tiktoken_cache_dir()
    for name in (preferred, *(n for n in _ENCODING_FILES if n != preferred)):
        encoder = _load_encoder(name, cache_dir)
        if encoder is not None:
            return name, encoder
    return None


def _tiktoken_cache_dir() -> str | None:
    """Where tiktoken looks for downloaded files (as ``tiktoken.load`` decides); ``None`` when
    its cache is disabled (``TIKTOKEN_CACHE_DIR=""``), in which case it would always fetch."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable] or None
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


@functools.cache
def _load_encoder(name: str, cache_dir: str | None) -> _Encoder | None:
    """tiktoken's encoder, only when its file is already on disk and intact: tiktoken would
    download a missing one and re-download a damaged one, and we never touch the network."""
    if cache_dir is None or not _tiktoken_installed():
        return None
    url, sha256 = _ENCODING_FILES[name]
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as file:
            intact = hashlib.sha256(file.read()).hexdigest() == sha256
    except OSError:
        return None
    if not intact:
        return None
    try:
        tiktoken = importlib.import_module("tiktoken")
        return cast(_Encoder, tiktoken.get_encoding(name))
    except Exception:  # a broken install must not break estimation
        return None
