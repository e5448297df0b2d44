"""llama.cpp, two ways: a ``llama-server`` over HTTP, or a GGUF run in this process.

``LlamaCppVendor(base_url=...)`` talks to a server (``LlamaServerVendor``);
``LlamaCppVendor(model_path=...)`` loads the model in-process (``llamacpp_local``, the ``local``
extra). Both answer to the vendor type ``llamacpp`` and behave the same towards the dispatcher.

Server mode (vendors.md §6), what differs from OpenAI, and where it is handled:

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

from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..limits import Limits
from ..types import Request, Response, StreamChunk
from .base import Health, Secret, Vendor
from .openai import OpenAIVendor


class LlamaServerVendor(OpenAIVendor):
    """A llama-server instance. ``base_url`` is its root or ``/v1`` URL."""

    pricing_name = "llamacpp"

    model_prefixes = ()  # serves whatever it hosts: never claims a model by name

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
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        tpd: int | None = None,
        max_concurrency: int | None = None,
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
        self.limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, max_concurrency=max_concurrency)

    @classmethod
    def from_env(cls) -> LlamaServerVendor | None:
        return None  # no documented variable names a server to talk to (see the module doc)

    async def health(self) -> Health:
        return await self.timed_health(f"{self.server_root}/health", self._headers)


class LlamaCppVendor(Vendor):
    """llama.cpp: a server when given ``base_url``, in-process when given ``model_path``.

    In-process options (ignored for a server): ``n_ctx`` context tokens per slot,
    ``n_threads`` (1 is fastest on small machines), ``n_parallel`` concurrent generations,
    ``max_queue`` requests allowed to wait beyond them and ``spill_ttft_s`` (over either, a
    request is refused at once so the dispatcher spills it to the next vendor), ``aliases``
    (model names it answers to besides the file's stem), ``tools`` (only for GGUFs whose chat
    template supports tools).
    """

    pricing_name = "llamacpp"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        name: str | None = None,
        *,
        model_path: str | None = None,
        aliases: Iterable[str] = (),
        n_ctx: int = 2048,
        n_threads: int = 1,
        n_parallel: int = 1,
        n_batch: int = 256,
        seed: int = 42,
        max_queue: int = 8,
        spill_ttft_s: float | None = None,
        tools: bool = False,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 0,
        rpm: int | None = None,
        tpm: int | None = None,
        rpd: int | None = None,
        tpd: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self._impl: Vendor
        if model_path is not None:
            from .llamacpp_local import LlamaCppLocalVendor

            self._impl = LlamaCppLocalVendor(
                model_path=Path(model_path),
                name=name or "llamacpp",
                aliases=aliases,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_parallel=n_parallel,
                n_batch=n_batch,
                seed=seed,
                max_queue=max_queue,
                spill_ttft_s=spill_ttft_s,
                tools=tools,
            )
        else:
            self._impl = LlamaServerVendor(
                base_url,
                api_key,
                name,
                timeout=timeout,
                connect_timeout=connect_timeout,
                headers=headers,
                max_connections=max_connections,
            )
        self.name = self._impl.name
        self.capabilities = self._impl.capabilities
        self.limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, max_concurrency=max_concurrency)

    @property
    def in_process(self) -> bool:
        return not isinstance(self._impl, LlamaServerVendor)

    @classmethod
    def from_env(cls) -> LlamaCppVendor | None:
        return None

    def serves(self, model: str) -> bool:
        return self._impl.serves(model)

    def check(self, request: Request) -> None:
        self._impl.check(request)

    async def send(self, request: Request) -> Response:
        return await self._impl.send(request)

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        return self._impl.stream(request)

    async def health(self) -> Health:
        return await self._impl.health()

    async def list_models(self) -> list[str]:
        return await self._impl.list_models()

    def secrets(self) -> tuple[str, ...]:
        return self._impl.secrets()

    async def aclose(self) -> None:
        await self._impl.aclose()

    def __getattr__(self, attribute: str) -> Any:
        # Mode-specific details (base_url, server_root, served, ...) come from the backend.
        if attribute == "_impl":
            raise AttributeError(attribute)
        return getattr(self._impl, attribute)

    def __repr__(self) -> str:
        return repr(self._impl)
