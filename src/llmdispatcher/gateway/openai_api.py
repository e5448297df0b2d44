"""The OpenAI-compatible API: ``POST /v1/chat/completions`` (JSON and SSE) and ``GET /v1/models``.

Body fields, decided once:

* understood: ``model, messages, temperature, top_p, max_completion_tokens`` (or the legacy
  ``max_tokens``), ``stop, tools`` (function tools with ``strict``, and ``custom`` tools),
  ``tool_choice, parallel_tool_calls, response_format, user, metadata, stream,
  stream_options.include_usage, n, logprobs, top_logprobs``;
* OpenAI's other fields (``vendors/openai_fields.py``: ``store, service_tier, logit_bias,
  prediction, verbosity, prompt_cache_key, seed, reasoning_effort`` ...) go to the vendor in
  ``Request.extra``: OpenAI-family vendors take them as they are, the others translate them
  (Gemini's ``seed``) or refuse the request naming the field, so none is lost on the way;
* ``gateway.passthrough_fields``: more fields passed to the vendor unchanged (a host's own);
* everything else is dropped: it reaches no vendor. That includes LiteLLM-style ``api_key``,
  ``api_base`` or ``base_url`` fields: clients cannot choose upstream URLs or credentials.

``n`` > 1 is answered by the vendor where its API can, else by asking it n times (usage and cost
summed); streamed, it is refused (a stream here carries one answer). Custom tools are not
streamed either (the chunk format has no place for their input).

Messages keep ``role, content, name, tool_calls, tool_call_id``; ``developer`` is read as
``system``; other message keys an SDK echoes back (``refusal``, ``annotations``) are dropped.

The stream is OpenAI's, byte for byte: a role chunk, content chunks, a finish chunk, with
``stream_options.include_usage`` a ``choices: []`` usage chunk (and ``"usage": null`` on every
other chunk), then ``data: [DONE]``. An error after the first chunk is ``data: {"error": ...}``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..types import Choice, Message, Request, Response, StreamChunk, ToolCallDelta, Usage
from ..vendors.openai import message_to_openai
from ..vendors.openai_fields import OPENAI_ONLY_FIELDS
from .errors import ApiError, bad_request
from .relay import json_response, key_tag, open_stream, read_json, relay, send
from .state import GATEWAY, TRACE, Gateway, Trace
from .validation import (
    ARRAY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    OBJECT,
    STRING,
    check_fields,
    check_items,
    check_model_name,
    make_request,
    require,
)

CHAT_FIELDS = {
    "model": STRING,
    "messages": ARRAY,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "max_tokens": INTEGER,
    "max_completion_tokens": INTEGER,
    "stop": ((str, list), "a string or an array of strings"),
    "tools": ARRAY,
    "tool_choice": ((str, dict), "a string or an object"),
    "response_format": OBJECT,
    "user": STRING,
    "metadata": OBJECT,
    "stream": BOOLEAN,
    "stream_options": OBJECT,
    "n": INTEGER,
    "logprobs": BOOLEAN,
    "top_logprobs": INTEGER,
    "parallel_tool_calls": BOOLEAN,
}
MESSAGE_FIELDS = {
    "role": STRING,
    "content": ((str, list), "a string or an array of content parts"),
    "name": STRING,
    "tool_calls": ARRAY,
    "tool_call_id": STRING,
}
FUNCTION_FIELDS = {"name": STRING, "description": STRING, "parameters": OBJECT, "strict": BOOLEAN}
CUSTOM_FIELDS = {"name": STRING, "description": STRING, "format": OBJECT}
CALL_FIELDS = {"name": STRING, "arguments": STRING}
CUSTOM_CALL_FIELDS = {"name": STRING, "input": STRING}


@dataclass(frozen=True, slots=True)
class ChatCall:
    request: Request
    stream: bool
    include_usage: bool


# --- request ----------------------------------------------------------------------------------
def parse_chat(
    body: dict[str, Any], passthrough: tuple[str, ...], trace: Trace | None = None
) -> ChatCall:
    """A Chat Completions body as a Request; ``ApiError(400)`` naming the field at fault.
    With ``trace``, the request is tagged with the caller's key (``key_tag``)."""
    check_fields(body, CHAT_FIELDS)
    require(body, "model", "the model to use")
    check_model_name(body["model"])
    require(body, "messages", "at least one message")
    stream = body.get("stream") is True
    if stream and body.get("n") not in (None, 1):
        raise bad_request("n", "n > 1 cannot be streamed here: set stream to false, or n to 1")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request("stream_options", "only allowed when stream is true")
    if isinstance(body.get("stop"), list):
        check_items(body["stop"], str, "a string", "stop")
    if body.get("tools") is not None:
        _check_tools(body["tools"], stream)
    max_tokens = body.get("max_completion_tokens")
    request = make_request(
        model=body["model"],
        messages=[_message(m, i) for i, m in enumerate(body["messages"])],
        temperature=body.get("temperature"),
        max_tokens=body.get("max_tokens") if max_tokens is None else max_tokens,
        top_p=body.get("top_p"),
        stop=body.get("stop"),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        response_format=body.get("response_format"),
        user=body.get("user"),
        metadata=key_tag(trace, body.get("metadata")) if trace else body.get("metadata"),
        extra=_extra(body, passthrough),
        n=body.get("n"),
        logprobs=body.get("logprobs"),
        top_logprobs=body.get("top_logprobs"),
        parallel_tool_calls=body.get("parallel_tool_calls"),
    )
    return ChatCall(request, stream, bool(options and options.get("include_usage") is True))


def _extra(body: dict[str, Any], passthrough: tuple[str, ...]) -> dict[str, Any] | None:
    """OpenAI's own untyped fields, and the configured passthrough ones (typed ones excepted)."""
    names = _extra_names(passthrough)
    return {k: v for k, v in body.items() if k in names and v is not None} or None


@functools.lru_cache(maxsize=16)
def _extra_names(passthrough: tuple[str, ...]) -> frozenset[str]:
    # The same few configured tuples every time: two set operations per request were 2 % of
    # the gateway's time.
    return OPENAI_ONLY_FIELDS.union(passthrough).difference(CHAT_FIELDS)


def _message(value: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(value, dict):
        raise bad_request(where, "expected a message object with a role")
    check_fields(value, MESSAGE_FIELDS, f"{where}.")
    if isinstance(value.get("content"), list):
        check_items(value["content"], dict, "a content part object", f"{where}.content")
    for j, call in enumerate(value.get("tool_calls") or ()):
        custom = isinstance(call, dict) and call.get("type") == "custom"
        inner = call.get("custom" if custom else "function") if isinstance(call, dict) else None
        if not isinstance(inner, dict):
            raise bad_request(f"{where}.tool_calls[{j}]", "expected a function or custom call")
        kind = "custom" if custom else "function"
        fields = CUSTOM_CALL_FIELDS if custom else CALL_FIELDS
        check_fields(inner, fields, f"{where}.tool_calls[{j}].{kind}.")
    role: Any = value.get("role")
    try:
        return Message(
            role="system" if role == "developer" else role,
            content=value.get("content"),
            name=value.get("name"),
            tool_calls=value.get("tool_calls"),
            tool_call_id=value.get("tool_call_id"),
        )
    except ValueError as exc:
        raise ApiError(400, f"{where}: {exc}", param=where, code="invalid_value") from None


def _check_tools(tools: list[Any], stream: bool) -> None:
    check_items(tools, dict, "a tool object", "tools")
    for i, tool in enumerate(tools):
        kind = tool.get("type", "function")
        if kind == "custom" and stream:
            raise bad_request(f"tools[{i}]", "custom tools cannot be streamed here: stream false")
        if kind not in ("function", "custom"):
            raise bad_request(f"tools[{i}].type", 'expected "function" or "custom"')
        spec = tool.get(kind)
        if not isinstance(spec, dict):
            raise bad_request(f"tools[{i}].{kind}", f"expected the {kind} tool's definition")
        check_fields(
            spec, CUSTOM_FIELDS if kind == "custom" else FUNCTION_FIELDS, f"tools[{i}].{kind}."
        )


# --- response ---------------------------------------------------------------------------------
def completion_id(response_id: str | None, request_id: str) -> str:
    if response_id and response_id.startswith("chatcmpl-"):
        return response_id
    return f"chatcmpl-{request_id}"


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_body(response: Response, request_id: str) -> dict[str, Any]:
    body = {
        "id": completion_id(response.id, request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [_choice(choice) for choice in response.choices],
        "usage": usage_to_openai(response.usage),
    }
    if response.system_fingerprint is not None:
        body["system_fingerprint"] = response.system_fingerprint
    return body


def _choice(choice: Choice) -> dict[str, Any]:
    content = choice.content if choice.content or not choice.tool_calls else None
    message = message_to_openai(Message("assistant", content, tool_calls=choice.tool_calls or None))
    message["refusal"] = None
    return {
        "index": choice.index,
        "message": message,
        "logprobs": choice.logprobs,
        "finish_reason": choice.finish_reason or "stop",
    }


class OpenAIStreamEncoder:
    """``chat.completion.chunk`` frames; the constant head of each frame is encoded once, and
    so is all but the text of the commonest frame (text only)."""

    def __init__(self, chunk_id: str, model: str, include_usage: bool) -> None:
        head = {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time())}
        self._prefix = b"data: " + orjson.dumps({**head, "model": model})[:-1] + b',"choices":'
        self._suffix = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        self._include_usage = include_usage
        self._text_head = self._prefix + b'[{"index":0,"delta":{"content":'
        self._text_tail = b'},"logprobs":null,"finish_reason":null}]' + self._suffix

    def _frame(
        self, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return self._prefix + orjson.dumps([choice]) + self._suffix

    def head(self, chunk: StreamChunk) -> bytes:
        role = self._frame({"role": "assistant", "content": "", "refusal": None})
        return role + self.chunk(chunk)

    def chunk(self, chunk: StreamChunk) -> bytes:
        if chunk.finish_reason is None and not (chunk.tool_call_deltas or chunk.logprobs):
            # text only (or nothing): the same bytes as ``_frame`` would give, fewer steps
            return (
                self._text_head + orjson.dumps(chunk.delta) + self._text_tail
                if chunk.delta
                else b""
            )
        out = b""
        if chunk.delta or chunk.tool_call_deltas:
            delta: dict[str, Any] = {}
            if chunk.delta:
                delta["content"] = chunk.delta
            if chunk.tool_call_deltas:
                delta["tool_calls"] = [_tool_delta(d) for d in chunk.tool_call_deltas]
            logprobs = (
                {"content": list(chunk.logprobs), "refusal": None} if chunk.logprobs else None
            )
            out = self._frame(delta, logprobs=logprobs)
        if chunk.finish_reason is not None:
            out += self._finish_frame(chunk)
            if self._include_usage:
                usage = orjson.dumps(usage_to_openai(chunk.usage or Usage()))
                out += self._prefix + b'[],"usage":' + usage + b"}\n\n"
        return out

    def _finish_frame(self, chunk: StreamChunk) -> bytes:
        frame = self._frame({}, chunk.finish_reason)
        if chunk.system_fingerprint is None:
            return frame
        # Known only at the end: on the finish chunk (OpenAI sends it on every chunk).
        tail = b',"system_fingerprint":' + orjson.dumps(chunk.system_fingerprint) + b"}\n\n"
        return frame[: -len(b"}\n\n")] + tail

    def tail(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, error: ApiError) -> bytes:
        return b"data: " + orjson.dumps(error.openai_body()) + b"\n\n"


def _tool_delta(delta: ToolCallDelta) -> dict[str, Any]:
    if delta.id is None:
        return {"index": delta.index, "function": {"arguments": delta.arguments}}
    fn = {"name": delta.name or "", "arguments": delta.arguments}
    return {"index": delta.index, "id": delta.id, "type": "function", "function": fn}


# --- handlers ---------------------------------------------------------------------------------
async def chat_completions(request: web.Request) -> web.StreamResponse:
    gateway, trace = request.app[GATEWAY], request[TRACE]
    body = await read_json(request, gateway)
    call = parse_chat(body, gateway.settings.passthrough_fields, trace)
    if call.stream:
        opened = await open_stream(gateway, trace, call.request)
        model = opened.first.model or call.request.model
        encoder = OpenAIStreamEncoder(
            completion_id(None, trace.request_id), model, call.include_usage
        )
        return await relay(request, opened, encoder)
    response = await send(gateway, trace, call.request)
    return json_response(completion_body(response, trace.request_id))


async def _owners(gateway: Gateway) -> dict[str, str]:
    """Model id -> who serves it: the model groups, then every vendor's models (cached); a
    model two vendors serve is listed once, for the first."""
    served = await gateway.catalog.models(gateway.dispatcher.vendors)
    owners = {group.name: "llmdispatcher" for group in gateway.dispatcher.config.model_groups}
    for model in served:
        owners.setdefault(model.id, model.vendor)
    return owners


async def list_models(request: web.Request) -> web.StreamResponse:
    """The models of every vendor (cached), as far as the caller's key may use them."""
    gateway, key = request.app[GATEWAY], request[TRACE].key
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": vendor}
        for model, vendor in (await _owners(gateway)).items()
        if key is None or key.allows(model)
    ]
    return json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.StreamResponse:
    """``GET /v1/models/{id}``: one model of the listing; 404 (OpenAI's ``model_not_found``)
    for a model no vendor serves or the caller's key may not use."""
    gateway, key = request.app[GATEWAY], request[TRACE].key
    model_id = request.match_info["model"]
    owner = (await _owners(gateway)).get(model_id)
    if owner is None or (key is not None and not key.allows(model_id)):
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return json_response({"id": model_id, "object": "model", "created": 0, "owned_by": owner})
