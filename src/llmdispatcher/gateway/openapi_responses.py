"""The Responses API's part of the OpenAPI document (``openapi.py`` adds it): what
``responses_input`` validates, so a fuzzer's "valid" bodies are valid."""

from __future__ import annotations

from collections.abc import Callable

from .openapi import (
    BOOLEAN,
    INTEGER,
    MODEL_NAME,
    NON_EMPTY,
    OBJECT,
    STRING,
    Schema,
    array,
    obj,
)

CONTENT_PART = obj(
    {"type": {"enum": ["input_text", "output_text", "input_image"]}, "text": STRING,
     "image_url": NON_EMPTY, "detail": {"enum": ["auto", "low", "high", "original"]}},
    ("type",),
)  # fmt: skip
INPUT_ITEM = obj(
    {
        "type": {"enum": ["message", "function_call", "function_call_output"]},
        "role": {"enum": ["user", "system", "developer", "assistant"]},
        "content": {"anyOf": [STRING, array(CONTENT_PART)]},
        "call_id": NON_EMPTY,
        "name": NON_EMPTY,
        "arguments": STRING,
        "output": STRING,
    }
)
FUNCTION_TOOL = obj(
    {"type": {"const": "function"}, "name": NON_EMPTY, "description": STRING,
     "parameters": OBJECT},
    ("type", "name"),
)  # fmt: skip
SCHEMAS: dict[str, Schema] = {
    "ResponseCreateRequest": obj(
        {
            "model": MODEL_NAME,
            "input": {"anyOf": [NON_EMPTY, array(INPUT_ITEM, 1)]},
            "instructions": STRING,
            "tools": array(FUNCTION_TOOL, 1),
            "max_output_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "text": obj({"format": obj({"type": {"enum": ["text", "json_object"]}})}),
            "metadata": OBJECT,
            "user": STRING,
            "parallel_tool_calls": BOOLEAN,
            "store": BOOLEAN,
            "previous_response_id": STRING,
            "stream": BOOLEAN,
        },
        ("model", "input"),
    ),
    "ResponseObject": obj(
        {
            "id": STRING,
            "object": {"const": "response"},
            "created_at": INTEGER,
            "status": STRING,
            "model": STRING,
            "output": array(OBJECT),
        }
    ),
    "ResponseDeleted": obj({"id": STRING, "object": STRING, "deleted": BOOLEAN}),
    "ResponseInputItems": obj(
        {"object": {"const": "list"}, "data": array(OBJECT), "has_more": BOOLEAN}
    ),
}
ID = {"name": "id", "in": "path", "required": True, "schema": NON_EMPTY}
QUERY = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
    {"name": "after", "in": "query", "schema": STRING},
]


def paths(op: Callable[..., Schema]) -> dict[str, Schema]:
    """The operations, each built by ``openapi``'s ``op(summary, result, body, **options)``."""

    def with_params(schema: Schema, *params: Schema) -> Schema:
        return {**schema, "parameters": list(params)}

    one = "/v1/responses/{id}"
    return {
        "/v1/responses": {
            "post": op(
                "OpenAI Responses API on any vendor (SSE when stream is true)",
                "ResponseObject",
                "ResponseCreateRequest",
                sse=True,
            )
        },
        one: {
            "get": with_params(op("A stored response", "ResponseObject"), ID),
            "delete": with_params(op("Delete a stored response", "ResponseDeleted"), ID),
        },
        f"{one}/input_items": {
            "get": with_params(
                op("A stored response's input items", "ResponseInputItems"), ID, *QUERY
            )
        },
    }
