"""A strict fake of AWS Bedrock Runtime's Converse and ConverseStream (vendors.md §11).

``POST /model/{modelId}/converse`` answers JSON; ``/converse-stream`` answers binary
``application/vnd.amazon.eventstream`` frames (CRC-checked, encoded by our own
``eventstream.encode_message``; boto3 decodes them with botocore's parser). Checked with the
official ``boto3`` as client (tests/test_fake_bedrock_sdk.py)::

    with FakeBedrock() as fake:
        client = boto3.client("bedrock-runtime", region_name=fake.region,
                              endpoint_url=fake.url, aws_access_key_id=FAKE_AWS_KEY_ID,
                              aws_secret_access_key=FAKE_AWS_SECRET)

Auth is verified, not just looked for: a SigV4 ``Authorization`` must name the fake's access key,
its region and the signing name ``bedrock``, sign ``host`` and ``x-amz-date``, and carry the
signature botocore computes with the fake's secret key; or ``Authorization: Bearer`` with the
fake's Bedrock API key. The body is checked against botocore's own service model
(``bedrock_validation``).

Fail kinds (status, ``x-amzn-ErrorType``): rate_limit 429 ThrottlingException; quota 400
ServiceQuotaExceededException; server 500 InternalServerException; overloaded 503
ServiceUnavailableException; auth 403 UnrecognizedClientException; bad_request 400
ValidationException; not_found 404 ResourceNotFoundException; context_length 400
ValidationException; timeout 408 ModelTimeoutException; conflict 409 ConflictException.
``retry-after`` is sent only when scripted (Bedrock itself sends none). A MidStreamError renders
an ``exception`` frame (server: ``internalServerException``). ``GET /foundation-models`` is the
control plane's ``ListFoundationModels`` (boto3's ``bedrock`` client); an image sent to a model
in ``TEXT_ONLY`` is a 400 ValidationException, as Converse answers it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from llmdispatcher.vendors.bedrock import BedrockVendor
from llmdispatcher.vendors.bedrock_auth import AwsKeys
from llmdispatcher.vendors.eventstream import encode_message

from .bedrock_validation import Problem, validate_converse
from .script import Fail, Reply, split_text
from .server import Call, FakeServer, Handler, StreamPlan

FAKE_AWS_KEY_ID = "AKIAFAKEBEDROCK00001"
FAKE_AWS_SECRET = "fake/secret+key/0123456789abcdefghijklmn"
FAKE_BEDROCK_API_KEY = "ABSKfake-bedrock-api-key-0123456789"
DEFAULT_MODELS = (
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
)
# Models that take no images: Converse answers 400 to an image block.
TEXT_ONLY = frozenset({"amazon.nova-micro-v1:0", "meta.llama3-3-70b-instruct-v1:0"})
NO_IMAGES = (
    "This model doesn't support the image content block that you provided. Try again with a "
    "model that supports image content."
)
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
FAILS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    ),
    "quota": (
        400,
        "ServiceQuotaExceededException",
        "Your request exceeds the service quota for your account.",
    ),
    "server": (500, "InternalServerException", "The server encountered an internal error."),
    "overloaded": (
        503,
        "ServiceUnavailableException",
        "Bedrock is unable to process your request.",
    ),
    "auth": (
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "bad_request": (400, "ValidationException", "Invalid request (scripted by the fake)."),
    "not_found": (404, "ResourceNotFoundException", "The provided model identifier is invalid."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "timeout": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
    "conflict": (409, "ConflictException", "The request conflicts with another request."),
}
STREAM_EXCEPTIONS = {
    "server": "internalServerException",
    "overloaded": "serviceUnavailableException",
    "rate_limit": "throttlingException",
    "bad_request": "validationException",
}
_PREFIX = "/model/"
_OPERATIONS = ("/converse", "/converse-stream")


class FakeBedrock(FakeServer):
    """Strict fake of ``bedrock-runtime.{region}.amazonaws.com`` Converse."""

    stream_content_type = "application/vnd.amazon.eventstream"

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        models: Sequence[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(api_key=FAKE_BEDROCK_API_KEY, host=host)
        self.region = region
        self.access_key_id = FAKE_AWS_KEY_ID
        self.secret_key = FAKE_AWS_SECRET
        self.models = list(models)

    # ------------------------------------------------------------------------------ routing
    def match(self, method: str, path: str) -> Handler | None:
        if method == "POST" and path.startswith(_PREFIX) and path.endswith(_OPERATIONS):
            return self._converse
        if method == "GET" and path == "/foundation-models":  # the control plane's listing
            return self._foundation_models
        return None

    async def _foundation_models(self, call: Call) -> web.StreamResponse:
        if (denied := self._auth(call)) is not None:
            return denied
        query = call.record.query
        unknown = set(query) - {"byProvider", "byOutputModality", "byInferenceType"}
        if unknown or query.get("byOutputModality", "TEXT") != "TEXT":
            return self.error(400, "ValidationException", f"bad query {sorted(query)}")
        summaries = [
            {
                "modelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{m}",
                "modelId": m,
                "modelName": m.split(".", 1)[-1],
                "providerName": m.split(".", 1)[0],
                "inputModalities": ["TEXT"] if m in TEXT_ONLY else ["TEXT", "IMAGE"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for m in self.models
            if not m.startswith(("us.", "eu.", "apac.", "global.", "arn:"))  # profiles: not listed
        ]
        return web.json_response({"modelSummaries": summaries})

    async def unknown_route(self, call: Call) -> web.StreamResponse:
        return self.error(404, "UnknownOperationException", "")

    def response_headers(self, call: Call) -> dict[str, str]:
        rid: str = call.meta.setdefault("request_id", str(uuid.uuid4()))
        return {"x-amzn-RequestId": rid}

    @staticmethod
    def error(status: int, kind: str, message: str) -> web.Response:
        body = {"message": message} if message else {}
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={
                "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            },
        )

    # ----------------------------------------------------------------------------- handlers
    async def _converse(self, call: Call) -> web.StreamResponse:
        # The model id is one percent-encoded segment: split the target as sent, then decode.
        target = call.record.target.split("?", 1)[0]
        encoded, _, operation = target.removeprefix(_PREFIX).rpartition("/")
        model = unquote(encoded)
        call.meta["model"] = model
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._auth(call)) is not None:
            return denied
        if "/" in encoded or model not in self.models:
            return self.error(
                404, "ResourceNotFoundException", "The provided model identifier is invalid."
            )
        try:
            validate_converse(call.body, call.json_ok)
        except Problem as p:
            return self.error(400, "ValidationException", p.message)
        if model in TEXT_ONLY and _has_image(call.body):
            return self.error(400, "ValidationException", NO_IMAGES)
        call.stream = operation == "converse-stream"
        return await self.run_step(call)

    def _auth(self, call: Call) -> web.Response | None:
        header = call.request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if header.removeprefix("Bearer ").strip() == self.api_key:
                return None
            return self.error(
                403, "AccessDeniedException", "Authentication failed: invalid API key."
            )
        if not header.startswith("AWS4-HMAC-SHA256 "):
            return self.error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        problem = self._sigv4_problem(call, header)
        if problem is None:
            return None
        kind, message = problem
        return self.error(403, kind, message)

    def _sigv4_problem(self, call: Call, header: str) -> tuple[str, str] | None:
        fields = dict(
            part.strip().split("=", 1)
            for part in header.removeprefix("AWS4-HMAC-SHA256 ").split(",")
        )
        key_id, date, region, service, _ = (fields.get("Credential", "") + "////").split("/")[:5]
        signed = fields.get("SignedHeaders", "").split(";")
        if key_id != self.access_key_id:
            return (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if service != "bedrock" or region != self.region:
            return (
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region / service 'bedrock', not "
                f"'{region}/{service}'.",
            )
        if not {"host", "x-amz-date"} <= set(signed):
            return "IncompleteSignatureException", "host and x-amz-date must be signed."
        if fields.get("Signature") != self._signature(call, signed, date):
            return (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None

    def _signature(self, call: Call, signed: list[str], date: str) -> str:
        """The signature botocore computes for this request with the fake's secret key."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        headers = call.request.headers
        kept = {name: headers.get(name, "") for name in signed}
        request = AWSRequest(
            method=call.request.method,
            url=f"http://{headers.get('Host', '')}{call.record.target}",
            data=call.record.raw,
            headers=kept,
        )
        request.context["timestamp"] = headers.get("x-amz-date", "")
        if not request.context["timestamp"].startswith(date):
            return "date mismatch"
        auth = SigV4Auth(Credentials(self.access_key_id, self.secret_key), "bedrock", self.region)
        canonical = auth.canonical_request(request)
        return str(auth.signature(auth.string_to_sign(request, canonical), request))

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        status, kind, message = FAILS[fail.kind]
        resp = self.error(fail.status or status, kind, fail.message or message)
        if fail.retry_after is not None:
            resp.headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = fail.retry_after_ms
        return resp

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        name = STREAM_EXCEPTIONS.get(kind, "modelStreamErrorException")
        _, _, message = FAILS[kind]
        headers = {
            ":exception-type": name,
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        return encode_message(headers, orjson.dumps({"message": message}))

    def _tool_uses(self, call: Call, reply: Reply) -> list[dict[str, Any]]:
        key = f"tools-{id(reply)}"
        if key not in call.meta:
            call.meta[key] = [
                {
                    "toolUseId": "tooluse_" + secrets.token_urlsafe(16),
                    "name": tc.name,
                    "input": tc.arguments,
                }
                for tc in reply.tool_calls
            ]
        uses: list[dict[str, Any]] = call.meta[key]
        return uses

    @staticmethod
    def _usage(reply: Reply) -> dict[str, Any]:
        """Reply counts are OpenAI-style (prompt includes cached); ``inputTokens`` does not."""
        return {
            "inputTokens": reply.prompt_tokens - reply.cached_tokens,
            "outputTokens": reply.completion_tokens,
            "totalTokens": reply.total_tokens,
            "cacheReadInputTokens": reply.cached_tokens,
            "cacheWriteInputTokens": 0,
        }

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        content += [{"toolUse": use} for use in self._tool_uses(call, reply)]
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": STOP_REASONS[reply.finish],
            "usage": self._usage(reply),
            "metrics": {"latencyMs": 42},
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        """Frames that give the client a text or tool piece are ``content``; block stops ride
        along with the next such frame, or go to the tail."""
        plan = StreamPlan(head=[event("messageStart", {"role": "assistant"})])
        pending: list[bytes] = []
        index = 0

        def show(frame: bytes) -> None:
            plan.content.append(b"".join([*pending, frame]))
            pending.clear()

        for piece in reply.text_pieces():  # text blocks start with their first delta
            show(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
        if reply.text:
            pending.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            index = 1
        for use in self._tool_uses(call, reply):
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            show(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            args = orjson.dumps(use["input"]).decode() if use["input"] else ""
            for piece in split_text(args, reply.chunk_size):
                delta = {"toolUse": {"input": piece}}
                show(event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            pending.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        plan.tail = [
            *pending,
            event("messageStop", {"stopReason": STOP_REASONS[reply.finish]}),
            event("metadata", {"usage": self._usage(reply), "metrics": {"latencyMs": 42}}),
        ]
        return plan


def _has_image(body: Any) -> bool:
    return any("image" in block for m in body["messages"] for block in m["content"])


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def adapter_for(fake: FakeBedrock, **kwargs: Any) -> BedrockVendor:
    """Our BedrockVendor pointed at ``fake``, SigV4-signing with the fake's keys."""
    kwargs.setdefault("aws_keys", AwsKeys(fake.access_key_id, fake.secret_key))
    return BedrockVendor(region=fake.region, endpoint_url=fake.url, **kwargs)
