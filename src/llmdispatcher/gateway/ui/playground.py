"""The Playground: a prompt to a model or group, the answer streamed back with where it went.

``POST /ui/playground/stream`` takes ``{"model", "prompt", "max_tokens"}`` (JSON, with the
CSRF header) and answers with the native API's SSE stream (``native_api.ChunkEncoder``),
through the same path as any chat request: a viewer's key decides which models it may use, its
limits and budgets count, and the request lands in the ledger and the statistics. The final
event also carries the routing decision and the gateway's time for the whole request; a last
``ledger`` event, once the request is done, its id in the ledger (what Requests links to).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from ...observability.ledger_detail import rule_name
from ...types import StreamChunk
from ..errors import ApiError, bad_request
from ..native_api import ChunkEncoder, parse_native_chat
from ..relay import open_stream, read_json, relay
from ..state import GATEWAY, TRACE, Gateway, Trace
from .app import SESSION, render
from .session import Session

MAX_PROMPT_CHARS = 32_000
MAX_TOKENS = 32_000


def add_routes(ui: web.Application) -> None:
    ui.router.add_get("/playground", page)
    ui.router.add_post("/playground/stream", stream)


def model_choices(gateway: Gateway) -> list[str]:
    """Model groups first, then the models of their deployments, then the local aliases."""
    config = gateway.dispatcher.config
    groups = [g.name for g in config.model_groups]
    models = sorted({d.model for g in config.model_groups for d in g.deployments} - set(groups))
    local = [
        alias
        for vendor in gateway.dispatcher.vendors.values()
        for alias in getattr(vendor, "served", ())  # an in-process model's names
        if alias not in groups and alias not in models
    ]
    return [*groups, *models, *sorted(set(local))]


async def page(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    return render(request, "playground.html", models=model_choices(gateway))


class PlaygroundEncoder(ChunkEncoder):
    """The native stream, and on the last chunk: routing, request id, seconds taken."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def chunk(self, chunk: StreamChunk) -> bytes:
        if chunk.finish_reason is None and chunk.routing is None:
            return super().chunk(chunk)
        data = orjson.loads(super().chunk(chunk).removeprefix(b"data: "))
        data["latency_s"] = round(time.perf_counter() - self.trace.started, 3)
        data["routing"] = routing_json(chunk.routing)
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def tail(self) -> bytes:
        ledger = orjson.dumps({"request_id": self.trace.ledger_id})
        return b"event: ledger\ndata: " + ledger + b"\n\n" + super().tail()


def routing_json(decision: Any) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "rule": rule_name(decision.rule),
        "strategy": decision.strategy,
        "group": decision.group,
        "reason": decision.reason,
        "candidates": [
            {"deployment": c.deployment.id, "score": c.score, "detail": c.detail}
            for c in decision.candidates
        ],
        "excluded": dict(decision.excluded),
        "attempts": [asdict(a) for a in decision.attempts],
    }


async def stream(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.config_dict[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    model, prompt = body.get("model"), body.get("prompt")
    if not isinstance(model, str) or not model:
        raise bad_request("model", "choose a model or group")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise bad_request("prompt", f"type a prompt (at most {MAX_PROMPT_CHARS} characters)")
    max_tokens = body.get("max_tokens", 256)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise bad_request("max_tokens", f"a whole number from 1 to {MAX_TOKENS}")
    trace.key = _viewer_key(gateway, request[SESSION])
    messages = [{"role": "user", "content": prompt}]
    chat = {"model": model, "messages": messages, "max_tokens": max_tokens}
    parsed = parse_native_chat(gateway, chat)
    opened = await open_stream(gateway, trace, parsed)
    return await relay(request, opened, PlaygroundEncoder(trace))


def _viewer_key(gateway: Gateway, session: Session) -> Any:
    """A viewer plays with its own key (its models, limits, budget); the admin with none."""
    if session.admin:
        return None
    cache = gateway.stored_keys
    stored = cache.active_key(session.subject) if cache is not None else None
    if stored is None:
        raise ApiError(401, "this viewer key is no longer valid: sign in again")
    from ..key_cache import api_key_of

    return api_key_of(stored)
