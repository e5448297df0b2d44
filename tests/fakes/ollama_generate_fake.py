"""A strict fake of Ollama's raw completion route, ``POST /api/generate`` (beside everything
``FakeOllama`` serves), for the custom-HTTP vendor's second real format.

Per Ollama's ``GenerateHandler`` (``server/routes.go``) and the ``ollama`` SDK's
``Client.generate`` (tests/test_fake_ollama_generate_sdk.py): ``prompt`` and ``system`` are
strings, knobs only under ``options``, ``stream`` defaults to true (NDJSON), each line's text in
``response``, the last line ``done: true`` with ``done_reason``, the counters and a ``context``
array; errors and mid-stream failures are ``{"error": "..."}``. Unknown fields and options are
400, as in ``FakeOllama``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .ollama_fake import DONE_REASONS, FakeOllama, Problem, _validate_options, created_at
from .script import Reply
from .server import Call, Handler, StreamPlan

GENERATE_FIELDS = frozenset(
    {"model", "prompt", "suffix", "system", "template", "context", "stream", "raw", "format"}
    | {"images", "keep_alive", "options", "think", "truncate", "shift", "logprobs"}
)


def validate_generate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Problem("json: cannot unmarshal into Go value of type api.GenerateRequest")
    unknown = sorted(set(body) - GENERATE_FIELDS)
    if unknown:
        raise Problem(f'json: unknown field "{unknown[0]}"')
    for key in ("model", "prompt", "system", "suffix", "template"):
        if key in body and not isinstance(body[key], str):
            raise Problem(
                f"json: cannot unmarshal into Go struct field GenerateRequest.{key} of type string"
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Problem(
            "json: cannot unmarshal into Go struct field GenerateRequest.stream of type bool"
        )
    if not body.get("model"):
        raise Problem("model is required")
    _validate_options(body.get("options"))


class FakeOllamaGenerate(FakeOllama):
    """FakeOllama plus ``/api/generate``."""

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {**super().routes(), ("POST", "/api/generate"): self._generate}

    async def _generate(self, call: Call) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = body.get("model") or "llama3.2"
        call.meta["generate"] = True
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate_generate(call.body if call.json_ok else None)
            if self.resolve(body["model"]) is None:
                raise Problem(f'model "{body["model"]}" not found, try pulling it first', 404)
        except Problem as p:
            return web.Response(
                status=p.status,
                body=orjson.dumps({"error": p.message}),
                content_type="application/json",
            )
        call.stream = body.get("stream") is not False
        return await self.run_step(call)

    def _generate_line(self, call: Call, text: str, reply: Reply | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {
            "model": call.meta["model"],
            "created_at": created_at(),
            "response": text,
            "done": reply is not None,
        }
        if reply is not None:
            line["done_reason"] = DONE_REASONS[reply.finish]
            line["context"] = [128006, 882, 128007, 271]
            line |= self._metrics(reply)
        return line

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        if not call.meta.get("generate"):
            return super().reply_response(call, reply)
        return self._json(self._generate_line(call, reply.text, reply))

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        if not call.meta.get("generate"):
            return super().stream_plan(call, reply)

        def frame(obj: dict[str, Any]) -> bytes:
            return orjson.dumps(obj) + b"\n"

        plan = StreamPlan()
        plan.content = [frame(self._generate_line(call, piece)) for piece in reply.text_pieces()]
        plan.tail = [frame(self._generate_line(call, "", reply))]
        return plan
