"""``POST /v1/embeddings`` in OpenAI's shape, answered by ``Dispatcher.embed``.

Body: ``model``, ``input`` (a string or an array of strings; token-id arrays are refused: not
every vendor takes them), ``encoding_format`` (``float``, the API's default, or ``base64``:
little-endian float32, what the official SDK asks for unless told otherwise), ``dimensions``,
``user``; ``metadata`` (ours: routing rules, budgets, the ledger). Other fields are dropped.
The key's model allow-list, limits and budgets apply as for a chat; the answer is
``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
"usage": {"prompt_tokens", "total_tokens"}}``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from ..embeddings import EmbeddingRequest, EmbeddingResponse
from ..errors import DispatcherError
from ..vendors.openai_embeddings import base64_vector
from .errors import bad_request
from .relay import admit, json_response, key_tag, read_json
from .state import GATEWAY, TRACE, Trace
from .validation import (
    INTEGER,
    OBJECT,
    STRING,
    build_request,
    check_fields,
    check_model_name,
    require,
)

EMBEDDING_FIELDS = {
    "model": STRING,
    "input": ((str, list), "a string or an array of strings"),
    "encoding_format": STRING,
    "dimensions": INTEGER,
    "user": STRING,
    "metadata": OBJECT,
}
FORMATS = ("float", "base64")


def parse_embeddings(body: dict[str, Any], trace: Trace | None = None) -> EmbeddingRequest:
    """An embeddings body as an ``EmbeddingRequest``; ``ApiError(400)`` naming the field."""
    check_fields(body, EMBEDDING_FIELDS)
    require(body, "model", "the model to use")
    check_model_name(body["model"])
    require(body, "input", "the text to embed, or an array of texts")
    given = body["input"]
    if isinstance(given, list) and not all(isinstance(item, str) for item in given):
        raise bad_request("input", "send text: an array of strings (token arrays are not taken)")
    if body.get("encoding_format", "float") not in FORMATS:
        raise bad_request("encoding_format", "must be float or base64")
    metadata = body.get("metadata")
    return build_request(
        lambda: EmbeddingRequest(
            model=body["model"],
            input=given,
            dimensions=body.get("dimensions"),
            user=body.get("user"),
            metadata=key_tag(trace, metadata) if trace else metadata,
        )
    )


def embeddings_body(done: EmbeddingResponse, encoding: str) -> dict[str, Any]:
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64_vector(vector) if encoding == "base64" else vector,
        }
        for index, vector in enumerate(done.vectors)
    ]
    tokens = done.usage.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": done.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": done.usage.total_tokens or tokens},
    }


async def embeddings(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    asked = parse_embeddings(body, trace)
    # The key's allow-list, limits and pinned user/metadata, as for a chat request.
    admitted = await admit(gateway, trace, asked.routing_request())
    asked = replace(asked, user=admitted.user, metadata=admitted.metadata)
    try:
        done = await gateway.dispatcher.embed(asked)
    except DispatcherError as exc:
        trace.record_failure(exc)
        raise
    trace.vendor, trace.model = done.vendor, done.model
    trace.record_attempts(done.attempts)
    return json_response(embeddings_body(done, body.get("encoding_format", "float")))
