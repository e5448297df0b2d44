"""OpenAI's embeddings wire format (``POST /v1/embeddings``), shared by every vendor that
speaks it: OpenAI, Azure OpenAI, llama.cpp's server and OpenAI-compatible hosts.

We ask for ``encoding_format: "float"``: every compatible server knows it, while ``base64`` (the
official SDK's default, smaller on the wire) is not understood by all of them.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from ..embeddings import EmbeddingRequest, Embeddings
from ..types import Usage
from .http_vendor import count

# OpenAI's documented limit on inputs per request.
BATCH_LIMIT = 2048


def embedding_body(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "input": list(request.inputs),
        "encoding_format": "float",
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def embeddings_from_openai(data: Any, model: str) -> Embeddings:
    """The vectors in input order (``data[i].index`` is the input's position: sorted on it)."""
    items = sorted(data["data"], key=lambda item: int(item["index"]))
    usage = data.get("usage") or {}
    tokens = count(usage.get("prompt_tokens"))
    return Embeddings(
        vectors=[vector_from(item["embedding"]) for item in items],
        model=data.get("model") or model,
        usage=Usage(tokens, 0, count(usage.get("total_tokens")) or tokens) if tokens else None,
    )


def vector_from(value: Any) -> list[float]:
    """A float list, or a base64 string of little-endian float32 (what some servers send)."""
    if isinstance(value, str):
        raw = base64.b64decode(value, validate=True)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not all(isinstance(x, int | float) for x in value):
        raise TypeError("an embedding is not a list of numbers")
    return [float(x) for x in value]


def base64_vector(vector: list[float]) -> str:
    """``vector`` as OpenAI's ``encoding_format: "base64"``: packed little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
