"""A strict fake of Hugging Face text-generation-inference's native API: ``POST /generate``,
``POST /generate_stream``, the compat ``POST /`` and ``GET /health``, ``GET /info``.

Wire format per vendors.md §15 and TGI's router (``server.rs``, ``lib.rs``), checked with the
official ``huggingface_hub.InferenceClient`` (tests/test_fake_tgi_sdk.py), which posts to the
compat route. Like TGI: usage only in response headers (``x-prompt-tokens``,
``x-generated-tokens``) and, with ``details: true``, in ``details``; streams are ``data:<json>``
events (no space, no ``[DONE]``), one per token, the last carrying ``generated_text`` (and
``details`` with ``input_length``); an ``eos_token`` finish ends on a special ``</s>`` token;
errors are ``{"error", "error_type"}``; with an API key a miss is 401 with an empty body.

Stricter than TGI, on purpose: unknown ``parameters`` are 422 (TGI ignores them), so a
template that misnames a knob shows. Fail kinds: ``rate_limit`` 429 ``overloaded`` (TGI's own
queue-full answer), ``overloaded`` 503 (a Hugging Face endpoint still loading the model),
``server`` 500 ``incomplete_generation``, ``bad_request``/``context_length`` 422 ``validation``,
``auth`` 401, ``not_found`` 404, ``timeout`` 504 and ``conflict`` 409 (from a proxy).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

from .script import Fail, Reply
from .server import Call, FakeServer, Handler, StreamPlan

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MAX_INPUT = 4096
PARAMETERS: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "typical_p": (int, float),
    "repetition_penalty": (int, float),
    "frequency_penalty": (int, float),
    "stop": (list,),
    "seed": (int,),
    "do_sample": (bool,),
    "details": (bool,),
    "decoder_input_details": (bool,),
    "return_full_text": (bool,),
    "truncate": (int,),
    "watermark": (bool,),
    "best_of": (int,),
    "top_n_tokens": (int,),
    "adapter_id": (str,),
    "grammar": (dict,),
}
FAILS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "Model is overloaded", "overloaded"),
    "quota": (429, "Model is overloaded", "overloaded"),
    "server": (500, "Incomplete generation", "incomplete_generation"),
    "overloaded": (503, "Model is currently loading", "unhealthy"),
    "auth": (401, "", ""),
    "bad_request": (422, "Input validation error: scripted by the fake", "validation"),
    "not_found": (404, "", ""),
    "context_length": (
        422,
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
        "Given: 4000 `inputs` tokens and 200 `max_new_tokens`",
        "validation",
    ),
    "timeout": (504, "Gateway Timeout", "timeout"),
    "conflict": (409, "Conflict", "conflict"),
}
FINISH = {"stop": "eos_token", "length": "length", "tool_calls": "eos_token"}
FINISH["content_filter"] = "eos_token"


class Problem(Exception):
    pass


def error(status: int, message: str, kind: str) -> web.Response:
    if not message:  # TGI's auth layer and unknown routes answer with no body
        return web.Response(status=status)
    body = orjson.dumps({"error": message, "error_type": kind})
    return web.Response(status=status, body=body, content_type="application/json")


class FakeTGI(FakeServer):
    """Strict fake of a text-generation-inference server (``api_key``: started with
    ``--api-key``)."""

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/generate"): self._generate,
            ("POST", "/generate_stream"): self._generate_stream,
            ("POST", "/"): self._compat,
            ("GET", "/health"): self._health,
            ("GET", "/info"): self._info,
        }

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return web.Response(status=404)

    def _auth(self, call: Call) -> web.Response | None:
        if self.api_key is None:
            return None
        scheme, _, key = call.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            return web.Response(status=401)
        return None

    async def _generate(self, call: Call) -> web.StreamResponse:
        return await self._answer(call, stream=False)

    async def _generate_stream(self, call: Call) -> web.StreamResponse:
        return await self._answer(call, stream=True)

    async def _compat(self, call: Call) -> web.StreamResponse:
        body = call.body if isinstance(call.body, dict) else {}
        call.meta["compat"] = True
        return await self._answer(call, stream=body.get("stream") is True)

    async def _answer(self, call: Call, *, stream: bool) -> web.StreamResponse:
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        try:
            validate(call.body if call.json_ok else None, stream=stream)
        except Problem as p:
            return error(422, str(p), "validation")
        call.stream = stream
        params = call.body.get("parameters") or {}
        call.meta["details"] = params.get("details") is True
        call.meta["prompt_tokens"] = max(1, len(call.body["inputs"].split()))
        return await self.run_step(call)

    async def _health(self, call: Call) -> web.StreamResponse:
        return web.Response(status=200)

    async def _info(self, call: Call) -> web.StreamResponse:
        info = {
            "model_id": MODEL_ID,
            "max_input_tokens": MAX_INPUT - 1,
            "max_total_tokens": MAX_INPUT,
            "max_stop_sequences": 4,
            "version": "3.3.6",
            "router": "text-generation-router",
        }
        return web.Response(body=orjson.dumps(info), content_type="application/json")

    def response_headers(self, call: Call) -> dict[str, str]:
        return {"x-compute-type": "cpu", "x-compute-characters": str(len(call.record.raw))}

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, message, kind = FAILS[fail.kind]
        resp = error(fail.status or status, fail.message or message, kind)
        if fail.retry_after is not None:
            resp.headers["Retry-After"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        message = "Request failed during generation: Server error: CUDA out of memory"
        return b"data:" + orjson.dumps({"error": message, "error_type": "generation"}) + b"\n\n"

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        prompt = reply.prompt_tokens or call.meta["prompt_tokens"]
        answer: dict[str, Any] = {"generated_text": reply.text}
        if call.meta["details"]:
            answer["details"] = {
                "finish_reason": FINISH[reply.finish],
                "generated_tokens": reply.completion_tokens,
                "seed": None,
                "prefill": [],
                "tokens": [_token(k, piece) for k, piece in enumerate(reply.text_pieces())],
            }
        body = [answer] if call.meta.get("compat") else answer
        resp = web.Response(body=orjson.dumps(body), content_type="application/json")
        resp.headers.update(
            {
                "x-prompt-tokens": str(prompt),
                "x-generated-tokens": str(reply.completion_tokens),
                "x-total-time": "120",
                "x-time-per-token": "10",
            }
        )
        return resp

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        pieces = reply.text_pieces()
        finish = FINISH[reply.finish]
        details = None
        if call.meta["details"]:
            details = {
                "finish_reason": finish,
                "generated_tokens": reply.completion_tokens,
                "input_length": reply.prompt_tokens or call.meta["prompt_tokens"],
                "seed": None,
            }

        def event(k: int, token: dict[str, Any], last: bool) -> bytes:
            obj = {
                "index": k + 1,
                "token": token,
                "top_tokens": None,
                "generated_text": reply.text if last else None,
                "details": details if last else None,
            }
            return b"data:" + orjson.dumps(obj) + b"\n\n"

        plan = StreamPlan()
        ends_on_eos = finish == "eos_token" or not pieces
        plan.content = [
            event(k, _token(k, piece), last=not ends_on_eos and k == len(pieces) - 1)
            for k, piece in enumerate(pieces)
        ]
        if ends_on_eos:
            eos = {"id": 2, "text": "</s>", "logprob": -0.01, "special": True}
            plan.tail.append(event(len(pieces), eos, last=True))
        return plan


def _token(k: int, text: str) -> dict[str, Any]:
    return {
        "id": 1000 + k,
        "text": text,
        "logprob": -round(secrets.randbelow(100) / 100, 2),
        "special": False,
    }


def validate(body: Any, *, stream: bool) -> None:
    """Raise ``Problem`` where TGI (or the fake, stricter) refuses the request."""
    if not isinstance(body, dict):
        raise Problem("Failed to deserialize the JSON body into the target type")
    unknown = sorted(set(body) - {"inputs", "parameters", "stream"})
    if unknown:
        raise Problem(f"Failed to deserialize the JSON body: unknown field `{unknown[0]}`")
    if not isinstance(body.get("inputs"), str) or not body["inputs"]:
        raise Problem("Input validation error: `inputs` cannot be empty")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise Problem("Failed to deserialize the JSON body: parameters must be an object")
    for key, value in params.items():
        kinds = PARAMETERS.get(key)
        if kinds is None:
            raise Problem(f"Failed to deserialize the JSON body: parameters: unknown field `{key}`")
        if value is not None and (
            not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        ):
            raise Problem(f"Failed to deserialize the JSON body: parameters.{key}: invalid type")
    _check_ranges(params)
    if stream and (params.get("best_of") or 1) > 1:
        raise Problem(
            "Input validation error: `best_of` != 1 is not supported when streaming tokens"
        )


def _check_ranges(params: dict[str, Any]) -> None:
    temperature = params.get("temperature")
    if temperature is not None and temperature <= 0:
        raise Problem("Input validation error: `temperature` must be strictly positive")
    top_p = params.get("top_p")
    if top_p is not None and not 0 < top_p < 1:
        raise Problem("Input validation error: `top_p` must be > 0.0 and < 1.0")
    max_new = params.get("max_new_tokens")
    if max_new is not None and max_new < 1:
        raise Problem("Input validation error: `max_new_tokens` must be strictly positive")
    if len(params.get("stop") or ()) > 4:
        raise Problem("Input validation error: `stop` supports up to 4 stop sequences. Given: 5")
