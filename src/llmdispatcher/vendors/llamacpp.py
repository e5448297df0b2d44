"""llama.cpp's ``llama-server`` (vendors.md §6), spoken to over its OpenAI-compatible API.

What differs from OpenAI, and where it is handled:

* the server root and its ``/v1`` URL are both accepted (``http://127.0.0.1:8080`` or
  ``http://127.0.0.1:8080/v1``); chat goes to ``/v1/chat/completions``, ``list_models`` to
  ``/v1/models`` and ``health`` to ``GET /health`` (``{"status":"ok"}``, 503 while loading);
* the output limit is sent as ``max_tokens`` (every build reads it; ``max_completion_tokens``
  only recent ones);
* no key unless the server was started with ``--api-key`` (then ``Authorization: Bearer``);
* errors carry a numeric ``code`` and a ``type``: ``exceed_context_size_error`` becomes
  ``ContextLengthExceeded`` and ``unavailable_error`` (503 "Loading model") a retryable
  ``VendorServerError``, both through the shared error mapping;
* the ``model`` is optional for the server (one model is loaded) and echoed back;
  ``timings`` are left in ``Response.raw``.

Environment: the key is read from ``LLAMA_API_KEY``, the variable llama-server itself reads
for ``--api-key``. There is no documented client-side variable for the server's URL
(``LLAMA_ARG_HOST``/``LLAMA_ARG_PORT`` configure the server process and may name ``0.0.0.0``),
so ``from_env()`` returns None: register a llama.cpp server explicitly or in the config file.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Health, Secret
from .openai import OpenAIVendor


class LlamaCppVendor(OpenAIVendor):
    """A llama-server instance (server mode). ``base_url`` is its root or ``/v1`` URL."""

    default_name = "llamacpp"
    default_base_url = "http://127.0.0.1:8080"
    api_key_env = ("LLAMA_API_KEY",)
    base_url_env = ()
    requires_api_key = False
    max_tokens_field = "max_tokens"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        name: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 0,
    ) -> None:
        # The root also prefixes /health, which lives outside /v1 (after any --api-prefix).
        self.server_root = (base_url or self.default_base_url).rstrip("/").removesuffix("/v1")
        super().__init__(
            api_key=api_key,
            base_url=self.server_root + "/v1",
            name=name,
            timeout=timeout,
            connect_timeout=connect_timeout,
            headers=headers,
            max_connections=max_connections,
        )

    @classmethod
    def from_env(cls) -> LlamaCppVendor | None:
        return None  # no documented variable names a server to talk to (see the module doc)

    async def health(self) -> Health:
        return await self.timed_health(f"{self.server_root}/health", self._headers)
