"""llama.cpp, two ways: a ``llama-server`` over HTTP, or a GGUF run in this process.

``LlamaCppVendor(base_url=...)`` returns a ``LlamaServerVendor`` that talks to a server;
``LlamaCppVendor(model_path=...)`` returns a ``LlamaCppLocalVendor`` that loads the model
in-process (``llamacpp_local``, the ``local`` extra). Both answer to the vendor type ``llamacpp``
and behave the same towards the dispatcher.

Server mode (llama.cpp's tools/server/README.md), what differs from OpenAI, and where it is handled:

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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..limits import Limits
from .base import Health, Secret
from .connection import Connection
from .openai import OpenAIVendor
from .presets import Preset

if TYPE_CHECKING:
    from .llamacpp_local import LlamaCppLocalVendor

LLAMA_SERVER = Preset(
    name="llamacpp",
    base_url="http://127.0.0.1:8080",
    api_key_env="LLAMA_API_KEY",
    max_tokens_field="max_tokens",
)


@dataclass(frozen=True, slots=True)
class LocalOptions:
    """How the in-process runtime runs a GGUF: ``n_ctx`` context tokens per slot, ``n_threads``
    (1 is fastest on small machines), ``n_parallel`` concurrent generations, ``n_batch`` prompt
    tokens per step (also how often reading a prompt can be cancelled), ``seed``, ``max_queue``
    requests allowed to wait beyond the slots and ``spill_ttft_s`` (over either, a request is
    refused at once so the dispatcher spills it to the next vendor), ``tools`` (only for GGUFs
    whose chat template supports tools)."""

    n_ctx: int = 2048
    n_threads: int = 1
    n_parallel: int = 1
    n_batch: int = 256
    seed: int = 42
    max_queue: int = 8
    spill_ttft_s: float | None = None
    tools: bool = False

    def __post_init__(self) -> None:
        if self.n_parallel < 1 or self.max_queue < 0:
            raise ValueError("n_parallel must be >= 1 and max_queue >= 0")


class LlamaServerVendor(OpenAIVendor):
    """A llama-server instance. ``base_url`` is its root or ``/v1`` URL."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
        name: str | None = None,
        *,
        connection: Connection | None = None,
        limits: Limits | None = None,
    ) -> None:
        # The root also prefixes /health, which lives outside /v1 (after any --api-prefix).
        self.server_root = (base_url or LLAMA_SERVER.base_url).rstrip("/").removesuffix("/v1")
        super().__init__(
            api_key=api_key,
            base_url=self.server_root + "/v1",
            name=name,
            preset=LLAMA_SERVER,
            connection=connection,
            limits=limits,
        )

    @classmethod
    def from_env(cls) -> LlamaServerVendor | None:
        return None  # no documented variable names a server to talk to (see the module doc)

    async def health(self) -> Health:
        return await self.timed_health(f"{self.server_root}/health", self._headers)


# A factory that keeps the name the class had, so callers need not change.
def LlamaCppVendor(
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    name: str | None = None,
    *,
    model_path: str | None = None,
    aliases: Iterable[str] = (),
    local: LocalOptions | None = None,
    connection: Connection | None = None,
    limits: Limits | None = None,
) -> LlamaServerVendor | LlamaCppLocalVendor:
    """llama.cpp: a ``LlamaServerVendor`` when given ``base_url`` (or nothing), a
    ``LlamaCppLocalVendor`` running ``model_path`` in this process (the ``local`` extra) when
    given that. ``local`` applies to the in-process runtime, ``api_key`` and ``connection`` to a
    server; ``aliases`` are model names the in-process model answers to besides its file's stem.
    """
    if model_path is None:
        return LlamaServerVendor(base_url, api_key, name, connection=connection, limits=limits)
    from .llamacpp_local import LlamaCppLocalVendor

    return LlamaCppLocalVendor(
        model_path=model_path,
        name=name or LLAMA_SERVER.name,
        aliases=aliases,
        options=local or LocalOptions(),
        limits=limits,
    )
