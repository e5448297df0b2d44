"""Google Vertex AI (vendors.md §12): Gemini models and Claude models, one vendor.

* Gemini: ``POST {root}/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}
  :generateContent`` (``:streamGenerateContent?alt=sse``), the body, answers, stream and errors
  of the Gemini API: ``GeminiVendor``'s translation, unchanged. ``v1beta1`` is what google-genai
  sends.
* Claude: ``POST {root}/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}
  :rawPredict`` (``:streamRawPredict``), the Messages API body without ``model`` plus
  ``anthropic_version`` (``"2026-10-21"`` by default, what the anthropic SDK's ``AnthropicVertex``
  sends; on that version sampling parameters are dropped, as ``AnthropicVendor`` does), the
  answers and SSE stream of the Messages API: ``AnthropicVendor``'s translation, unchanged.
* Which family a request is: a model with ``claude`` in its name is Claude, anything else
  Gemini. Errors are read by their body's shape, since both come back: Anthropic's
  (``{"type": "error", ...}``) from the model, Google's RPC shape from the front end (auth,
  quotas, routing).
* Auth: ``Authorization: Bearer`` with a Google OAuth2 token (``vertex_auth``), plus
  ``x-goog-user-project`` when the credentials name a quota project; never an API key.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, cast
from urllib.parse import quote

import orjson

from ..errors import ConfigError, VendorError
from ..limits import Limits
from ..types import Request, Response, StreamChunk
from .anthropic import AnthropicVendor
from .base import Capabilities, Health, Secret
from .connection import Connection
from .error_mapping import ErrorInfo, json_body
from .gemini import GeminiVendor
from .http_vendor import HttpCall, HttpVendor, StreamDecoder, decode_json
from .path_segment import path_segment
from .vertex_auth import GoogleToken

PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_PROJECT_ID")
LOCATION_ENV = ("GOOGLE_CLOUD_LOCATION", "CLOUD_ML_REGION")
MULTI_REGIONS = ("us", "eu")
GEMINI_VERSION = "v1beta1"
CLAUDE_VERSION = "v1"
DEFAULT_ANTHROPIC_VERSION = "2026-10-21"
MAX_MODEL_PAGES = 20


def root_url(location: str) -> str:
    """The service root for a location, as both SDKs build it."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class VertexVendor(HttpVendor):
    """Gemini and Claude on Vertex AI.

    ``project``: else ``GOOGLE_CLOUD_PROJECT``, ``ANTHROPIC_VERTEX_PROJECT_ID`` or the ADC
    project. ``location``: else ``GOOGLE_CLOUD_LOCATION``, ``CLOUD_ML_REGION`` or ``global``.
    ``credentials``: a ``google.auth.credentials.Credentials``, or the path of a
    service-account key file, else Application Default Credentials. ``base_url``: another
    service root (a private endpoint, a test server).
    """

    default_name = "vertex"
    model_prefixes = ("gemini-", "claude-")
    capabilities = Capabilities(streaming=True, tools=True, vision=True, json_mode=True)

    def __init__(
        self,
        *,
        project: str | None = None,
        location: str | None = None,
        credentials: Any = None,
        base_url: str | None = None,
        anthropic_version: str = DEFAULT_ANTHROPIC_VERSION,
        name: str | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        vendor_name = name or self.default_name
        place = location or _first_env(LOCATION_ENV) or "global"
        path_segment(place, field="location", vendor=vendor_name)
        super().__init__(
            name=vendor_name,
            base_url=base_url or root_url(place),
            api_key=Secret(""),
            connection=connection,
        )
        self.project = project or _first_env(PROJECT_ENV)
        if self.project is not None:
            path_segment(self.project, field="project", vendor=vendor_name)
        self.location = place
        self.anthropic_version = anthropic_version
        self.auth = GoogleToken(credentials, vendor_name)
        self.pricing_name = f"vertex/{place}"
        self.limits = limits or Limits()
        # Translators only: they build bodies and read answers; this vendor sends.
        translators = Connection(transport=self._http)
        self._gemini = _GeminiOnVertex(self, translators)
        self._claude = _ClaudeOnVertex(self, translators, anthropic_version)

    @classmethod
    def from_env(cls) -> VertexVendor | None:
        """An instance when google-genai would use Vertex (``GOOGLE_GENAI_USE_VERTEXAI``) with a
        project, or when ``ANTHROPIC_VERTEX_PROJECT_ID`` is set (decided from variables alone:
        google-auth is not imported for a vendor not used)."""
        use = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
        if (use and os.environ.get("GOOGLE_CLOUD_PROJECT")) or os.environ.get(PROJECT_ENV[1]):
            return cls()
        return None

    # --- request -----------------------------------------------------------------------------
    def is_claude(self, model: str) -> bool:
        return "claude" in model

    def _translator(self, model: str) -> GeminiVendor | AnthropicVendor:
        return self._claude if self.is_claude(model) else self._gemini

    def check(self, request: Request) -> None:
        self.model_path(request.model)
        self._translator(request.model).check(request)

    def model_path(self, model: str) -> str:
        """``publishers/{google|anthropic}/models/{id}`` (``@`` versions kept), or a refusal."""
        publisher = "anthropic" if self.is_claude(model) else "google"
        # ``@`` separates a Claude version (claude-sonnet-4-5@20250929) and is safe in a path
        path_segment(model.replace("@", "-"), field="model", vendor=self.name, whole=model)
        return f"publishers/{publisher}/models/{model}"

    def location_url(self, version: str) -> str:
        project = self.project or self.auth.project
        if not project:
            raise ConfigError(
                f"vendor {self.name!r}: no Google Cloud project: export GOOGLE_CLOUD_PROJECT, "
                f"pass project= (vendors.{self.name}.project), or use credentials that name one"
            )
        return f"{self.base_url}/{version}/projects/{project}/locations/{self.location}"

    def build_call(self, request: Request, *, stream: bool) -> HttpCall:
        model = request.model
        if self.is_claude(model):
            body = self._claude.build_body(request, stream=stream)
            body.pop("model", None)
            body.setdefault("anthropic_version", self.anthropic_version)
            method = "streamRawPredict" if stream else "rawPredict"
            root = self.location_url(CLAUDE_VERSION)
        else:
            body = self._gemini.build_body(request)
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            root = self.location_url(GEMINI_VERSION)
        url = f"{root}/{self.model_path(model)}:{method}"
        return HttpCall(url, self.headers(), orjson.dumps(body))

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.extra_headers}
        headers["Authorization"] = f"Bearer {self.auth.token}"
        if self.auth.quota_project:
            headers["x-goog-user-project"] = self.auth.quota_project
        return headers

    async def send(self, request: Request) -> Response:
        await self.auth.ready()
        return await super().send(request)

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        await self.auth.ready()
        chunks = cast(AsyncGenerator[StreamChunk, None], super().stream(request))
        async with aclosing(chunks):  # closing it hangs up on Vertex at once
            async for chunk in chunks:
                yield chunk

    # --- response ----------------------------------------------------------------------------
    def parse_response(self, data: Any, request: Request) -> Response:
        return self._translator(request.model).parse_response(data, request)

    def stream_decoder(self, request: Request) -> StreamDecoder:
        return self._translator(request.model).stream_decoder(request)

    def _anthropic_shaped(self, body: bytes) -> bool:
        data = json_body(body)
        return isinstance(data, dict) and data.get("type") == "error"

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        translator = self._claude if self._anthropic_shaped(body) else self._gemini
        return translator.parse_error(status, headers, body)

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> VendorError:
        translator = self._claude if self._anthropic_shaped(body) else self._gemini
        return translator._error(status, headers, body)

    # --- listing and health -------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        """The Gemini and Claude models of the Model Garden (``publishers/*/models``)."""
        await self.auth.ready()
        names: list[str] = []
        for publisher in ("google", "anthropic"):
            token = ""
            for _ in range(MAX_MODEL_PAGES):
                url = f"{self.base_url}/{GEMINI_VERSION}/publishers/{publisher}/models?pageSize=100"
                if token:
                    url += f"&pageToken={quote(token, safe='')}"
                data = decode_json((await self.get(url, self.headers())).body, self.name)
                for model in data.get("publisherModels") or ():
                    names.append(str(model.get("name", "")).rsplit("/", 1)[-1])
                token = data.get("nextPageToken") or ""
                if not token:
                    break
        return sorted(n for n in names if n)

    async def health(self) -> Health:
        try:
            await self.auth.ready()
        except VendorError as exc:
            return Health(False, 0.0, str(exc))
        url = f"{self.base_url}/{GEMINI_VERSION}/publishers/google/models?pageSize=1"
        return await self.timed_health(url, self.headers())

    def secrets(self) -> tuple[str, ...]:
        return (self.auth.token,) if self.auth.token else ()

    def __repr__(self) -> str:
        return f"VertexVendor(name={self.name!r}, location={self.location!r})"


class _GeminiOnVertex(GeminiVendor):
    """Gemini's translation for Vertex: same bodies and answers, no API key."""

    def __init__(self, outer: VertexVendor, connection: Connection) -> None:
        super().__init__(
            api_key="vertex-uses-oauth",
            base_url=outer.base_url,
            name=outer.name,
            connection=connection,
        )
        self._outer = outer

    def model_path(self, model: str) -> str:
        return self._outer.model_path(model)

    def secrets(self) -> tuple[str, ...]:
        return self._outer.secrets()


class _ClaudeOnVertex(AnthropicVendor):
    """Anthropic's translation for Vertex: same bodies and answers, no API key."""

    def __init__(self, outer: VertexVendor, connection: Connection, version: str) -> None:
        # "vertex-2023-10-16" (Google's documented value) behaves as Anthropic's 2023-06-01.
        dated = "2023-06-01" if version.startswith("vertex-") else version
        super().__init__(
            api_key="vertex-uses-oauth",
            base_url=outer.base_url,
            name=outer.name,
            api_version=dated,
            connection=connection,
        )
        self._outer = outer

    def secrets(self) -> tuple[str, ...]:
        return self._outer.secrets()


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)
