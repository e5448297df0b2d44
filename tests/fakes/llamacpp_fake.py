"""A fake of llama.cpp's ``llama-server`` (vendors.md §6), OpenAI-compatible but lenient.

What it mirrors (tools/server in ggml-org/llama.cpp): ``POST /v1/chat/completions`` (and
``/chat/completions``); ``model`` optional and echoed back (else the loaded model's alias);
unknown fields ignored; ``n != 1``, tools without ``--jinja`` and images without a multimodal
projector refused; no ``obfuscation``/``service_tier``/``refusal``; a build
``system_fingerprint``; ``timings`` on the response and on the last stream chunk; usage in a
stream only with ``stream_options.include_usage``; errors ``{"error":{"code":<int>,"message",
"type"}}``; ``GET /health`` (``{"status":"ok"}``) and ``GET /v1/models`` (both the Ollama-style
``models`` and OpenAI's ``data``); with ``api_key`` set, ``Authorization: Bearer`` or
``X-Api-Key`` required except on /health and /models; ``fake.loading = True`` answers every
route 503 ``unavailable_error`` "Loading model". Checked with ``openai.OpenAI``
(tests/test_fake_llamacpp_sdk.py).

llama-server has no rate limits, quotas, 408 or 409 of its own, and never says
``content_filter``: those script steps render as a proxy in front of it would pass them on (in
llama-server's error shape), and ``Reply(finish="content_filter")`` as ``stop``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from llmdispatcher.vendors.base import Vendor
from llmdispatcher.vendors.llamacpp import LlamaCppVendor

from .azure_fake import edit_frame
from .openai_fake import FakeOpenAI, choice_meta
from .script import Fail, Reply
from .server import Call, Handler, StreamPlan

DEFAULT_ALIAS = "qwen2.5-7b-instruct-q4_k_m"
BUILD = "b6500-5bb4a3ed"
PUBLIC = frozenset({"/health", "/v1/health", "/models", "/v1/models", "/"})
NO_MMPROJ = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
# kind -> (status, type, message); "{model}" is filled in
FAILS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "Too many requests, please retry later."),
    "quota": (429, "insufficient_quota", "The proxy's token quota is exhausted."),
    "server": (500, "server_error", "Internal error: failed to decode the batch"),
    "overloaded": (503, "unavailable_error", "Loading model"),
    "auth": (401, "authentication_error", "Invalid API Key"),
    "bad_request": (400, "invalid_request_error", "Invalid request (scripted by the fake)."),
    "not_found": (404, "not_found_error", "model '{model}' not found"),
    "context_length": (
        400,
        "exceed_context_size_error",
        "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
    ),
    "timeout": (408, "server_error", "Request timed out."),
    "conflict": (409, "server_error", "The slot is busy with another request."),
}


def error_body(status: int, type_: str, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "type": type_}
    if type_ == "exceed_context_size_error":
        error |= {"n_prompt_tokens": 5000, "n_ctx": 4096}
    return {"error": error}


class FakeLlamaServer(FakeOpenAI):
    """A llama-server with one loaded model (``alias``)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 4096,
        jinja: bool = True,
        multimodal: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        """``api_key=None`` is a server started without ``--api-key`` (no auth at all)."""
        super().__init__(api_key=api_key, models=[alias], host=host)
        self.alias = alias
        self.n_ctx = n_ctx
        self.jinja = jinja
        self.multimodal = multimodal
        self._initial = (jinja, multimodal)
        self.loading = False

    def reset(self) -> None:
        super().reset()
        self.jinja, self.multimodal = self._initial
        self.loading = False

    # ------------------------------------------------------------------------------ routing
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/chat/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/health"): self._health,
            ("GET", "/v1/health"): self._health,
            ("GET", "/v1/models"): self._models,
            ("GET", "/models"): self._models,
        }

    def match(self, method: str, path: str) -> Handler | None:
        if self.loading:  # the server's first middleware: nothing is served while loading
            return self._loading
        return self.routes().get((method, path))

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        denied = self._auth(call)
        return denied or self.error(call, 404, "File Not Found", "not_found_error")

    def response_headers(self, call: Call) -> dict[str, str]:
        return {"Server": "llama.cpp", "Access-Control-Allow-Origin": ""}

    # ----------------------------------------------------------------------------- handlers
    def error(
        self,
        call: Call,
        status: int,
        message: str,
        type_: str,
        param: str | None = None,
        code: str | None = None,
    ) -> web.Response:
        return web.json_response(error_body(status, type_, message), status=status)

    def _auth(self, call: Call) -> web.Response | None:
        if self.api_key is None or call.request.path in PUBLIC:
            return None
        sent = call.request.headers.get("Authorization", "") or call.request.headers.get(
            "X-Api-Key", ""
        )
        if sent.removeprefix("Bearer ") == self.api_key:
            return None
        return self.error(call, 401, "Invalid API Key", "authentication_error")

    async def _loading(self, call: Call) -> web.StreamResponse:
        return self.error(call, 503, "Loading model", "unavailable_error")

    async def _health(self, call: Call) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def _chat(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        model = body.get("model")
        call.meta["model"] = model if isinstance(model, str) and model else self.alias
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        problem = self._problem(call.body) if call.json_ok else "invalid JSON in request body"
        if problem is not None:
            return self.error(call, 400, problem, "invalid_request_error")
        call.stream = body.get("stream") is True
        options = body.get("stream_options") or {}
        call.meta.update(
            include_usage=options.get("include_usage") is True,
            obfuscation=False,
            id="chatcmpl-" + secrets.token_hex(16),
            created=int(time.time()),
            fingerprint=BUILD,
            **choice_meta(body),
        )
        return await self.run_step(call)

    def _problem(self, body: Any) -> str | None:
        """What llama-server refuses; everything else (unknown fields included) is accepted."""
        if not isinstance(body, dict):
            return "invalid JSON in request body"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' is required and must be a non-empty array"
        if body.get("n", 1) != 1:
            return "Only one completion choice is allowed"
        if body.get("tools") and not self.jinja:
            return "tools param requires --jinja flag"
        fmt = (body.get("response_format") or {}).get("type", "text")
        if fmt not in ("text", "json_object", "json_schema"):
            return f'response_format type must be one of "text" or "json_object", but got: {fmt}'
        return next(filter(None, map(self._message_problem, messages)), None)

    def _message_problem(self, msg: Any) -> str | None:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            return "Missing 'role' in message"
        content = msg.get("content")
        if content is None and not msg.get("tool_calls"):
            return "Expected 'content' (ref: https://github.com/ggml-org/llama.cpp/issues/8367)"
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url" and not self.multimodal:
                return NO_MMPROJ
            if kind not in ("text", "image_url"):
                return f"unsupported content[].type: {kind}"
        return None

    async def _embeddings(self, call: Call) -> web.StreamResponse:
        # ``model`` is optional: the server embeds with the one model it loaded.
        body = call.body if call.json_ok and isinstance(call.body, dict) else {}
        return await self.embeddings(call, self._auth, None if body.get("model") else self.alias)

    async def _models(self, call: Call) -> web.StreamResponse:
        meta = {"vocab_type": 2, "n_vocab": 151936, "n_ctx": self.n_ctx, "n_ctx_train": 32768}
        ollama_style = {
            "name": self.alias,
            "model": self.alias,
            "modified_at": "",
            "size": "",
            "digest": "",
            "type": "model",
            "description": "",
            "tags": [""],
            "capabilities": ["completion", "multimodal"] if self.multimodal else ["completion"],
            "parameters": "",
            "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""]},
        }
        data = {
            "id": self.alias,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "llamacpp",
            "meta": meta,
        }
        return web.json_response({"models": [ollama_style], "object": "list", "data": [data]})

    # ---------------------------------------------------------------------------- rendering
    def _fail(self, call: Call, kind: str, message: str | None = None) -> tuple[int, bytes]:
        status, type_, text = FAILS[kind]
        text = message or text.replace("{model}", str(call.meta.get("model")))
        return status, orjson.dumps(error_body(status, type_, text))

    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, body = self._fail(call, fail.kind, fail.message)
        resp = web.Response(
            status=fail.status or status, body=body, content_type="application/json"
        )
        if fail.retry_after is not None:
            resp.headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        return b"data: " + self._fail(call, kind)[1] + b"\n\n"

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        return {
            "completion_tokens": reply.completion_tokens,
            "prompt_tokens": reply.prompt_tokens,
            "total_tokens": reply.total_tokens,
        }

    @staticmethod
    def timings(reply: Reply) -> dict[str, Any]:
        prompt_n = reply.prompt_tokens - reply.cached_tokens
        return {
            "cache_n": reply.cached_tokens,
            "prompt_n": prompt_n,
            "prompt_ms": 12.5,
            "prompt_per_token_ms": 12.5 / max(prompt_n, 1),
            "prompt_per_second": 80.0 * max(prompt_n, 1),
            "predicted_n": reply.completion_tokens,
            "predicted_ms": 240.0,
            "predicted_per_token_ms": 240.0 / max(reply.completion_tokens, 1),
            "predicted_per_second": 1000.0 * reply.completion_tokens / 240.0,
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        calls = self._tool_calls(call, reply)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        body = {
            "choices": [{"finish_reason": _finish(reply), "index": 0, "message": message}],
            "created": call.meta["created"],
            "model": call.meta["model"],
            "system_fingerprint": BUILD,
            "object": "chat.completion",
            "usage": self._usage(reply),
            "id": call.meta["id"],
            "timings": self.timings(reply),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        """OpenAI's frames in llama-server's dress; ``timings`` ride on the last chunk."""
        plan = super().stream_plan(call, reply)
        plan.head = [edit_frame(f, _llama_chunk) for f in plan.head]
        plan.content = [edit_frame(f, _llama_chunk) for f in plan.content]
        *chunks, done = [edit_frame(f, _llama_chunk) for f in plan.tail]
        chunks[-1] = edit_frame(chunks[-1], lambda c: c.update(timings=self.timings(reply)))
        plan.tail = [*chunks, done]
        return plan


def _finish(reply: Reply) -> str:
    return "stop" if reply.finish == "content_filter" else reply.finish


def _llama_chunk(chunk: dict[str, Any]) -> None:
    chunk.pop("service_tier", None)
    if chunk.get("usage", "") is None:  # usage only on the usage chunk, never as null
        del chunk["usage"]
    for choice in chunk.get("choices") or ():
        choice.pop("logprobs", None)
        choice["delta"].pop("refusal", None)
        if choice["delta"].get("content") == "":  # llama-server opens with content: null
            choice["delta"]["content"] = None
        if choice.get("finish_reason") == "content_filter":
            choice["finish_reason"] = "stop"


def adapter_for(fake: FakeLlamaServer, **kwargs: Any) -> Vendor:
    """Our llama.cpp adapter pointed at ``fake`` (its root URL), with the fake's key."""
    return LlamaCppVendor(**{"base_url": fake.url, "api_key": fake.api_key, **kwargs})
