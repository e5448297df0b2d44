"""A strict fake of Google Vertex AI for Gemini and Claude models (vendors.md §12), with the
OAuth2 token endpoint that Google credentials refresh against.

* ``POST /{v1,v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``
  (``:streamGenerateContent``): the Gemini wire format, rendered and validated as ``FakeGemini``
  does (this class extends it).
* ``POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict``
  (``:streamRawPredict``): the Messages API body without ``model``, with ``anthropic_version``
  (``vertex-2023-10-16`` or the SDK's ``2026-10-21``; sampling parameters only on the first), no
  ``x-api-key``; answers rendered as ``FakeAnthropic`` does.
* ``GET /v1beta1/publishers/{google|anthropic}/models``: the Model Garden listing.
* ``POST /token``: an OAuth2 token endpoint (``refresh_token`` grant for user credentials, the
  JWT-bearer grant for a service account's signed assertion), issuing ``ya29.`` tokens
  that live ``token_lifetime`` seconds. Model requests need ``Authorization: Bearer`` with an
  issued token (or one from ``issue_token()``), the fake's project and location.

Proven with google-genai (``vertexai=True``) and anthropic's ``AnthropicVertex`` as clients
(tests/test_fake_vertex_sdk.py). Errors: Gemini's are the RPC shape of FakeGemini, but a bad
token is 401 ``UNAUTHENTICATED``; for Claude, rate_limit/quota/auth/not_found/timeout come from
Google's front end (RPC shape), the rest from the model (Anthropic's shape).
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from . import anthropic_fake
from .anthropic_validation import Problem as AnthropicProblem
from .anthropic_validation import validate
from .gemini_fake import FakeGemini
from .gemini_validation import Problem as GeminiProblem
from .gemini_validation import validate_generate
from .script import Fail, Reply
from .server import Call, Handler, Recorded, StreamPlan

if TYPE_CHECKING:
    from llmdispatcher.vendors.vertex import VertexVendor

FAKE_PROJECT = "fake-project-123"
FAKE_LOCATION = "us-east5"
FAKE_CLIENT_ID = "fake-client.apps.googleusercontent.com"
FAKE_REFRESH_TOKEN = "1//fake-refresh-token"
FAKE_SERVICE_ACCOUNT = "llm-gateway@fake-project-123.iam.gserviceaccount.com"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# google-auth signs service-account assertions for Google's endpoint, wherever it sends them
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")
CLAUDE_MODELS = ("claude-sonnet-4-5@20250929", "claude-haiku-4-5@20251001")
ANTHROPIC_VERSIONS = ("vertex-2023-10-16", "2026-10-21")
_ROOT = r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/"
_GEMINI = re.compile(_ROOT + r"google/models/([^/:]+):(generateContent|streamGenerateContent)$")
_CLAUDE = re.compile(_ROOT + r"anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$")
_LIST = re.compile(r"^/v1beta1/publishers/(google|anthropic)/models$")
# Script kinds that Google's front end answers for a Claude model (the rest: the model itself)
_FRONT_END = frozenset({"rate_limit", "quota", "auth", "not_found", "timeout"})
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class FakeVertex(FakeGemini):
    """Strict fake of ``{location}-aiplatform.googleapis.com`` for Gemini and Claude."""

    def __init__(
        self,
        *,
        project: str = FAKE_PROJECT,
        location: str = FAKE_LOCATION,
        models: Sequence[str] = GEMINI_MODELS + CLAUDE_MODELS,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(models=models, host=host)
        self.project = project
        self.location = location
        self.token_lifetime = 3600
        self.token_requests = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._token_lock = threading.Lock()
        self._claude = anthropic_fake.FakeAnthropic()  # renders Claude answers; never started

    def reset(self) -> None:
        super().reset()
        self.token_lifetime = 3600
        with self._token_lock:
            self.token_requests = 0
            self._tokens.clear()

    @property
    def requests(self) -> list[Recorded]:
        """The API requests (token refreshes are counted in ``token_requests`` instead)."""
        return [r for r in super().requests if r.path != "/token"]

    @property
    def last_request(self) -> Recorded:
        found = self.requests
        if not found:
            raise AssertionError("FakeVertex received no request")
        return found[-1]

    def issue_token(self, lifetime: float | None = None) -> str:
        """A token the fake accepts (what a client with a fixed ``access_token`` sends)."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._token_lock:
            self._tokens[token] = time.time() + (lifetime or self.token_lifetime)
        return token

    # ------------------------------------------------------------------------------ routing
    def match(self, method: str, path: str) -> Handler | None:
        if method == "POST" and (_GEMINI.match(path) or _CLAUDE.match(path)):
            return self._predict
        if method == "GET" and _LIST.match(path):
            return self._list
        if method == "POST" and path == "/token":
            return self._token
        return None

    def _family(self, call: Call) -> str:
        family: str = call.meta.get("family", "gemini")
        return family

    # ----------------------------------------------------------------------------- handlers
    async def _token(self, call: Call) -> web.StreamResponse:
        form = {k: v[0] for k, v in parse_qs(call.record.raw.decode()).items()}
        grant = form.get("grant_type")
        if grant == JWT_GRANT:  # a service account's signed assertion
            problem = self._assertion_problem(call, form.get("assertion", ""))
        elif grant == "refresh_token" and form.get("client_id") == FAKE_CLIENT_ID:
            problem = None if form.get("refresh_token") == FAKE_REFRESH_TOKEN else "Bad Request"
        else:
            return web.json_response({"error": "invalid_client"}, status=401)
        if problem is not None:
            body = {"error": "invalid_grant", "error_description": problem}
            return web.json_response(body, status=400)
        with self._token_lock:
            self.token_requests += 1
        token = self.issue_token()
        body = {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        return web.json_response(body)

    def _assertion_problem(self, call: Call, assertion: str) -> str | None:
        """A service-account JWT must be for Google's token endpoint, the cloud-platform scope
        and the fake's account (its RS256 signature is taken on trust: the key is the test's
        own)."""
        parts = assertion.split(".")
        if len(parts) != 3:
            return "Invalid JWT"
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        header = orjson.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        if header.get("alg") != "RS256" or claims.get("iss") != FAKE_SERVICE_ACCOUNT:
            return "Invalid JWT Signature."
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE or SCOPE not in str(claims.get("scope", "")):
            return f"Invalid JWT: aud {claims.get('aud')!r} or scope {claims.get('scope')!r}"
        return None

    def _vertex_auth(self, call: Call) -> web.Response | None:
        headers = call.request.headers
        if "x-api-key" in headers or "x-goog-api-key" in headers:
            return self.error(401, "API keys are not supported by this API.", "UNAUTHENTICATED")
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        with self._token_lock:
            expiry = self._tokens.get(token.strip()) if scheme == "Bearer" else None
        if expiry is None or expiry < time.time():
            return self.error(401, _UNAUTHENTICATED, "UNAUTHENTICATED")
        return None

    async def _predict(self, call: Call) -> web.StreamResponse:
        path = call.request.path
        found = _GEMINI.match(path) or _CLAUDE.match(path)
        assert found is not None
        version, project, location, model, method = found.groups()
        claude = found.re is _CLAUDE
        call.meta.update(
            model=model,
            version=version,
            family="claude" if claude else "gemini",
            response_id="resp_" + secrets.token_hex(8),
            id="msg_vrtx_01" + secrets.token_hex(10),
        )
        if (fail := self.take_fail()) is not None:
            return self.error_response(call, fail)
        if (denied := self._vertex_auth(call)) is not None:
            return denied
        if project != self.project:
            message = f"Permission denied on resource project {project}."
            return self.error(403, message, "PERMISSION_DENIED")
        if location != self.location or model not in self.models:
            publisher = "anthropic" if claude else "google"
            message = (
                f"Publisher Model `projects/{project}/locations/{location}/publishers/"
                f"{publisher}/models/{model}` was not found or your project does not have "
                "access to it."
            )
            return self.error(404, message, "NOT_FOUND")
        problem = self._claude_problem(call) if claude else self._gemini_problem(call)
        if problem is not None:
            return problem
        if claude:
            call.stream = method == "streamRawPredict"
            call.meta["sse"] = True  # Claude streams are always SSE
        else:
            call.stream = method == "streamGenerateContent"
            call.meta["sse"] = call.record.query.get("alt") == "sse"
        return await self.run_step(call)

    def _gemini_problem(self, call: Call) -> web.Response | None:
        try:
            validate_generate(call.body, json_ok=call.json_ok)
        except GeminiProblem as p:
            return self.error(p.status, p.message, p.rpc, p.details())
        return None

    def _claude_problem(self, call: Call) -> web.Response | None:
        body = call.body if call.json_ok and isinstance(call.body, dict) else None
        try:
            if body is None or "model" in body:
                raise AnthropicProblem("model: the model goes in the URL on Vertex AI")
            given = body.get("anthropic_version")
            if given not in ANTHROPIC_VERSIONS:
                raise AnthropicProblem(f"anthropic_version: {given!r} is not supported")
            if (body.get("stream") is True) != call.request.path.endswith(":streamRawPredict"):
                raise AnthropicProblem("stream: use streamRawPredict for streams, and only then")
            checked = {k: v for k, v in body.items() if k != "anthropic_version"}
            version = "2023-06-01" if given == "vertex-2023-10-16" else str(given)
            validate({**checked, "model": call.meta["model"]}, version)
        except AnthropicProblem as p:
            return self._claude.error(call, 400, "invalid_request_error", p.message)
        return None

    async def _list(self, call: Call) -> web.StreamResponse:
        if (denied := self._vertex_auth(call)) is not None:
            return denied
        found = _LIST.match(call.request.path)
        assert found is not None
        publisher = found.group(1)
        mine = [m for m in self.models if ("claude" in m) == (publisher == "anthropic")]
        size = int(call.record.query.get("pageSize") or 100)
        start = int(call.record.query.get("pageToken") or 0)
        page: dict[str, Any] = {
            "publisherModels": [
                {"name": f"publishers/{publisher}/models/{m.split('@')[0]}", "versionId": "001"}
                for m in mine[start : start + size]
            ]
        }
        if start + size < len(mine):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page)

    # ---------------------------------------------------------------------------- rendering
    def error_response(self, call: Call, fail: Fail) -> web.StreamResponse:
        if fail.kind == "auth":
            return self.error(
                fail.status or 401, fail.message or _UNAUTHENTICATED, "UNAUTHENTICATED"
            )
        if self._family(call) == "claude" and fail.kind not in _FRONT_END:
            return self._claude.error_response(call, fail)
        return super().error_response(call, fail)

    def stream_error_frame(self, call: Call, kind: str) -> bytes:
        if self._family(call) == "claude":
            return self._claude.stream_error_frame(call, kind)
        return super().stream_error_frame(call, kind)

    def reply_response(self, call: Call, reply: Reply) -> web.StreamResponse:
        if self._family(call) == "claude":
            return self._claude.reply_response(call, reply)
        return super().reply_response(call, reply)

    def stream_plan(self, call: Call, reply: Reply) -> StreamPlan:
        if self._family(call) == "claude":
            return self._claude.stream_plan(call, reply)
        return super().stream_plan(call, reply)


def adapter_for(fake: FakeVertex, **kwargs: Any) -> VertexVendor:
    """Our VertexVendor pointed at ``fake``, with user credentials that refresh against the
    fake's token endpoint (imported here so the fake does not depend on the library)."""
    from llmdispatcher.vendors.vertex import VertexVendor

    kwargs.setdefault("credentials", credentials_for(fake))
    return VertexVendor(project=fake.project, location=fake.location, base_url=fake.url, **kwargs)


def credentials_for(fake: FakeVertex) -> Any:
    """Authorized-user credentials (what ``gcloud auth application-default login`` writes)
    whose token endpoint is the fake's."""
    from google.oauth2.credentials import Credentials

    return Credentials(
        token=None,
        refresh_token=FAKE_REFRESH_TOKEN,
        client_id=FAKE_CLIENT_ID,
        client_secret="fake-client-secret",
        token_uri=f"{fake.url}/token",
    )


def write_service_account(fake: FakeVertex, path: Path) -> Path:
    """A service-account key file for the fake's account whose ``token_uri`` is the fake's
    (google-auth honours it for service accounts; user-credential files always use Google's)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "project_id": fake.project,
        "private_key_id": "fake-key-1",
        "private_key": pem.decode(),
        "client_email": FAKE_SERVICE_ACCOUNT,
        "client_id": "1234567890",
        "token_uri": f"{fake.url}/token",
    }
    path.write_bytes(orjson.dumps(info))
    return path
