"""Azure OpenAI (learn.microsoft.com/azure/ai-services/openai/reference): OpenAI's Chat
Completions behind deployments, an ``api-version`` query and ``api-key`` (or Entra ID) auth.
Only what differs lives here; the translation of requests, responses, streams and errors is
``OpenAIVendor``'s.

Two URL shapes, chosen by ``api_version``:

* a dated version (``"2024-10-21"``, ``"2025-04-01-preview"``) uses the classic surface
  ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``;
* ``"v1"`` uses the v1 surface ``{endpoint}/openai/v1/chat/completions`` (no query), where the
  deployment name goes in the body's ``model``.

There is no default version: the official SDK refuses to start without one and Azure answers
404 without it, so a missing one is a ``ConfigError`` naming ``OPENAI_API_VERSION``.

The deployment for a request is ``deployments`` when that is one name (the SDK's
``azure_deployment``), else ``deployments[request.model]``, else the model name itself.
``Response.model`` is what Azure answers: the underlying model version
(``gpt-4o-2024-11-20``), not the deployment; routing, attempts and stats keep the requested model.
The stream's empty first chunk (``choices: []`` with ``prompt_filter_results``) and trailing
filter-only chunks carry nothing for the caller and are skipped by the OpenAI decoder. A prompt
the content filter blocks is a 400 ``InvalidRequestError`` with ``error_code == "content_filter"``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from ..errors import AuthenticationError, ConfigError, VendorError
from ..limits import Limits
from ..types import Request, Response, StreamChunk
from .base import Health, Secret, missing_setting
from .connection import Connection
from .openai import OpenAIVendor
from .path_segment import path_segment
from .presets import OPENAI

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, Embeddings

KEY_ENV = "AZURE_OPENAI_API_KEY"
AD_TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
VERSION_ENV = "OPENAI_API_VERSION"
V1 = "v1"

TokenProvider = Callable[[], str | Awaitable[str]]
# No required key (an Entra ID token may stand in for it: ``_credentials`` checks) and no
# OPENAI_BASE_URL: the endpoint comes from AZURE_OPENAI_ENDPOINT.
AZURE = replace(
    OPENAI, name="azure", api_key_env=KEY_ENV, base_url_env=None, requires_api_key=False
)


class AzureOpenAIVendor(OpenAIVendor):
    """Azure OpenAI chat deployments. Arguments and environment variables follow the official
    SDK's ``AzureOpenAI``: ``AZURE_OPENAI_API_KEY``, ``AZURE_OPENAI_AD_TOKEN`` (wins over the key
    when neither is passed), ``AZURE_OPENAI_ENDPOINT`` and ``OPENAI_API_VERSION``.

    ``azure_ad_token`` is an Entra ID token, or a provider of one (sync or async, e.g.
    ``azure.identity``'s bearer token provider, the SDK's ``azure_ad_token_provider``) called
    before every request, as the SDK does; it is expected to cache and renew tokens.
    ``deployments`` is one deployment for every model, or a mapping model -> deployment.
    """

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        azure_endpoint: str | None = None,
        api_version: str | None = None,
        deployments: str | Mapping[str, str] | None = None,
        azure_ad_token: str | Secret | TokenProvider | None = None,
        name: str | None = None,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        vendor = name or AZURE.name
        key, token, provider = _credentials(api_key, azure_ad_token, vendor)
        endpoint = azure_endpoint or os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            raise missing_setting(
                ENDPOINT_ENV, "azure_endpoint", vendor, " (https://<resource>.openai.azure.com)"
            )
        version = api_version or os.environ.get(VERSION_ENV)
        if not version:
            raise missing_setting(
                VERSION_ENV,
                "api_version",
                vendor,
                ": a dated version such as '2024-10-21', or 'v1' for the v1 "
                "API; Azure answers 404 without one",
            )
        self.api_version = version
        self.deployments = deployments if isinstance(deployments, str) else dict(deployments or {})
        self._ad_token = token
        self._token_provider = provider
        self._provided_token = Secret("")
        surface = "/openai/v1" if version == V1 else "/openai"
        super().__init__(
            api_key=key,
            base_url=endpoint.rstrip("/") + surface,
            name=vendor,
            preset=AZURE,
            connection=connection,
            limits=limits,
        )

    @classmethod
    def from_env(cls) -> AzureOpenAIVendor | None:
        """An instance when the endpoint and a credential are set (a missing
        ``OPENAI_API_VERSION`` then raises ``ConfigError`` rather than hiding the vendor)."""
        credential = os.environ.get(AD_TOKEN_ENV) or os.environ.get(KEY_ENV)
        return cls() if credential and os.environ.get(ENDPOINT_ENV) else None

    def credential_headers(self) -> dict[str, str]:
        token = self._ad_token or self._provided_token
        if token:
            return {"Authorization": f"Bearer {token.reveal()}"}
        return {"api-key": self.api_key.reveal()} if self.api_key else {}

    def deployment_for(self, model: str) -> str:
        if isinstance(self.deployments, str):
            return self.deployments
        return self.deployments.get(model) or model

    def check(self, request: Request) -> None:
        self.chat_url(request)  # refuses a deployment that cannot go into the URL path
        super().check(request)

    # --- request -----------------------------------------------------------------------------
    def chat_url(self, request: Request) -> str:
        """The v1 surface takes the deployment in the body; the classic one in the URL path,
        where a name that is not one safe segment is refused (``UnsupportedRequest``)."""
        if self.api_version == V1:
            return f"{self.base_url}/chat/completions"
        deployment = path_segment(
            self.deployment_for(request.model), field="model", vendor=self.name
        )
        return (
            f"{self.base_url}/deployments/{deployment}/chat/completions"
            f"?api-version={quote(self.api_version, safe='')}"
        )

    def embeddings_url(self, model: str) -> str:
        if self.api_version == V1:
            return f"{self.base_url}/embeddings"
        deployment = path_segment(self.deployment_for(model), field="model", vendor=self.name)
        return (
            f"{self.base_url}/deployments/{deployment}/embeddings"
            f"?api-version={quote(self.api_version, safe='')}"
        )

    def embedding_model(self, model: str) -> str:
        return self.deployment_for(model)

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        await self._refresh_token()
        return await super().embed(request)

    def build_body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        # The v1 surface routes on it; the classic one ignores it (the SDK sends it anyway).
        body["model"] = self.deployment_for(request.model)
        return body

    async def send(self, request: Request) -> Response:
        await self._refresh_token()
        return await super().send(request)

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        await self._refresh_token()
        chunks = cast(AsyncGenerator[StreamChunk, None], super().stream(request))
        async with aclosing(chunks):  # closing it hangs up on Azure at once
            async for chunk in chunks:
                yield chunk

    async def _refresh_token(self) -> None:
        """Fetch a token from the provider into the request headers. Nothing awaits between
        this and the ``build_call`` that reads them, so each request sends the token it got."""
        if self._token_provider is None:
            return
        try:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:  # any credential library failure: report it as auth
            raise AuthenticationError(
                f"the azure_ad_token provider failed: {type(exc).__name__}: {exc}",
                vendor=self.name,
            ) from exc
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                "the azure_ad_token provider returned no token (expected a non-empty string)",
                vendor=self.name,
            )
        self._provided_token = Secret(token)
        self._headers = {**self._headers, **self.credential_headers()}

    # --- listing and health -------------------------------------------------------------------
    def models_url(self) -> str:
        """``GET /openai/models`` lists the models the resource can deploy (what the SDK's
        ``models.list()`` calls); a cheap authenticated check of endpoint, key and version."""
        if self.api_version == V1:
            return f"{self.base_url}/models"
        return f"{self.base_url}/models?api-version={quote(self.api_version, safe='')}"

    async def list_models(self) -> list[str]:
        """The names requests may use: the ``deployments`` keys when given, else the model ids
        the resource lists (which are not deployment names)."""
        if isinstance(self.deployments, str):
            return [self.deployments]
        if self.deployments:
            return sorted(self.deployments)
        await self._refresh_token()
        return await super().list_models()

    async def health(self) -> Health:
        try:
            await self._refresh_token()
        except VendorError as exc:
            return Health(False, 0.0, str(exc))
        return await super().health()

    def secrets(self) -> tuple[str, ...]:
        tokens = (t.reveal() for t in (self._ad_token, self._provided_token) if t)
        return (*super().secrets(), *tokens)


def _credentials(
    api_key: str | Secret | None, ad_token: str | Secret | TokenProvider | None, vendor: str
) -> tuple[Secret, Secret, TokenProvider | None]:
    """(key, static Entra token, token provider) as the SDK resolves them: one explicit
    credential at most; with none, ``AZURE_OPENAI_AD_TOKEN`` wins over ``AZURE_OPENAI_API_KEY``."""
    if api_key is not None and ad_token is not None:
        raise ConfigError(
            f"vendor {vendor!r}: api_key and azure_ad_token are mutually exclusive; pass one"
        )
    if callable(ad_token):
        return Secret(""), Secret(""), ad_token
    if api_key is None and ad_token is None:
        ad_token = os.environ.get(AD_TOKEN_ENV) or None
        api_key = None if ad_token else os.environ.get(KEY_ENV)
    key, token = _secret(api_key), _secret(ad_token)
    if not (key or token):
        raise ConfigError(
            f"no Azure credential: export {KEY_ENV} (or {AD_TOKEN_ENV}), or pass api_key= or "
            f"azure_ad_token= (a token or a provider of one) to AzureOpenAIVendor "
            f"(vendor {vendor!r})"
        )
    return key, token, None


def _secret(value: str | Secret | None) -> Secret:
    return value if isinstance(value, Secret) else Secret(value or "")
