"""The embeddings endpoints of the fakes, in each vendor's wire format (vendors.md section 9).

Vectors are deterministic: ``fake_vector(text, dims)`` is a unit vector seeded by the text, so
a test can check that every input got its own vector back, in order, whatever the batching.
Token counts are one per whitespace-separated word. Scripted ``Fail`` steps answer embedding
requests like any model request (handlers call ``take_fail()`` first).

* OpenAI (and Azure, llama-server): ``{"model","input","encoding_format","dimensions","user"}``
  -> ``{"object":"list","data":[{"object":"embedding","index":i,"embedding":[...]|"b64"}],
  "model","usage":{"prompt_tokens","total_tokens"}}``; floats unless ``encoding_format`` is
  ``base64`` (little-endian float32); at most 2048 inputs, none empty; ``dimensions`` only for
  ``text-embedding-3*``.
* Gemini ``:batchEmbedContents``: ``{"requests":[{"model","content":{"parts":[{"text"}]},
  "outputDimensionality"}]}`` -> ``{"embeddings":[{"values":[...]}]}``; at most 100 requests;
  ``:embedContent`` (one content) -> ``{"embedding":{"values":[...]}}``.
* Ollama ``/api/embed``: ``{"model","input":str|[str],"dimensions"}`` -> ``{"model",
  "embeddings":[[...]],"total_duration","load_duration","prompt_eval_count"}``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from typing import Any

OPENAI_BATCH_LIMIT = 2048
GEMINI_BATCH_LIMIT = 100
OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class EmbeddingProblem(Exception):
    """A request the real endpoint refuses (400 unless ``status``); ``param`` as OpenAI names
    it."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def fake_vector(text: str, dims: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dims``."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def tokens(texts: list[str]) -> int:
    return sum(len(text.split()) or 1 for text in texts)


def base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# --- OpenAI ------------------------------------------------------------------------------------
_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def openai_inputs(body: Any) -> list[str]:
    """The texts of a ``/v1/embeddings`` body, or ``EmbeddingProblem`` as the API words it."""
    if not isinstance(body, dict):
        raise EmbeddingProblem("We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise EmbeddingProblem("you must provide a model parameter")
    given = body.get("input")
    if given is None:
        raise EmbeddingProblem("'input' is a required property", "input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or len(texts) > OPENAI_BATCH_LIMIT:
        raise EmbeddingProblem(_INVALID_INPUT, "input")
    if not all(isinstance(t, str) and t for t in texts):
        raise EmbeddingProblem(_INVALID_INPUT, "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise EmbeddingProblem(
            f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    dims = body.get("dimensions")
    if dims is not None and (
        not isinstance(dims, int) or dims < 1 or not body["model"].startswith("text-embedding-3")
    ):
        raise EmbeddingProblem("This model does not support specifying dimensions.", "dimensions")
    return texts


def openai_answer(body: dict[str, Any], default_dims: int) -> dict[str, Any]:
    """The answer to a valid ``/v1/embeddings`` body."""
    texts = openai_inputs(body)
    model = body["model"]
    dims = body.get("dimensions") or OPENAI_DIMS.get(model, default_dims)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = fake_vector(text, dims)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": base64_floats(vector) if as_base64 else vector,
            }
        )
    count = tokens(texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


# --- Gemini ------------------------------------------------------------------------------------
def gemini_texts(requests: Any, model: str) -> list[tuple[str, int | None]]:
    """(text, outputDimensionality) per request of a ``batchEmbedContents`` body."""
    if not isinstance(requests, list) or not requests:
        raise EmbeddingProblem("* BatchEmbedContentsRequest.requests: must not be empty")
    if len(requests) > GEMINI_BATCH_LIMIT:
        raise EmbeddingProblem(
            f"* BatchEmbedContentsRequest.requests: at most {GEMINI_BATCH_LIMIT} requests can "
            "be in one batch"
        )
    found = []
    for i, request in enumerate(requests):
        if not isinstance(request, dict) or request.get("model") != f"models/{model}":
            raise EmbeddingProblem(
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be "
                f"models/{model}, the model of the batch"
            )
        found.append(gemini_text(request, f"requests[{i}]"))
    return found


def gemini_text(request: Any, where: str) -> tuple[str, int | None]:
    content = request.get("content") if isinstance(request, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [p.get("text") for p in parts or () if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise EmbeddingProblem(f"* {where}.content: must have at least one non-empty text part")
    dims = request.get("outputDimensionality")
    if dims is not None and (not isinstance(dims, int) or dims < 1):
        raise EmbeddingProblem(f"* {where}.output_dimensionality: must be positive")
    return " ".join(texts), dims


# --- Ollama ------------------------------------------------------------------------------------
def ollama_answer(body: Any, model: str, default_dims: int) -> dict[str, Any]:
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise EmbeddingProblem("invalid input type")
    dims = body.get("dimensions") or default_dims
    return {
        "model": model,
        "embeddings": [fake_vector(text, dims) for text in texts if text],
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": tokens([t for t in texts if t]),
    }
