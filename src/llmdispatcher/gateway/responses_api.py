"""OpenAI's Responses API on every vendor: ``POST /v1/responses`` (JSON and the typed SSE
stream), ``GET`` and ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``.

A body is translated to our ``Request`` (``responses_input``) and goes through the dispatcher
like a chat completion: routing, retries, fallbacks, limits, budgets, cost, the ledger. The
answer is rendered back as a response object or its event stream (``responses_output``); a
stream that fails before its first token gets a real HTTP error status (``relay.open_stream``).

``store`` (default true, as OpenAI) keeps the answer and the conversation through it in the
key store's database (``keys.responses``), for ``previous_response_id`` and the ``GET`` and
``DELETE`` endpoints, scoped to the key that made it (another key gets a 404, as for an id that
does not exist) and kept ``gateway.responses_retention_s``. A gateway without a key store keeps
them in memory.

Hosted tools (``web_search``, ``file_search``, computer use...) run only on OpenAI's own
Responses API: they are refused with a 400 naming the tool unless every vendor the request may
reach is an OpenAI vendor with ``api="responses"``, which receives them as they were given.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from aiohttp import web

from ..keys import KeyStore as StoredKeyStore
from ..keys.responses import ResponseStore, StoredResponse, open_response_store
from ..types import Request, StreamChunk
from ..vendors.openai import OpenAIVendor
from .auth import ApiKey
from .errors import ApiError, bad_request
from .relay import OpenedStream, json_response, key_tag, open_stream, read_json, relay, send
from .responses_input import (
    Item,
    ResponsesCall,
    build_request,
    check_body,
    check_calls_answered,
    new_id,
    parse_items,
    split_tools,
    to_messages,
)
from .responses_output import ResponseHead, ResponsesStreamEncoder, response_body
from .state import GATEWAY, TRACE, Gateway, Trace

STORE = web.AppKey("responses", ResponseStore)
MEMORY = "sqlite:///:memory:"


def add_routes(app: web.Application, key_store: StoredKeyStore | None) -> None:
    """The routes, and the store: the key store's database, else one in memory."""
    retention = app[GATEWAY].settings.responses_retention_s
    if key_store is None:
        store = open_response_store(MEMORY, retention)

        async def lifetime(_app: web.Application) -> AsyncGenerator[None, None]:
            yield
            await store.aclose()

        app.cleanup_ctx.append(lifetime)
    else:  # closed with the key store (tenancy)
        store = ResponseStore(key_store.database, retention)
    app[STORE] = store
    app.router.add_post("/v1/responses", create)
    app.router.add_get("/v1/responses/{id}", retrieve)
    app.router.add_delete("/v1/responses/{id}", delete)
    app.router.add_get("/v1/responses/{id}/input_items", input_items)


def owner_of(key: ApiKey | None) -> str:
    """Whose stored responses these are: a stored key's id, a configured key's name."""
    if key is None:
        return "-"
    return key.id if key.id is not None else f"config:{key.name}"


# --- create -----------------------------------------------------------------------------------
async def create(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    store = request.app[STORE]
    body = await read_json(request, gateway)
    check_body(body)
    context = await _previous(store, body.get("previous_response_id"), owner_of(trace.key))
    call = _parse(gateway, trace, body, context)
    head = ResponseHead(new_id("resp_"), call.request.model, call.echo)
    save = _saver(store, owner_of(trace.key), head.id, call.input_items, context)
    if call.stream:
        opened = await open_stream(gateway, trace, call.request)
        head.model = opened.first.model or head.model
        encoder = ResponsesStreamEncoder(head)
        if call.store:
            rest = _then(opened.rest, lambda: save(encoder.final()))
            opened = OpenedStream(opened.first, rest)
        return await relay(request, opened, encoder)
    response = await send(gateway, trace, call.request)
    head.model = response.model
    out = response_body(head, response)
    if call.store:
        await save(out)
    return json_response(out)


async def _previous(store: ResponseStore, previous: str | None, owner: str) -> list[Item]:
    if previous is None:
        return []
    found = await store.get(previous, owner)
    if found is None:
        raise ApiError(
            404,
            f"Previous response with id '{previous[:80]}' not found (responses are kept "
            "for the key that created them, with store: true).",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return found.context


def _parse(
    gateway: Gateway, trace: Trace, body: dict[str, Any], context: list[Item]
) -> ResponsesCall:
    items = parse_items(body["input"])
    check_calls_answered(context, items)
    messages = to_messages(body.get("instructions"), [*context, *items])
    metadata = key_tag(trace, body.get("metadata"))
    request = build_request(body, messages, metadata)
    _, hosted = split_tools(body.get("tools"))
    extra = _openai_only(gateway, request, body, hosted)
    if extra:
        request = build_request(body, messages, metadata, extra)
    return ResponsesCall(
        request=request,
        input_items=items,
        stream=body.get("stream") is True,
        store=body.get("store") is not False,
        echo=_echo(body),
    )


def _openai_only(
    gateway: Gateway, request: Request, body: dict[str, Any], hosted: list[Item]
) -> dict[str, Any]:
    """The fields only OpenAI takes (hosted tools and their ``tool_choice``,
    ``parallel_tool_calls: false``), when every vendor the request may reach takes them."""
    choice = body.get("tool_choice")
    hosted_choice = isinstance(choice, dict) and choice.get("type") != "function"
    serial = body.get("parallel_tool_calls") is False
    if not hosted and not hosted_choice and not serial:
        return {}
    vendors = gateway.dispatcher.vendors
    reached = {name: vendors.get(name) for name in gateway.dispatcher.plan(request).vendors}
    extra: dict[str, Any] = {}
    if hosted or hosted_choice:
        for name, vendor in reached.items():
            if not (isinstance(vendor, OpenAIVendor) and vendor.api == "responses"):
                raise _hosted_refused(body, name)
        if hosted:
            extra["tools"] = hosted
        if choice is not None and (hosted_choice or request.tools is None):
            extra["tool_choice"] = choice  # (our Request has no tool_choice without functions)
    if serial and all(isinstance(vendor, OpenAIVendor) for vendor in reached.values()):
        extra["parallel_tool_calls"] = False
    return extra


def _hosted_refused(body: dict[str, Any], vendor: str) -> ApiError:
    tools = body.get("tools") or []
    index = next((i for i, t in enumerate(tools) if t.get("type") != "function"), None)
    where = f"tools[{index}]" if index is not None else "tool_choice"
    kind = tools[index]["type"] if index is not None else body["tool_choice"].get("type")
    return bad_request(
        where,
        f"the hosted tool {str(kind)[:40]!r} runs only on OpenAI's Responses API, and this "
        f"request may be answered by vendor {vendor!r}: give it as a function tool, or route "
        "the model to an OpenAI vendor with api: responses",
    )


def _echo(body: dict[str, Any]) -> Item:
    """The request settings a response object repeats."""
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "user": body.get("user"),
    }


def _saver(
    store: ResponseStore, owner: str, response_id: str, items: list[Item], context: list[Item]
) -> Callable[[Item], Awaitable[None]]:
    async def save(out: Item) -> None:
        answer = [_as_input(item) for item in out["output"]]
        stored = StoredResponse(
            response_id, owner, out["created_at"], out, items, [*context, *items, *answer]
        )
        await store.save(stored)

    return save


def _as_input(item: Item) -> Item:
    """An output item as the input item that repeats it in the next turn."""
    if item["type"] == "message":
        parts = [
            {"type": "output_text", "text": p["text"], "annotations": []} for p in item["content"]
        ]
        return {**item, "content": parts}
    return dict(item)


async def _then(
    chunks: AsyncGenerator[StreamChunk, None], after: Callable[[], Awaitable[None]]
) -> AsyncGenerator[StreamChunk, None]:
    """``chunks``, then ``after()`` once they all went through (not after a failure), before
    the stream's last event is written: a client that reads ``response.completed`` can
    continue from it at once."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()
    await after()


# --- stored responses -------------------------------------------------------------------------
async def _stored(request: web.Request) -> StoredResponse:
    response_id = request.match_info["id"]
    found = await request.app[STORE].get(response_id, owner_of(request[TRACE].key))
    if found is None:
        raise ApiError(
            404,
            f"No response with id '{response_id[:80]}' found.",
            param="response_id",
            code="not_found",
        )
    return found


async def retrieve(request: web.Request) -> web.StreamResponse:
    return json_response((await _stored(request)).body)


async def delete(request: web.Request) -> web.StreamResponse:
    found = await _stored(request)
    await request.app[STORE].delete(found.id, found.owner)
    return json_response({"id": found.id, "object": "response.deleted", "deleted": True})


async def input_items(request: web.Request) -> web.StreamResponse:
    """The items of the response's own request, paged as OpenAI does (``limit`` 1-100,
    default 20; ``order`` desc by default; ``after`` an item id)."""
    items = list((await _stored(request)).input_items)
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order", "expected asc or desc")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise bad_request("limit", "expected a whole number from 1 to 100")
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise bad_request("after", f"no input item with id {after[:80]!r} in this response")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
