"""OpenAI Chat Completions (platform.openai.com/docs/api-reference/chat), also every
OpenAI-family vendor (``presets.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..errors import ConfigError, MalformedResponse, UnsupportedRequest, VendorServerError
from ..limits import Limits
from ..types import (
    Choice,
    FinishReason,
    ImagePart,
    Message,
    Request,
    Response,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import Capabilities, Health, Secret, missing_setting, secret_from
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, error_for, json_body
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json
from .openai_embeddings import BATCH_LIMIT, embedding_body, embeddings_from_openai
from .presets import OPENAI, Preset

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, Embeddings
from .sse import SSEChunkDecoder

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Fields the adapter owns; ``Request.extra`` may not replace them.
OWNED_FIELDS = frozenset({"model", "messages", "stream"})
Api = Literal["chat", "responses"]


class OpenAIVendor(HttpVendor):
    """OpenAI's Chat Completions API, and through ``preset`` any host that speaks it.

    ``base_url`` ends in ``/v1`` as in the official SDK (else the preset's ``base_url_env``
    variable, else the preset's URL); the key is ``api_key``, else the preset's ``api_key_env``.
    ``connection`` holds timeouts, headers and the pool size; ``limits`` what the host allows.
    ``api="responses"`` sends OpenAI's Responses API (``/responses``) instead, for models
    served only there (``openai_responses.py``); for one model group, register a second
    vendor with it and point those deployments at it.
    """

    capabilities = Capabilities(
        streaming=True, tools=True, vision=True, json_mode=True, embeddings=True
    )
    embed_batch_size = BATCH_LIMIT

    def __init__(  # noqa: PLR0913 - keyword-only settings, each with a default
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        name: str | None = None,
        preset: Preset = OPENAI,
        organization: str | None = None,
        project: str | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
        api: Api = "chat",
    ) -> None:
        vendor_name = name or preset.name
        if api not in ("chat", "responses"):
            raise ConfigError(f"vendor {vendor_name!r}: api must be chat or responses, not {api!r}")
        key_env = (preset.api_key_env,) if preset.api_key_env else ()
        key = secret_from(api_key, *key_env)
        if preset.requires_api_key and not key:
            raise missing_setting(preset.api_key_env or "the API key", "api_key", vendor_name)
        url = base_url or _env(preset.base_url_env) or preset.base_url
        super().__init__(
            name=vendor_name,
            base_url=url,
            api_key=key,
            connection=connection,
        )
        self.preset = preset
        self.native_n = preset.native_n
        self.pricing_name = preset.name
        self.model_prefixes = preset.model_prefixes
        self.limits = limits or Limits()
        self.api: Api = api
        self._headers = self._auth_headers(organization, project)
        if not preset.embeddings:
            self.capabilities = replace(self.capabilities, embeddings=False)

    @classmethod
    def from_env(cls) -> OpenAIVendor | None:
        return cls() if _env(OPENAI.api_key_env) else None

    def _auth_headers(self, organization: str | None, project: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self.credential_headers())
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        headers.update(self.extra_headers)
        return headers

    def credential_headers(self) -> dict[str, str]:
        """The auth header(s); vendors that authenticate differently (Azure) override this."""
        return {"Authorization": f"Bearer {self.api_key.reveal()}"} if self.api_key else {}

    # --- request -----------------------------------------------------------------------------
    def chat_url(self, request: Request) -> str:
        if self.api == "responses":
            return f"{self.base_url}/responses"
        return f"{self.base_url}/chat/completions"

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        if stream:
            refuse_streamed_custom_tools(request, self.name)
        return HttpCall(
            self.chat_url(request),
            self._headers,
            orjson.dumps(self.build_body(request, stream=stream)),
        )

    def build_body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        if self.api == "responses":
            from .openai_responses import responses_body

            return responses_body(request, stream=stream, vendor=self.name)
        return openai_request_body(
            request,
            max_tokens_field=self.preset.max_tokens_field,
            stream=stream,
            stream_usage=self.preset.stream_usage,
        )

    def embeddings_url(self, model: str) -> str:
        return f"{self.base_url}/embeddings"

    def build_embed_call(self, request: EmbeddingRequest) -> HttpCall:
        body = embedding_body(request, self.embedding_model(request.model))
        return HttpCall(self.embeddings_url(request.model), self._headers, orjson.dumps(body))

    def embedding_model(self, model: str) -> str:
        """The ``model`` the body names (Azure: the deployment)."""
        return model

    def parse_embeddings(self, data: Any, request: EmbeddingRequest) -> Embeddings:
        return embeddings_from_openai(data, request.model)

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        if self.api == "responses":
            from .openai_responses import response_from_body

            return response_from_body(data, self.name, request.model)
        choices = sorted(data.get("choices") or [], key=lambda c: count(c.get("index")))
        if not choices:
            raise VendorServerError("the response has no choices", vendor=self.name)
        first, *rest = (choice_from_openai(c, i) for i, c in enumerate(choices))
        return Response(
            content=first.content,
            vendor=self.name,
            model=data.get("model") or request.model,
            finish_reason=first.finish_reason,
            usage=usage_from_openai(data.get("usage")),
            tool_calls=first.tool_calls,
            raw=data,
            id=data.get("id"),
            logprobs=first.logprobs,
            system_fingerprint=data.get("system_fingerprint"),
            alternatives=tuple(rest),
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        if self.api == "responses":
            from .openai_responses import ResponsesStreamDecoder

            return ResponsesStreamDecoder(self.name, request.model, self.secrets(), self.max_line)
        return OpenAIStreamDecoder(self, request.model)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return openai_error_info(status, headers, body)

    # --- listing and health -------------------------------------------------------------------
    def models_url(self) -> str:
        return f"{self.base_url}/models"

    async def list_models(self) -> list[str]:
        result = await self.get(self.models_url(), self._headers)
        data = decode_json(result.body, self.name)
        return sorted(str(m.get("id")) for m in data.get("data") or [])

    async def health(self) -> Health:
        return await self.timed_health(self.models_url(), self._headers)


class OpenAIStreamDecoder(SSEChunkDecoder):
    """``data: <chunk>`` events until ``data: [DONE]``; an ``error`` object is an error."""

    terminal = "[DONE]"

    def __init__(self, vendor: OpenAIVendor, model: str) -> None:
        super().__init__(vendor.name, vendor.max_line)
        self._vendor = vendor
        self._model = model

    def _event(self, data: str) -> StreamChunk | None:
        if data == "[DONE]":
            self._done = True
            return None
        if self._done or not data:
            return None
        try:
            obj = orjson.loads(data)  # a str: no round trip through bytes
        except orjson.JSONDecodeError:
            raise MalformedResponse(
                f"the vendor sent a frame that is not JSON: {data[:200]!r}",
                vendor=self._vendor.name,
            ) from None
        if obj.get("error"):
            info = error_info_from_body(obj, None)
            # An error after the 200 is the vendor failing mid-flight: retryable until text
            # reached the caller (the dispatcher decides that).
            status = count(obj["error"].get("code")) or 500
            raise error_for(
                status if status >= 400 else 500,
                info,
                vendor=self._vendor.name,
                secrets=self._vendor.secrets(),
            )
        if obj.get("model"):
            self._model = obj["model"]
        return chunk_from_openai(obj, self._vendor.name, self._model)


def openai_request_body(
    request: Request,
    *,
    max_tokens_field: str = "max_completion_tokens",
    stream: bool,
    stream_usage: bool = True,
) -> dict[str, Any]:
    """The Chat Completions body for ``request`` (shared by every OpenAI-shaped runtime)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_openai(m) for m in request.message_list],
    }
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        max_tokens_field: request.max_tokens,
        "stop": list(request.stop_list) or None,
        "tools": [t.to_openai() for t in request.tool_list] or None,
        "tool_choice": request.tool_choice,
        "response_format": dict(request.response_format) if request.response_format else None,
        "user": request.user,
        "n": request.n,
        "logprobs": request.logprobs,
        "top_logprobs": request.top_logprobs,
        "parallel_tool_calls": request.parallel_tool_calls,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if stream:
        body["stream"] = True
        options = dict(request.stream_options or {})
        if stream_usage:  # usage only arrives in a stream when asked for
            options["include_usage"] = True
        if options:
            body["stream_options"] = options
    for key, value in (request.extra or {}).items():
        if key not in OWNED_FIELDS:
            body[key] = value
    return body


def refuse_streamed_custom_tools(request: Request, vendor: str) -> None:
    """Chat Completions chunks have no place for a custom tool's input (the openai SDK's
    ``ChoiceDeltaToolCall`` is function-only): such a request is sent whole, not streamed."""
    for i, tool in enumerate(request.tool_list):
        if tool.kind == "custom":
            raise UnsupportedRequest(
                f"request.tools[{i}]: custom tools cannot be streamed; send without stream",
                vendor=vendor,
            ).naming(f"tools[{i}]")


def chunk_from_openai(obj: Mapping[str, Any], vendor: str, model: str) -> StreamChunk | None:
    """One ``chat.completion.chunk`` (not an error) as a StreamChunk; None when it carries
    nothing for the caller (a role-only delta, Azure's prompt-filter chunks)."""
    text = _plain_text(obj)
    if text is not None:
        return StreamChunk(delta=text, vendor=vendor, model=obj.get("model") or model)
    usage = usage_from_openai(obj["usage"]) if obj.get("usage") else None
    model = obj.get("model") or model
    choices = obj.get("choices") or []
    if not choices:
        return StreamChunk(usage=usage, vendor=vendor, model=model) if usage else None
    choice = choices[0]
    delta = choice.get("delta") or {}
    tool_deltas = tuple(
        ToolCallDelta(
            index=int(t.get("index", 0)),
            id=t.get("id"),
            name=(t.get("function") or {}).get("name"),
            arguments=(t.get("function") or {}).get("arguments") or "",
        )
        for t in delta.get("tool_calls") or ()
    )
    raw_finish = choice.get("finish_reason")
    finish = map_finish_reason(raw_finish, False) if raw_finish else None
    text = delta.get("content") or ""
    logprobs = tuple((choice.get("logprobs") or {}).get("content") or ())
    if not text and not tool_deltas and finish is None and usage is None and not logprobs:
        return None
    return StreamChunk(
        delta=text,
        tool_call_deltas=tool_deltas,
        finish_reason=finish,
        usage=usage,
        vendor=vendor,
        model=model,
        logprobs=logprobs,
        system_fingerprint=obj.get("system_fingerprint") if finish else None,
    )


def _plain_text(obj: Mapping[str, Any]) -> str | None:
    """The text of the commonest chunk (text only: no tool calls, finish, usage or logprobs),
    read in a few lookups; None for any other chunk, which the general path reads."""
    choices = obj.get("choices")
    if not choices or obj.get("usage"):
        return None
    choice = choices[0]
    delta = choice.get("delta")
    if (
        not delta
        or choice.get("finish_reason")
        or choice.get("logprobs")
        or delta.get("tool_calls")
    ):
        return None
    text = delta.get("content")
    return text if text and isinstance(text, str) else None


def choice_from_openai(choice: Mapping[str, Any], index: int) -> Choice:
    """One ``choices[]`` item of a chat completion (function and custom tool calls)."""
    message = choice.get("message") or {}
    calls = tuple(_tool_call(c) for c in message.get("tool_calls") or ())
    return Choice(
        index=index,
        content=message.get("content") or "",
        finish_reason=map_finish_reason(choice.get("finish_reason"), bool(calls)),
        tool_calls=calls,
        logprobs=choice.get("logprobs"),
    )


def _tool_call(call: Mapping[str, Any]) -> ToolCall:
    if call.get("type") == "custom":
        custom = call["custom"]
        return ToolCall(call.get("id") or "", custom["name"], custom.get("input") or "", "custom")
    fn = call["function"]
    return ToolCall(call.get("id") or "", fn["name"], fn.get("arguments") or "{}")


def message_to_openai(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    content = message.content
    if content is None or isinstance(content, str):
        out["content"] = content
    else:
        out["content"] = [_part_to_openai(p) for p in content]
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [tool_call_to_openai(c) for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def tool_call_to_openai(call: ToolCall) -> dict[str, Any]:
    if call.kind == "custom":
        return {
            "id": call.id,
            "type": "custom",
            "custom": {"name": call.name, "input": call.arguments},
        }
    fn = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": fn}


def _part_to_openai(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def map_finish_reason(raw: str | None, has_tool_calls: bool) -> FinishReason | None:
    if raw is None:
        return "tool_calls" if has_tool_calls else None
    return FINISH_REASONS.get(raw, "stop")


def usage_from_openai(data: Mapping[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    prompt = count(data.get("prompt_tokens"))
    completion = count(data.get("completion_tokens"))
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=count(data.get("total_tokens")) or prompt + completion,
        cached_tokens=count(prompt_details.get("cached_tokens")),
        reasoning_tokens=count(completion_details.get("reasoning_tokens")),
    )


def openai_error_info(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    data = json_body(body)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return error_info_from_body(data, headers.get("x-request-id"))
    return ErrorInfo(body_text(status, body), request_id=headers.get("x-request-id"))


def error_info_from_body(data: Mapping[str, Any], request_id: str | None) -> ErrorInfo:
    error = data["error"]
    code = error.get("code")
    return ErrorInfo(
        message=str(error.get("message") or "no message"),
        error_type=error.get("type"),
        code=str(code) if code is not None else None,
        request_id=request_id,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
    )


def _env(name: str | None) -> str | None:
    return (os.environ.get(name) or None) if name else None
