"""The OpenAPI 3.1 document of the whole gateway API (``GET /openapi.json``), built once per app.

Request schemas say what the gateway validates (so a fuzzer's "valid" bodies are valid), not
every field the upstream APIs know; fields outside them are accepted and dropped (see
``openai_api`` and ``anthropic_api``).
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .validation import MAX_MODEL_NAME

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
# validation.check_model_name: /-separated parts of letters, digits and . _ : @ + -
MODEL_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_MODEL_NAME,
    "pattern": r"^[A-Za-z0-9._:@+\-]+(/[A-Za-z0-9._:@+\-]+)*$",
}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items:
        schema["minItems"] = min_items
    return schema


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


TOOL_CALL = obj(
    {
        "id": STRING,
        "type": {"const": "function"},
        "function": obj({"name": STRING, "arguments": STRING}, ("name", "arguments")),
    },
    ("id", "type", "function"),
)
CONTENT_PART: Schema = {
    "oneOf": [
        obj({"type": {"const": "text"}, "text": STRING}, ("type", "text")),
        obj(
            {"type": {"const": "image_url"}, "image_url": obj({"url": NON_EMPTY}, ("url",))},
            ("type", "image_url"),
        ),
    ]
}
CHAT_MESSAGE = obj(
    {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": nullable({"anyOf": [STRING, array(CONTENT_PART)]}),
        "name": STRING,
        "tool_calls": array(TOOL_CALL),
        "tool_call_id": STRING,
    },
    ("role",),
)
TOOL = obj(
    {
        "type": {"const": "function"},
        "function": obj(
            {"name": NON_EMPTY, "description": STRING, "parameters": OBJECT, "strict": BOOLEAN},
            ("name",),
        ),
    },
    ("type", "function"),
)
CHAT_REQUEST = obj(
    {
        "model": MODEL_NAME,
        "messages": array(CHAT_MESSAGE, 1),
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "stop": {"anyOf": [STRING, array(STRING)]},
        "tools": array(TOOL, 1),
        "response_format": obj({"type": {"enum": ["text", "json_object", "json_schema"]}}),
        "user": STRING,
        "metadata": OBJECT,
        "stream": BOOLEAN,
        "stream_options": obj({"include_usage": BOOLEAN}),
        "n": {"const": 1},
        "seed": INTEGER,
    },
    ("model", "messages"),
)
SEED_CHAT_REQUEST: Schema = {
    "allOf": [
        CHAT_REQUEST,
        obj({"vendor": STRING, "timeout": {"type": "number", "minimum": 1, "maximum": 600}}),
    ]
}
USAGE = obj({"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER})
CHAT_COMPLETION = obj(
    {
        "id": STRING,
        "object": {"const": "chat.completion"},
        "created": INTEGER,
        "model": STRING,
        "choices": array(
            obj(
                {
                    "index": INTEGER,
                    "message": obj({"role": STRING, "content": nullable(STRING)}),
                    "finish_reason": STRING,
                }
            )
        ),
        "usage": USAGE,
    },
    ("id", "object", "model", "choices"),
)
ANTHROPIC_BLOCK: Schema = {
    "oneOf": [
        obj({"type": {"const": "text"}, "text": STRING}, ("type", "text")),
        obj(
            {"type": {"const": "tool_use"}, "id": STRING, "name": STRING, "input": OBJECT},
            ("type", "id", "name", "input"),
        ),
        obj(
            {"type": {"const": "tool_result"}, "tool_use_id": NON_EMPTY, "content": STRING},
            ("type", "tool_use_id"),
        ),
    ]
}
MESSAGES_REQUEST = obj(
    {
        "model": MODEL_NAME,
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": array(
            obj(
                {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"anyOf": [STRING, array(ANTHROPIC_BLOCK)]},
                },
                ("role", "content"),
            ),
            1,
        ),
        "system": {"anyOf": [STRING, array(obj({"type": {"const": "text"}, "text": STRING}))]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop_sequences": array(STRING),
        "tools": array(
            obj(
                {
                    "name": NON_EMPTY,
                    "description": STRING,
                    "input_schema": OBJECT,
                    "strict": BOOLEAN,
                },
                ("name",),
            )
        ),
        "tool_choice": obj(
            {"type": {"enum": ["auto", "any", "none"]}, "disable_parallel_tool_use": BOOLEAN},
            ("type",),
        ),
        "metadata": obj({"user_id": STRING}),
        "stream": BOOLEAN,
    },
    ("model", "max_tokens", "messages"),
)
ANTHROPIC_MESSAGE = obj(
    {
        "id": STRING,
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": STRING,
        "content": array(OBJECT),
        "stop_reason": nullable(STRING),
        "usage": obj({"input_tokens": INTEGER, "output_tokens": INTEGER}),
    },
    ("id", "type", "role", "content"),
)
OPENAI_ERROR = obj(
    {
        "error": obj(
            {
                "message": STRING,
                "type": STRING,
                "param": nullable(STRING),
                "code": nullable(STRING),
            },
            ("message", "type"),
        )
    },
    ("error",),
)
ANTHROPIC_ERROR = obj(
    {
        "type": {"const": "error"},
        "error": obj({"type": STRING, "message": STRING}, ("type", "message")),
        "request_id": STRING,
    },
    ("type", "error"),
)
EMBEDDING_REQUEST = obj(
    {
        "model": MODEL_NAME,
        "input": {"anyOf": [NON_EMPTY, array(NON_EMPTY, min_items=1)]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": STRING,
        "metadata": OBJECT,
    },
    ("model", "input"),
)
EMBEDDING_LIST = obj(
    {
        "object": {"const": "list"},
        "data": array(
            obj(
                {
                    "object": {"const": "embedding"},
                    "index": INTEGER,
                    "embedding": {"anyOf": [array({"type": "number"}), STRING]},
                },
                ("object", "index", "embedding"),
            )
        ),
        "model": STRING,
        "usage": obj({"prompt_tokens": INTEGER, "total_tokens": INTEGER}),
    },
    ("object", "data", "model", "usage"),
)
COUNTED = ("model", "messages", "system", "tools", "tool_choice")  # count_tokens' fields
SCHEMAS: dict[str, Schema] = {
    "ChatCompletionRequest": CHAT_REQUEST,
    "ChatCompletion": CHAT_COMPLETION,
    "EmbeddingRequest": EMBEDDING_REQUEST,
    "EmbeddingList": EMBEDDING_LIST,
    "SeedChatRequest": SEED_CHAT_REQUEST,
    "MessagesRequest": MESSAGES_REQUEST,
    "Message": ANTHROPIC_MESSAGE,
    "Error": OPENAI_ERROR,
    "AnthropicError": ANTHROPIC_ERROR,
    "CountTokensRequest": obj(
        {k: v for k, v in MESSAGES_REQUEST["properties"].items() if k in COUNTED},
        ("model", "messages"),
    ),
    "TokenCount": obj({"input_tokens": INTEGER}, ("input_tokens",)),
    "Model": obj({"id": STRING, "object": {"const": "model"}, "owned_by": STRING}),
    "ModelList": obj(
        {"object": {"const": "list"}, "data": array(obj({"id": STRING, "owned_by": STRING}))}
    ),
    "Health": obj({"status": STRING, "version": STRING, "uptime_s": NUMBER}),
    "DispatcherResponse": obj(
        {"content": STRING, "vendor": STRING, "model": STRING, "attempts": array(OBJECT)}
    ),
    "TestVendorRequest": obj({"vendor": NON_EMPTY, "model": MODEL_NAME}, ("vendor",)),
    "TestVendorResult": obj(
        {"vendor": STRING, "ok": BOOLEAN, "reachable": BOOLEAN, "latency_ms": NUMBER}
    ),
    "Stats": obj({"total_requests": INTEGER, "vendor_stats": OBJECT, "workers": INTEGER}),
    "Vendors": obj({"vendors": array(obj({"name": STRING, "health": OBJECT}))}),
    "RoutePlan": obj({"model": STRING, "vendors": array(STRING), "reason": STRING}),
}
ERROR_STATUSES = ("400", "401", "403", "404", "408", "413", "415", "421", "429", "502", "503",
                  "504")  # fmt: skip
SSE = {"text/event-stream": {"schema": STRING}}

# --- the admin API (admin_api.py) ------------------------------------------------------------
POSITIVE = {"type": "integer", "minimum": 1, "maximum": 10**9}
NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
MONEY = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, STRING]}
PERIOD = {"enum": ["day", "month", "total"]}
KEY_FIELDS: dict[str, Schema] = {
    "team": nullable(NAME),
    "models": array(NON_EMPTY, 1),
    "rpm": nullable(POSITIVE),
    "tpm": nullable(POSITIVE),
    "max_concurrency": nullable(POSITIVE),
    "budget_usd": nullable(MONEY),
    "budget_period": PERIOD,
    "expires_at": nullable(STRING),
    "expires_in": nullable(STRING),
    "metadata": OBJECT,
}
KEY = obj(
    {"id": STRING, "name": STRING, "prefix": STRING, **KEY_FIELDS, "created_at": STRING,
     "revoked_at": nullable(STRING), "usage": OBJECT, "key": STRING},
    ("id", "name", "prefix"),
)  # fmt: skip
ADMIN_SCHEMAS: dict[str, Schema] = {
    "KeyCreate": obj({"name": NAME, **KEY_FIELDS}, ("name",)),
    "KeyUpdate": obj(KEY_FIELDS),
    "Key": KEY,
    "KeyList": obj({"object": {"const": "list"}, "data": array(KEY)}),
    "TeamBudget": obj({"budget_usd": nullable(MONEY), "budget_period": PERIOD}, ("budget_usd",)),
    "Team": obj({"name": STRING, "budget_usd": nullable(STRING), "budget_period": STRING}),
    "TeamList": obj({"object": {"const": "list"}, "data": array(OBJECT)}),
    "AuditList": obj({"object": {"const": "list"}, "data": array(OBJECT)}),
}
ADMIN_ERRORS = ("401", "403", "404", "409", "413", "415", "422", "429")
ID = {"name": "id", "in": "path", "required": True, "schema": STRING}
TEAM = {"name": "name", "in": "path", "required": True, "schema": NAME}
# path -> method -> (summary, ok status, response schema, request schema, parameters)
ADMIN_OPERATIONS: dict[str, dict[str, tuple[str, str, str, str | None, list[Schema]]]] = {
    "/admin/v1/keys": {
        "post": ("Create a key; the answer holds it, this once", "201", "Key", "KeyCreate", []),
        "get": ("List keys (no secrets)", "200", "KeyList", None, [
            {"name": "team", "in": "query", "schema": STRING},
            {"name": "revoked", "in": "query", "schema": {"enum": ["true", "false"]}},
        ]),
    },
    "/admin/v1/keys/{id}": {
        "get": ("A key with its use in the current budget period", "200", "Key", None, [ID]),
        "patch": ("Change a key's limits, models, budget, expiry or metadata", "200", "Key",
                  "KeyUpdate", [ID]),
        "delete": ("Revoke a key (idempotent)", "200", "Key", None, [ID]),
    },
    "/admin/v1/teams/{name}": {
        "put": ("Set or remove a team's shared budget", "200", "Team", "TeamBudget", [TEAM]),
    },
    "/admin/v1/teams": {"get": ("Teams with a budget", "200", "TeamList", None, [])},
    "/admin/v1/audit": {
        "get": ("Every admin action, newest first", "200", "AuditList", None, [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                         "maximum": 1000}},
        ]),
    },
}  # fmt: skip


def _admin_op(
    summary: str, ok: str, result: str, body: str | None, parameters: list[Schema]
) -> Schema:
    error = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
    op: Schema = {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"admin": []}],
        "responses": {
            ok: {"description": "ok", "content": {"application/json": {"schema": ref(result)}}},
            **dict.fromkeys(ADMIN_ERRORS, error),
        },
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


def _op(
    summary: str,
    result: str,
    body: str | None = None,
    *,
    sse: bool = False,
    error: str = "Error",
    secured: bool = True,
    path: str | None = None,
) -> Schema:
    content: dict[str, Any] = {"application/json": {"schema": ref(result)}}
    if sse:
        content.update(SSE)
    errors = {s: {"description": "error", "content": {"application/json": {"schema": ref(error)}}}
              for s in ERROR_STATUSES}  # fmt: skip
    op: Schema = {
        "summary": summary,
        "responses": {"200": {"description": "ok", "content": content}, **errors},
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    if not secured:
        op["security"] = []
    if path is not None:
        op["parameters"] = [{"name": path, "in": "path", "required": True, "schema": MODEL_NAME}]
    return op


# path -> (method, summary, response schema, request schema, options)
OPERATIONS: tuple[tuple[str, str, str, str, str | None, dict[str, Any]], ...] = (
    ("/v1/chat/completions", "post", "OpenAI-compatible chat completion (SSE when stream is "
     "true)", "ChatCompletion", "ChatCompletionRequest", {"sse": True}),
    ("/v1/embeddings", "post", "OpenAI-compatible embeddings (float or base64)",
     "EmbeddingList", "EmbeddingRequest", {}),
    ("/v1/models", "get", "The models the gateway serves", "ModelList", None, {}),
    ("/v1/models/{model}", "get", "One model the gateway serves", "Model", None,
     {"path": "model"}),
    ("/v1/messages", "post", "Anthropic-compatible Messages (SSE when stream is true)",
     "Message", "MessagesRequest", {"sse": True, "error": "AnthropicError"}),
    ("/v1/messages/count_tokens", "post", "Anthropic-compatible token count (Anthropic's, or "
     "an estimate: header x-llmdispatcher-token-count)", "TokenCount", "CountTokensRequest",
     {"error": "AnthropicError"}),
    ("/api/v1/health", "get", "Liveness", "Health", None, {"secured": False}),
    ("/api/v1/chat/completions", "post", "Chat, answered as the dispatcher's Response",
     "DispatcherResponse", "SeedChatRequest", {}),
    ("/api/v1/chat/completions/stream", "post", "Chat as SSE, one StreamChunk per event",
     "DispatcherResponse", "SeedChatRequest", {"sse": True}),
    ("/api/v1/test/vendor", "post", "Check one vendor live", "TestVendorResult",
     "TestVendorRequest", {}),
    ("/api/v1/stats", "get", "In-memory statistics of all the workers", "Stats", None, {}),
    ("/api/v1/vendors", "get", "Vendors with health and breaker state", "Vendors", None, {}),
    ("/api/v1/routing/explain", "post", "The route a request would take; nothing is sent",
     "RoutePlan", "SeedChatRequest", {}),
)  # fmt: skip
METRICS_PATH = {
    "get": {
        "summary": "Prometheus metrics",
        "responses": {"200": {"description": "ok", "content": {"text/plain": {"schema": STRING}}}},
    }
}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        path: {method: _op(summary, result, body, **options)}
        for path, method, summary, result, body, options in OPERATIONS
    }
    admin = {
        path: {method: _admin_op(*spec) for method, spec in methods.items()}
        for path, methods in ADMIN_OPERATIONS.items()
    }
    admin["/admin/v1/keys"]["post"]["responses"]["201"]["links"] = KEY_LINKS
    return {**paths, "/metrics": METRICS_PATH, **admin}


# A created key's id leads to reading, changing and revoking it: the links that let a stateful
# test (schemathesis' stateful phase) chain create -> show/update/revoke -> show.
_KEY_PATH = "#/paths/~1admin~1v1~1keys~1{id}/"
KEY_LINKS = {
    f"{verb}Key": {"operationRef": _KEY_PATH + method, "parameters": {"id": "$response.body#/id"}}
    for verb, method in (("Show", "get"), ("Update", "patch"), ("Revoke", "delete"))
}


def openapi_document() -> Schema:
    from . import openapi_responses as responses  # it builds on this module

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmdispatcher gateway",
            "version": __version__,
            "description": "OpenAI- and Anthropic-compatible LLM gateway with routing, retries, "
            "fallbacks and metrics.",
        },
        "components": {
            "schemas": {**SCHEMAS, **ADMIN_SCHEMAS, **responses.SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin key"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{"bearer": []}],
        "paths": {**_paths(), **responses.paths(_op)},
    }
