"""AWS Bedrock Runtime, Converse and ConverseStream (vendors.md §11): one module for every
Bedrock model family.

``POST {endpoint}/model/{modelId}/converse`` (``/converse-stream`` for streams), the model id
(or inference-profile id or ARN) percent-encoded as one path segment. Request translation lives
in ``bedrock_request``, auth in ``bedrock_auth``, the binary stream framing in ``eventstream``.
Here:

* Responses: ``text`` blocks -> text, ``toolUse`` blocks -> tool calls (input as a JSON string),
  the ``json_output`` tool's input -> text; ``reasoningContent`` is not part of the answer.
  ``stopReason`` maps to our finish reasons; ``malformed_model_output``/``malformed_tool_use``
  raise a retryable ``VendorServerError`` (a new sample usually works).
* Usage: ``inputTokens`` counts uncached input only, so prompt tokens are it plus
  ``cacheReadInputTokens`` and ``cacheWriteInputTokens`` (as for Anthropic).
* Streams: ``messageStart``, content block events, ``messageStop`` (the stop reason), then
  ``metadata`` (usage): complete only once both arrived. An ``exception`` frame after the 200
  is an error of the status its type stands for.
* Errors: the type is the ``x-amzn-ErrorType`` header up to its first ``:`` (botocore's rule),
  else the body's ``__type``/``code``. ``ModelErrorException`` (424) and
  ``ModelStreamErrorException`` are the model's failure: retryable server errors.
  ``ServiceQuotaExceededException`` is a quota spent: not retried.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any, cast
from urllib.parse import quote

import orjson

from ..errors import (
    AuthenticationError,
    ConfigError,
    RateLimitError,
    UnsupportedRequest,
    VendorConnectionError,
    VendorError,
    VendorServerError,
    VendorTimeout,
)
from ..limits import Limits
from ..types import FinishReason, Request, Response, StreamChunk, ToolCall, ToolCallDelta, Usage
from .anthropic_request import JSON_TOOL, wants_json_tool
from .base import Capabilities, Health, Secret, secret_from
from .bedrock_auth import (
    TOKEN_ENV,
    Authoriser,
    AwsKeys,
    BearerKey,
    SigV4,
    botocore_session,
    region_from,
)
from .bedrock_request import converse_body
from .connection import Connection
from .error_mapping import ErrorInfo, body_text, error_for, json_body
from .eventstream import EventMessage, EventStreamDecoder
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, count, decode_json

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
BROKEN_OUTPUT = frozenset({"malformed_model_output", "malformed_tool_use"})
# The status each in-stream exception stands for (what the same error would be before the 200).
STREAM_EXCEPTIONS: dict[str, int] = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}
# Errors whose status alone says the wrong thing.
MODEL_FAILED = frozenset({"ModelErrorException", "ModelStreamErrorException"})
QUOTA_SPENT = frozenset({"ServiceQuotaExceededException"})
AUTH_TYPES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"}
    | {"InvalidSignatureException", "IncompleteSignatureException"}
)
# Fields the adapter owns; ``Request.extra`` may not replace them.
OWNED_FIELDS = frozenset({"messages", "modelId"})
MODEL_PREFIXES = (
    "anthropic.",
    "amazon.",
    "meta.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "writer.",
    "qwen.",
    "openai.",
    "us.",
    "eu.",
    "apac.",
    "global.",
    "arn:aws:bedrock:",
)


class BedrockVendor(HttpVendor):
    """Bedrock Runtime Converse, for any model Converse serves.

    ``region``: else ``AWS_DEFAULT_REGION`` or the profile's ``region`` (as botocore reads
    them). ``profile``: a named profile of the shared config files (else ``AWS_PROFILE``).
    ``aws_keys``: static keys instead of the chain. ``api_key``: a Bedrock API key (else
    ``AWS_BEARER_TOKEN_BEDROCK``), sent as a bearer token instead of SigV4 signing.
    ``endpoint_url``: another endpoint (a VPC endpoint, a test server).
    """

    default_name = "bedrock"
    model_prefixes = MODEL_PREFIXES
    capabilities = Capabilities(streaming=True, tools=True, vision=True, json_mode=True)

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        aws_keys: AwsKeys | None = None,
        api_key: str | Secret | None = None,
        endpoint_url: str | None = None,
        name: str | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        vendor_name = name or self.default_name
        # Explicit keys or a profile ask for SigV4; otherwise a Bedrock API key wins if set.
        chain = api_key is None and (aws_keys is not None or profile is not None)
        key = Secret("") if chain else secret_from(api_key, TOKEN_ENV)
        # botocore is imported here only to read the region from the profile's config;
        # otherwise on the first signed request.
        session = None if key or region else botocore_session(profile, vendor_name)
        found = region_from(region, session)
        if not found:
            raise ConfigError(
                f"vendor {vendor_name!r}: no AWS region: export AWS_DEFAULT_REGION, set region "
                f"in the profile's config, or pass region= (vendors.{vendor_name}.region)"
            )
        self.region = found
        self.control_url = (endpoint_url or f"https://bedrock.{found}.amazonaws.com").rstrip("/")
        super().__init__(
            name=vendor_name,
            base_url=endpoint_url or f"https://bedrock-runtime.{found}.amazonaws.com",
            api_key=Secret(""),
            connection=connection,
        )
        self.auth: Authoriser = (
            BearerKey(key) if key else SigV4(found, profile, session, aws_keys, vendor_name)
        )
        self.pricing_name = f"bedrock/{found}"
        self.limits = limits or Limits()

    @classmethod
    def from_env(cls) -> BedrockVendor | None:
        """An instance when a Bedrock API key is set, or AWS keys or a profile together with a
        region (decided from variables alone: botocore is not imported for vendors not used)."""
        env = os.environ
        if env.get(TOKEN_ENV):
            return cls()
        has_region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
        if has_region and (env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE")):
            return cls(region=has_region)
        return None

    # --- request -----------------------------------------------------------------------------
    def model_url(self, model: str, operation: str) -> str:
        if not model.strip() or len(model) > 2048:
            raise UnsupportedRequest(
                f"request.model: {model[:80]!r} is not a Bedrock model id, profile id or ARN",
                vendor=self.name,
            )
        return f"{self.base_url}/model/{quote(model, safe='')}/{operation}"

    def check(self, request: Request) -> None:
        self.model_url(request.model, "converse")
        super().check(request)

    def build_body(self, request: Request) -> dict[str, Any]:
        body = converse_body(request, self.name)
        for key, value in (request.extra or {}).items():
            if key not in OWNED_FIELDS:
                body[key] = value
        return body

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        url = self.model_url(request.model, "converse-stream" if stream else "converse")
        body = orjson.dumps(self.build_body(request))
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = {"Content-Type": "application/json", "Accept": accept, **self.extra_headers}
        return HttpCall(url, self.auth.headers(url, headers, body), body)

    async def send(self, request: Request) -> Response:
        await self.auth.ready()
        return await super().send(request)

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        await self.auth.ready()
        chunks = cast(AsyncGenerator[StreamChunk, None], super().stream(request))
        async with aclosing(chunks):  # closing it hangs up on Bedrock at once
            async for chunk in chunks:
                yield chunk

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        json_tool = JSON_TOOL if wants_json_tool(request) else None
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in ((data.get("output") or {}).get("message") or {}).get("content") or ():
            if isinstance(block.get("text"), str):
                text.append(block["text"])
            use = block.get("toolUse")
            if isinstance(use, Mapping):
                arguments = orjson.dumps(use.get("input") or {}).decode()
                if use.get("name") == json_tool:
                    text.append(arguments)
                else:
                    calls.append(ToolCall(str(use.get("toolUseId") or ""), use["name"], arguments))
        return Response(
            content="".join(text),
            vendor=self.name,
            model=request.model,
            finish_reason=map_stop_reason(data.get("stopReason"), bool(calls), self.name),
            usage=usage_from_bedrock(data.get("usage")),
            tool_calls=tuple(calls),
            raw=data,
        )

    def stream_decoder(self, request: Request) -> StreamDecoder:
        json_tool = JSON_TOOL if wants_json_tool(request) else None
        return ConverseStreamDecoder(self, request.model, json_tool)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        data = json_body(body)
        found = data if isinstance(data, dict) else {}
        kind = error_type(headers, found)
        message = found.get("message") or found.get("Message")
        return ErrorInfo(
            message=str(message) if message else body_text(status, body),
            error_type=kind,
            request_id=header_value(headers, "x-amzn-requestid"),
        )

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> VendorError:
        return refine_error(super()._error(status, headers, body))

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        """Text models served on demand: the control plane's ``ListFoundationModels``
        (``GET {control}/foundation-models``, signed like Converse; ``endpoint_url``, when
        given, is taken to serve it too)."""
        await self.auth.ready()
        url = (
            f"{self.control_url}/foundation-models?byOutputModality=TEXT&byInferenceType=ON_DEMAND"
        )
        headers = self.auth.headers(url, {"Accept": "application/json"}, b"", method="GET")
        data = decode_json((await self.get(url, headers)).body, self.name)
        return sorted(str(m.get("modelId")) for m in data.get("modelSummaries") or ())

    async def health(self) -> Health:
        """Credentials resolve: Bedrock Runtime has no cheap authenticated GET (model listing
        is the separate ``bedrock`` control-plane API, which this adapter does not call)."""
        try:
            await self.auth.ready()
        except VendorError as exc:
            return Health(False, 0.0, str(exc))
        return Health(True, 0.0, f"credentials resolved for {self.region}; nothing sent")

    def secrets(self) -> tuple[str, ...]:
        return self.auth.secrets()

    def __repr__(self) -> str:
        return f"BedrockVendor(name={self.name!r}, region={self.region!r})"


class ConverseStreamDecoder:
    """Event-stream frames from ``messageStart`` to ``messageStop`` + ``metadata``."""

    def __init__(self, vendor: BedrockVendor, model: str, json_tool: str | None) -> None:
        self._vendor = vendor
        self._model = model
        self._json_tool = json_tool
        self._frames = EventStreamDecoder()
        self._kinds: dict[int, str] = {}  # block index -> text | tool | json
        self._ordinals: dict[int, int] = {}
        self._has_input: set[int] = set()
        self._finish: FinishReason | None = None
        self._stopped = False
        self._done = False

    def feed(self, data: bytes) -> Iterator[StreamChunk]:
        for message in self._frames.feed(data):
            yield from self._message(message)

    def finish(self) -> Iterator[StreamChunk]:
        if not self._done:
            where = "messageStop" if not self._stopped else "metadata"
            raise VendorConnectionError(
                f"the stream ended before {where}", vendor=self._vendor.name
            )
        return iter(())

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(vendor=self._vendor.name, model=self._model, **fields)

    def _message(self, message: EventMessage) -> Iterator[StreamChunk]:
        kind = message.header(":message-type")
        if kind == "exception":
            raise self._exception(message)
        if kind == "error":
            raise self._exception(message, message.header(":error-code"))
        if kind != "event" or self._done:
            return
        handler = getattr(self, f"_on_{message.header(':event-type')}", None)
        if handler is None:
            return
        chunk = handler(decode_json(message.payload, self._vendor.name))
        if chunk is not None:
            yield chunk

    def _on_contentBlockStart(self, data: Any) -> StreamChunk | None:
        index = int(data.get("contentBlockIndex", 0))
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, Mapping):
            return None
        if use.get("name") == self._json_tool:
            self._kinds[index] = "json"
            return None
        self._kinds[index] = "tool"
        self._ordinals[index] = len(self._ordinals)
        delta = ToolCallDelta(
            self._ordinals[index], str(use.get("toolUseId") or ""), use["name"], ""
        )
        return self._chunk(tool_call_deltas=(delta,))

    def _on_contentBlockDelta(self, data: Any) -> StreamChunk | None:
        index = int(data.get("contentBlockIndex", 0))
        delta = data.get("delta") or {}
        if isinstance(delta.get("text"), str) and delta["text"]:
            return self._chunk(delta=delta["text"])
        fragment = (delta.get("toolUse") or {}).get("input")
        if not isinstance(fragment, str) or not fragment or index not in self._kinds:
            return None  # reasoning, citations: not part of the answer
        self._has_input.add(index)
        return self._tool_piece(index, fragment)

    def _on_contentBlockStop(self, data: Any) -> StreamChunk | None:
        index = int(data.get("contentBlockIndex", 0))
        if index not in self._kinds or index in self._has_input:
            return None
        return self._tool_piece(index, "{}")  # no input streamed: the arguments are {}

    def _tool_piece(self, index: int, fragment: str) -> StreamChunk:
        if self._kinds[index] == "json":
            return self._chunk(delta=fragment)
        delta = ToolCallDelta(self._ordinals[index], None, None, fragment)
        return self._chunk(tool_call_deltas=(delta,))

    def _on_messageStop(self, data: Any) -> StreamChunk | None:
        self._stopped = True
        self._finish = map_stop_reason(
            data.get("stopReason"), bool(self._ordinals), self._vendor.name
        )
        return None

    def _on_metadata(self, data: Any) -> StreamChunk | None:
        if not self._stopped:
            return None
        self._done = True
        return self._chunk(finish_reason=self._finish, usage=usage_from_bedrock(data.get("usage")))

    def _exception(self, message: EventMessage, code: str = "") -> VendorError:
        kind = code or message.header(":exception-type")
        data = json_body(message.payload)
        text = data.get("message") if isinstance(data, dict) else None
        info = ErrorInfo(str(text or f"the stream sent {kind or 'an error'}"), error_type=kind)
        status = STREAM_EXCEPTIONS.get(kind, 500)
        vendor = self._vendor
        return refine_error(error_for(status, info, vendor=vendor.name, secrets=vendor.secrets()))


def error_type(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """botocore's rule: ``x-amzn-ErrorType`` up to the first ``:``, else the body's type."""
    header = header_value(headers, "x-amzn-errortype")
    if header:
        return header.split(":", 1)[0]
    kind = body.get("__type") or body.get("code")
    return str(kind).rsplit("#", 1)[-1] if kind else None


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its lowercase name, whatever case the transport kept."""
    found = headers.get(name)
    if found is None:
        found = next((v for k, v in headers.items() if k.lower() == name), None)
    return found


def refine_error(error: VendorError) -> VendorError:
    """What the status table cannot know for Bedrock's error types."""
    kind = error.error_type or ""
    target: tuple[type[VendorError], bool] | None = None
    if kind in MODEL_FAILED or kind == "modelStreamErrorException":
        target = (VendorServerError, True)
    elif kind in QUOTA_SPENT:
        target = (RateLimitError, False)
    elif kind in AUTH_TYPES:
        target = (AuthenticationError, False)
    elif kind == "ModelTimeoutException":
        target = (VendorTimeout, True)
    if target is None or (type(error), error.retryable) == target:
        return error
    cls, retryable = target
    return cls(
        error.message,
        vendor=error.vendor,
        status=error.status,
        retryable=retryable,
        retry_after=error.retry_after,
        error_type=error.error_type,
        error_code=error.error_code,
        request_id=error.request_id,
    )


def map_stop_reason(raw: str | None, has_calls: bool, vendor: str) -> FinishReason | None:
    if raw is None:
        return "tool_calls" if has_calls else None
    if raw in BROKEN_OUTPUT:
        raise VendorServerError(
            f"the model's output was unusable (stopReason {raw}); a new try usually succeeds",
            vendor=vendor,
            error_type=raw,
        )
    if raw == "tool_use" and not has_calls:
        return "stop"  # the JSON-mode tool: its input is the answer's text
    return STOP_REASONS.get(raw, "stop")


def usage_from_bedrock(data: Mapping[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    read = count(data.get("cacheReadInputTokens"))
    written = count(data.get("cacheWriteInputTokens"))
    prompt = count(data.get("inputTokens")) + read + written
    completion = count(data.get("outputTokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_tokens=written,
    )
