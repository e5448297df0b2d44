"""A strict fake of Azure OpenAI chat deployments (vendors.md §2 and §8.12).

Built on ``FakeOpenAI`` (same body validation, tool calls and stream grammar) with Azure's
differences: the classic ``/openai/deployments/{deployment}/chat/completions?api-version=...``
route (404 "Resource not found" without a valid ``api-version``) and the v1 route
``/openai/v1/chat/completions`` (deployment in the body's ``model``); ``api-key`` auth or an
Entra ID bearer token (the v1 route also takes the key as a bearer token); gateway-shaped errors
``{"error":{"code":"401","message":...}}``; responses whose ``model`` is the deployment's
underlying model version, with ``prompt_filter_results`` and per-choice
``content_filter_results``; streams that open with an empty-``choices`` prompt-filter chunk and
carry a filter-only chunk after the finish chunk. Checked with ``openai.AzureOpenAI``
(tests/test_fake_azure_sdk.py). Usage::

    with FakeAzureOpenAI(api_key="azure-key") as fake:
        client = openai.AzureOpenAI(azure_endpoint=fake.url, api_key="azure-key",
                                    api_version="2024-10-21")

``fake.filter_prompt_containing = "forbidden"`` makes prompts containing that text fail like
Azure's content filter (400 ``code: "content_filter"``).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from llmdispatcher.vendors.azure import AzureOpenAIVendor
from llmdispatcher.vendors.base import Vendor

from .openai_fake import FakeOpenAI, choice_meta
from .openai_validation import Problem, validate_chat
from .script import Fail, Reply
from .server import Call, Handler, StreamPlan

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
CLASSIC_CHAT = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
CLASSIC_EMBEDDINGS = re.compile(r"^/openai/deployments/([^/]+)/embeddings$")
# deployment -> the model version Azure reports in responses
DEFAULT_DEPLOYMENTS: Mapping[str, str] = {
    "gpt-4o": "gpt-4o-2024-11-20",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "gpt-5": "gpt-5-2025-08-07",
}
SAFE: dict[str, Any] = {
    c: {"filtered": False, "severity": "safe"} for c in ("hate", "self_harm", "sexual", "violence")
}
PROMPT_SAFE: dict[str, Any] = {**SAFE, "jailbreak": {"filtered": False, "detected": False}}
DENIED_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
DENIED_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)
FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
# kind -> (status, code, message, type). A type means a model-level error in OpenAI's shape;
# None means a gateway error {"code", "message"}. "{version}"/"{retry}" are filled in.
FAILS: dict[str, tuple[int, str | None, str, str | None]] = {
    "rate_limit": (
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "{version} have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after {retry} seconds. Please go here: https://aka.ms/oai/quotaincrease "
        "if you would like to further increase the default rate limit.",
        None,
    ),
    "quota": (
        429,
        "insufficient_quota",
        "The quota of this Azure OpenAI resource is exhausted; raise it in the Azure portal.",
        None,
    ),
    "server": (
        500,
        "InternalServerError",
        "Backend returned unexpected response. Please contact Microsoft for help.",
        None,
    ),
    "overloaded": (
        503,
        "ServiceUnavailable",
        "The service is temporarily unable to process your request. Please try again later.",
        None,
    ),
    "auth": (401, "401", DENIED_KEY, None),
    "bad_request": (400, None, "Invalid request (scripted by the fake).", "invalid_request_error"),
    "not_found": (404, "DeploymentNotFound", NO_DEPLOYMENT, None),
    "context_length": (
        400,
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 131072 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
    ),
    "timeout": (408, "Timeout", "The operation was timeout.", None),
    "conflict": (409, "409", "Another operation is in progress for this deployment.", None),
}


def gateway_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeAzureOpenAI(FakeOpenAI):
    """Strict fake of an Azure OpenAI resource's chat deployments and model listing."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        deployments: Mapping[str, str] = DEFAULT_DEPLOYMENTS,
        ad_token: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """``api_key=None`` accepts any key; ``ad_token`` is the one Entra ID token accepted."""
        super().__init__(api_key=api_key, models=list(deployments.values()), host=host)
        self.deployments = dict(deployments)
        self.ad_token = ad_token
        self.filter_prompt_containing: str | None = None

    def reset(self) -> None:
        super().reset()
        self.filter_prompt_containing = None

    # ------------------------------------------------------------------------------ routing
    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/openai/v1/chat/completions"): self._v1_chat,
            ("POST", "/openai/v1/embeddings"): self._v1_embeddings,
            ("GET", "/openai/models"): self._azure_models,
            ("GET", "/openai/v1/models"): self._azure_models,
        }

    def match(self, method: str, path: str) -> Handler | None:
        if method == "POST" and CLASSIC_CHAT.match(path):
            return self._classic_chat
        if method == "POST" and CLASSIC_EMBEDDINGS.match(path):
            return self._classic_embeddings
        return self.routes().get((method, path))

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return self.gateway(404, "404", "Resource not found")

    def response_headers(self, call: Call) -> dict[str, str]:
        rid = call.meta.setdefault("request_id", str(uuid.uuid4()))
        limited = call.meta.get("fail") == "rate_limit"
        return {
            "apim-request-id": rid,
            "x-request-id": rid,
            "x-ms-region": "East US",
            "x-ms-rai-invoked": "true",
            "x-ratelimit-remaining-requests": "0" if limited else "99",
            "x-ratelimit-remaining-tokens": "0" if limited else "99990",
        }

    # ----------------------------------------------------------------------------- handlers
    def gateway(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response(gateway_body(code, message), status=status)

    def _key_ok(self, key: str) -> bool:
        return bool(key) and (self.api_key is None or key == self.api_key)

    def _azure_auth(self, call: Call, *, v1: bool) -> web.Response | None:
        headers = call.request.headers
        if "api-key" in headers:
            return (
                None if self._key_ok(headers["api-key"]) else self.gateway(401, "401", DENIED_KEY)
            )
        scheme, _, bearer = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            return self.gateway(401, "401", DENIED_KEY)
        token = bearer.strip()
        if token == self.ad_token or (v1 and self._key_ok(token)):
            return None
        return self.gateway(401, "401", DENIED_TOKEN)

    def _version_missing(self, call: Call) -> web.Response | None:
        if API_VERSION.match(call.record.query.get("api-version", "")):
            return None
        return self.gateway(404, "404", "Resource not found")

    async def _classic_chat(self, call: Call) -> web.StreamResponse:
        match = CLASSIC_CHAT.match(call.request.path)
        assert match is not None
        return await self._azure_chat(call, unquote(match.group(1)), v1=False)

    async def _v1_chat(self, call: Call) -> web.StreamResponse:
        body = call.body if call.json_ok and isinstance(call.body, dict) else {}
        model = body.get("model")
        return await self._azure_chat(call, model if isinstance(model, str) else None, v1=True)

    async def _classic_embeddings(self, call: Call) -> web.StreamResponse:
        match = CLASSIC_EMBEDDINGS.match(call.request.path)
        assert match is not None
        deployment = unquote(match.group(1))
        refused = self._version_missing(call)
        if refused is not None:
            return refused
        if deployment not in self.deployments:
            return self.gateway(404, "DeploymentNotFound", NO_DEPLOYMENT)
        # The classic route takes the deployment from the URL; the answer names the model.
        return await self.embeddings(
            call, lambda c: self._azure_auth(c, v1=False), self.deployments[deployment]
        )

    async def _v1_embeddings(self, call: Call) -> web.StreamResponse:
        return await self.embeddings(call, lambda c: self._azure_auth(c, v1=True))

    async def _azure_chat(
        self, call: Call, deployment: str | None, *, v1: bool
    ) -> web.StreamResponse:
        body: dict[str, Any] = call.body if call.json_ok and isinstance(call.body, dict) else {}
        call.meta["model"] = self.deployments.get(deployment or "", "gpt-4o-2024-11-20")
        call.meta["version"] = call.record.query.get("api-version", "v1")
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        refused = None if v1 else self._version_missing(call)
        if refused is None:
            refused = self._azure_auth(call, v1=v1)
        if refused is not None:
            return refused
        if deployment is not None and deployment not in self.deployments:
            return self.gateway(404, "DeploymentNotFound", NO_DEPLOYMENT)
        try:  # the classic route takes the deployment from the URL: "model" may be left out
            validate_chat({"model": deployment, **body} if call.json_ok else None)
        except Problem as p:
            return self.error(call, p.status, p.message, "invalid_request_error", p.param, p.code)
        if self._filtered(body):
            return web.json_response(self._filter_error(), status=400)
        call.stream = body.get("stream") is True
        options = body.get("stream_options") or {}
        call.meta.update(
            include_usage=options.get("include_usage") is True,
            obfuscation=False,
            id="chatcmpl-" + secrets.token_hex(14),
            created=1730000000,
            fingerprint="fp_" + secrets.token_hex(5),
            **choice_meta(body),
        )
        return await self.run_step(call)

    def _filtered(self, body: dict[str, Any]) -> bool:
        needle = self.filter_prompt_containing
        return bool(needle) and needle in orjson.dumps(body.get("messages")).decode()

    @staticmethod
    def _filter_error() -> dict[str, Any]:
        result = {**PROMPT_SAFE, "violence": {"filtered": True, "severity": "medium"}}
        inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result}
        error = {"message": FILTERED, "type": None, "param": "prompt", "code": "content_filter"}
        return {"error": {**error, "status": 400, "innererror": inner}}

    async def _azure_models(self, call: Call) -> web.StreamResponse:
        v1 = call.request.path.startswith("/openai/v1/")
        refused = None if v1 else self._version_missing(call)
        if refused is None:
            refused = self._azure_auth(call, v1=v1)
        if refused is not None:
            return refused
        data = [
            {
                "id": version,
                "object": "model",
                "status": "succeeded",
                "capabilities": {"chat_completion": True, "completion": False, "inference": True},
                "lifecycle_status": "generally-available",
                "created_at": 1730000000,
            }
            for version in sorted(set(self.deployments.values()))
        ]
        return web.json_response({"data": data, "object": "list"})

    # ---------------------------------------------------------------------------- rendering
    def _fail_body(self, call: Call, kind: str, fail: Fail | None = None) -> tuple[int, Any]:
        status, code, message, type_ = FAILS[kind]
        retry = fail.retry_after if fail and fail.retry_after else "1"
        message = message.format(version=call.meta.get("version", "v1"), retry=retry)
        if fail is not None and fail.message:
            message = fail.message
        if type_ is None:
            return status, gateway_body(str(code), message)
        param = "messages" if kind == "context_length" else None
        return status, {"error": {"message": message, "type": type_, "param": param, "code": code}}

    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        call.meta["fail"] = fail.kind
        status, body = self._fail_body(call, fail.kind, fail)
        resp = web.json_response(body, status=fail.status or status)
        if fail.retry_after is not None:
            resp.headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        return b"data: " + orjson.dumps(self._fail_body(call, kind)[1]) + b"\n\n"

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        plain = super().reply_response(call, reply)
        assert isinstance(plain, web.Response)
        body = orjson.loads(plain.body)  # type: ignore[arg-type]
        del body["service_tier"]
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": PROMPT_SAFE}]
        body["choices"][0]["content_filter_results"] = _choice_filter(reply)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        """OpenAI's frames with Azure's: an empty-``choices`` prompt-filter chunk first,
        filter results on every choice, a filter-only chunk after the finish chunk."""
        plan = super().stream_plan(call, reply)
        results = _choice_filter(reply)
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": PROMPT_SAFE}],
        }
        trailing = {
            "choices": [
                {
                    "content_filter_offsets": {
                        "check_offset": 0,
                        "start_offset": 0,
                        "end_offset": 9,
                    },
                    "content_filter_results": results,
                    "delta": {},
                    "finish_reason": None,
                    "index": 0,
                }
            ],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
        }
        plan.head = [sse_frame(first), *(edit_frame(f, _azure_chunk) for f in plan.head)]
        plan.content = [edit_frame(f, _azure_chunk) for f in plan.content]
        finish, *rest = plan.tail
        rest = [edit_frame(f, _azure_chunk) for f in rest]
        plan.tail = [edit_frame(finish, _azure_chunk), sse_frame(trailing), *rest]
        return plan


def _choice_filter(reply: Reply) -> dict[str, Any]:
    if reply.finish == "content_filter":
        return {**SAFE, "violence": {"filtered": True, "severity": "medium"}}
    return SAFE


def _azure_chunk(chunk: dict[str, Any]) -> None:
    chunk.pop("service_tier", None)
    for choice in chunk.get("choices") or ():
        choice["content_filter_results"] = SAFE if choice["delta"].get("content") else {}


def sse_frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def edit_frame(frame: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Apply ``change`` to a ``data: {json}`` frame; other frames pass unchanged."""
    if not frame.startswith(b"data: {"):
        return frame
    chunk = orjson.loads(frame[len(b"data: ") :])
    change(chunk)
    return sse_frame(chunk)


def adapter_for(fake: FakeAzureOpenAI, **kwargs: Any) -> Vendor:
    """Our Azure adapter pointed at ``fake`` (classic surface), with the fake's key."""
    options: dict[str, Any] = {"azure_endpoint": fake.url, "api_version": "2024-10-21"}
    if not {"api_key", "azure_ad_token"} & kwargs.keys():
        options["api_key"] = fake.api_key or "azure-fake-key-0000"
    return AzureOpenAIVendor(**{**options, **kwargs})
