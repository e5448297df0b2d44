"""A strict fake of the Anthropic Messages API (``/v1/messages``, ``/v1/models``).

Wire format per the shared protocol reference vendors.md (sections 3 and 8), checked with the
official ``anthropic`` SDK 2.14 (tests/test_fake_anthropic_sdk.py). Usage::

    with FakeAnthropic(api_key="sk-ant-test-...") as fake:
        fake.enqueue(Reply(text="hi"), Fail("overloaded"))
        client = anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-test-...")

Auth: ``x-api-key`` or ``Authorization: Bearer`` (the SDK's); ``x-api-key`` wins when both are
sent. ``anthropic-version`` is required; on ``2026-10-21`` (the SDK's) ``temperature``,
``top_p`` and ``top_k`` are rejected, on older versions they are accepted. A ``system`` role in
``messages`` is rejected on older versions, as vendors.md documents; SDK 2.14 has a
``SystemMessageParam`` (text only), so it is accepted on ``2026-10-21``. Body validation (unknown
fields, roles, blocks, tool pairing, closed output schemas...) is in ``anthropic_validation``.

Fail kinds: rate_limit 429 ``rate_limit_error``; quota 402 ``billing_error`` (the documented
type; the SDK raises PaymentRequiredError); server 500 ``api_error``; overloaded 529
``overloaded_error``; auth 401 ``authentication_error``; bad_request 400 and context_length 400
``invalid_request_error`` ("prompt is too long: N tokens > M maximum" - Anthropic has no distinct
type for it); not_found 404 ``not_found_error``; timeout 408 ``timeout_error``; conflict 409
``conflict_error``. ``retry-after``/``retry-after-ms`` are sent only when scripted. A
MidStreamError of kind server or overloaded renders ``event: error`` with ``overloaded_error``.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.anthropic import AnthropicVendor
from llmdispatcher.vendors.base import Vendor

from .anthropic_validation import Problem, validate, validate_count
from .script import Fail, Reply, split_text
from .server import Call, FakeServer, Handler, StreamPlan

DEFAULT_MODELS = ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5-20251001")
VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# kind -> (status, error.type, message); "{model}" is filled in
FAILS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (org-fake) of 50 "
        "requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
        "You can see the response headers for current usage. Please reduce the prompt length or "
        "the maximum tokens requested, or try again later.",
    ),
    "quota": (
        402,
        "billing_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits.",
    ),
    "server": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "bad_request": (400, "invalid_request_error", "Invalid request (scripted by the fake)."),
    "not_found": (404, "not_found_error", "model: {model}"),
    "context_length": (
        400,
        "invalid_request_error",
        "prompt is too long: 210443 tokens > 200000 maximum",
    ),
    "timeout": (408, "timeout_error", "Request timed out"),
    "conflict": (409, "conflict_error", "Conflict"),
}
_ALNUM = string.ascii_letters + string.digits


def rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class FakeAnthropic(FakeServer):
    """Strict fake of ``api.anthropic.com`` Messages and Models."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        """``api_key=None`` accepts any key (a missing one is still 401)."""
        super().__init__(api_key=api_key, host=host)
        self.models = list(models)

    # ------------------------------------------------------------------------------ routing
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._list,
        }

    def match(self, method: str, path: str) -> Handler | None:
        if method == "GET" and path.startswith("/v1/models/"):
            return self._model
        return super().match(method, path)

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return self.error(call, 404, "not_found_error", "Not Found")

    def response_headers(self, call: Call) -> dict[str, str]:
        headers = {"request-id": self._request_id(call), "anthropic-organization-id": "org-fake"}
        if call.request.path == "/v1/messages":
            limited = call.meta.get("fail") == "rate_limit"
            reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for kind, limit in (("requests", 50), ("tokens", 80000)):
                for sub in ("", "input-", "output-") if kind == "tokens" else ("",):
                    prefix = f"anthropic-ratelimit-{sub}{kind}"
                    headers[f"{prefix}-limit"] = str(limit)
                    headers[f"{prefix}-remaining"] = "0" if limited else str(limit - 1)
                    headers[f"{prefix}-reset"] = reset
        return headers

    @staticmethod
    def _request_id(call: Call) -> str:
        rid: str = call.meta.setdefault("request_id", "req_011C" + rand(20))
        return rid

    # ----------------------------------------------------------------------------- handlers
    def error(self, call: Call, status: int, type_: str, message: str) -> web.Response:
        body = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": self._request_id(call),
        }
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    def _auth(self, call: Call) -> web.Response | None:
        headers = call.request.headers
        key = headers.get("x-api-key", "").strip()
        if not key:  # only without x-api-key does Authorization count
            scheme, _, bearer = headers.get("Authorization", "").partition(" ")
            key = bearer.strip() if scheme.lower() == "bearer" else ""
        if not key:
            return self.error(call, 401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return self.error(call, 401, "authentication_error", "invalid x-api-key")
        version = headers.get("anthropic-version")
        if not version:
            msg = "anthropic-version: header is required"
            return self.error(call, 400, "invalid_request_error", msg)
        if version not in VERSIONS:
            msg = f"anthropic-version: invalid version {version!r}"
            return self.error(call, 400, "invalid_request_error", msg)
        call.meta["version"] = version
        return None

    async def _messages(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = body.get("model")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate(call.body if call.json_ok else None, call.meta["version"])
        except Problem as p:
            return self.error(call, 400, "invalid_request_error", p.message)
        call.stream = body.get("stream") is True
        call.meta["id"] = "msg_01" + rand(22)
        return await self.run_step(call)

    async def _count_tokens(self, call: Call) -> web.StreamResponse:
        """``{"input_tokens": N}``, N a stand-in count: one per 4 bytes of the prompt."""
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate_count(call.body if call.json_ok else None, call.meta["version"])
        except Problem as p:
            return self.error(call, 400, "invalid_request_error", p.message)
        prompt = {k: v for k, v in call.body.items() if k != "model"}
        tokens = max(1, len(orjson.dumps(prompt)) // 4)
        return web.json_response({"input_tokens": tokens})

    async def _list(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        query, names = call.request.query, self.models
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
        if not 1 <= limit <= 1000 or query.get("limit", "20") != str(limit):
            msg = "limit: Input should be greater than or equal to 1 and less than or equal to 1000"
            return self.error(call, 400, "invalid_request_error", msg)
        if query.get("before_id") in names:  # the page just before before_id
            stop = names.index(query["before_id"])
            first = max(0, stop - limit)
            has_more = first > 0
        else:
            after = query.get("after_id")
            first = names.index(after) + 1 if after in names else 0
            stop = first + limit
            has_more = stop < len(names)
        page = [self._model_obj(m) for m in names[first:stop]]
        body = {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _model(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        name = call.request.path.removeprefix("/v1/models/")
        if name not in self.models:
            return self.error(call, 404, "not_found_error", f"model: {name}")
        return web.Response(
            body=orjson.dumps(self._model_obj(name)), content_type="application/json"
        )

    @staticmethod
    def _model_obj(name: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": name,
            "display_name": name.replace("-", " ").title(),
            "created_at": "2025-09-29T00:00:00Z",
            "lifecycle": "active",
            "max_input_tokens": 200000,
            "max_tokens": 64000,
        }

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, type_, message = FAILS[fail.kind]
        model = str(call.meta.get("model") or "claude-sonnet-4-6")
        call.meta["fail"] = fail.kind
        resp = self.error(
            call, fail.status or status, type_, fail.message or message.format(model=model)
        )
        if fail.retry_after is not None:
            resp.headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        _, type_, message = FAILS["overloaded" if kind == "server" else kind]
        error = {"type": type_, "message": message.format(model=call.meta.get("model"))}
        return sse("error", {"type": "error", "error": error, "request_id": self._request_id(call)})

    def _tool_blocks(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        """Stable ids for ``reply``'s tool calls (the same in every frame)."""
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            call.meta[key] = [
                {
                    "type": "tool_use",
                    "id": "toolu_01" + rand(22),
                    "name": tc.name,
                    "input": tc.arguments,
                }
                for tc in reply.tool_calls
            ]
        blocks: list[dict[str, Any]] = call.meta[key]
        return blocks

    @staticmethod
    def _usage(reply: Reply, output_tokens: int | None = None) -> dict[str, Any]:
        """Reply counts are OpenAI-style (prompt includes cached); Anthropic's input does not."""
        usage: dict[str, Any] = {
            "input_tokens": reply.prompt_tokens - reply.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": reply.completion_tokens if output_tokens is None else output_tokens,
        }
        if reply.reasoning_tokens and output_tokens is None:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        return usage

    def _message(
        self,
        call: Call,
        content: list[dict[str, Any]],
        stop: tuple[str | None, str | None],
        usage: dict[str, Any],
    ) -> dict[str, Any]:
        """``stop``: (stop_reason, stop_sequence)."""
        return {
            "id": call.meta["id"],
            "type": "message",
            "role": "assistant",
            "model": call.meta["model"],
            "content": content,
            "stop_reason": stop[0],
            "stop_sequence": stop[1],
            "usage": usage | {"service_tier": "standard"},
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        content = [{"type": "text", "text": reply.text}] if reply.text else []
        content += self._tool_blocks(call, reply)
        body = self._message(call, content, _stop(reply), self._usage(reply))
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        """Frames that give the client a text or tool piece are ``content``; the events with
        nothing to show (block starts/stops, ping, an empty ``partial_json``) ride along with
        the next such frame, or go to the tail."""
        start = self._message(call, [], (None, None), self._usage(reply, output_tokens=1))
        plan = StreamPlan(head=[sse("message_start", {"type": "message_start", "message": start})])
        pending: list[bytes] = []
        index = 0

        def block(kind: str, **data: Any) -> bytes:
            return sse(kind, {"type": kind, "index": index, **data})

        def show(frame: bytes) -> None:
            plan.content.append(b"".join([*pending, frame]))
            pending.clear()

        calls = self._tool_blocks(call, reply)
        if reply.text or not calls:
            pending += [block("content_block_start", content_block={"type": "text", "text": ""})]
        pending.append(sse("ping", {"type": "ping"}))
        for piece in reply.text_pieces():
            show(block("content_block_delta", delta={"type": "text_delta", "text": piece}))
        if reply.text or not calls:
            pending.append(block("content_block_stop"))
            index += 1
        for tc in calls:
            show(block("content_block_start", content_block={**tc, "input": {}}))
            pending.append(
                block("content_block_delta", delta={"type": "input_json_delta", "partial_json": ""})
            )
            args = orjson.dumps(tc["input"]).decode() if tc["input"] else ""
            for piece in split_text(args, reply.chunk_size):
                show(
                    block(
                        "content_block_delta",
                        delta={"type": "input_json_delta", "partial_json": piece},
                    )
                )
            pending.append(block("content_block_stop"))
            index += 1
        usage = self._usage(reply)
        reason, sequence = _stop(reply)
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        plan.tail = [
            *pending,
            sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            sse("message_stop", {"type": "message_stop"}),
        ]
        return plan


def _stop(reply: Reply) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): a matched stop sequence is named, as the API does."""
    if reply.stop_sequence is not None:
        return "stop_sequence", reply.stop_sequence
    return STOP_REASONS[reply.finish], None


def adapter_for(fake: FakeAnthropic, **kwargs: Any) -> Vendor:
    """Our AnthropicVendor pointed at ``fake``, with the fake's key (any key if it takes any)."""
    return AnthropicVendor(api_key=fake.api_key or "sk-ant-any-key", base_url=fake.url, **kwargs)
