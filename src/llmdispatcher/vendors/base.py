"""The one small interface every vendor implements.

A vendor turns a ``Request`` into a ``Response`` (``send``) or a stream of ``StreamChunk``
(``stream``), and, if its capabilities say ``embeddings``, a batch of texts into vectors
(``embed``, at most ``embed_batch_size`` texts a call), and raises errors from
``llmdispatcher.errors``. It knows nothing of retries, fallback or routing: the dispatcher
owns those.

Stream contract: chunks carrying text or tool-call pieces may come in any number; the
``finish_reason`` and ``usage`` may arrive on separate chunks (the dispatcher merges them into the
one final chunk the caller sees). A stream that ends without the vendor's terminal event must
raise, never end quietly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, UnsupportedRequest
from ..limits import Limits
from ..redaction import Secret, secret_from
from ..types import Request, RequestKind, Response, StreamChunk

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, Embeddings

__all__ = ["Capabilities", "Health", "Secret", "Vendor", "missing_setting", "secret_from"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a vendor can do, for routing and for refusing impossible requests early."""

    streaming: bool = True
    tools: bool = True
    vision: bool = True
    json_mode: bool = True
    max_context: int | None = None
    chat: bool = True
    embeddings: bool = False


@dataclass(frozen=True, slots=True)
class Health:
    """The result of a cheap liveness check."""

    ok: bool
    latency_s: float
    detail: str = ""


def missing_setting(what: str, option: str, vendor: str, hint: str = "") -> ConfigError:
    """The error for a required setting nobody gave, with both ways to give it."""
    return ConfigError(
        f"{what} is not set: export it, or set {option} for vendor {vendor!r} ({option}= in "
        f"Python, vendors.{vendor}.{option} in llmdispatcher.yaml){hint}"
    )


class Vendor(ABC):
    """A chat vendor. Subclasses set ``name`` and ``capabilities``."""

    name: str
    capabilities: Capabilities = Capabilities()
    # Model-name prefixes this vendor's models carry ("claude-"), so that a request for a model
    # nobody configured goes to the vendor that has it.
    model_prefixes: tuple[str, ...] = ()
    # The price table's section for this vendor's models (a preset name for compatibles).
    pricing_name: str = ""
    # rpm/tpm/rpd/tpd/max_concurrency, enforced by the dispatcher (shared across replicas).
    limits: Limits = Limits()
    # Called with every HTTP response's headers (the dispatcher listens for rate-limit ones).
    header_listeners: tuple[Callable[[Mapping[str, str]], None], ...] = ()
    # The most texts one ``embed`` call takes (the vendor's documented batch limit).
    embed_batch_size: int = 2048

    @classmethod
    def from_env(cls) -> Vendor | None:
        """An instance configured from the environment (the vendor's usual variables), or
        None when they are not set. Used by ``Dispatcher.from_env()``."""
        return None

    def listen_to_headers(self, listener: Callable[[Mapping[str, str]], None]) -> None:
        """Register ``listener`` for response headers (vendors without HTTP never call it)."""
        self.header_listeners = (*self.header_listeners, listener)

    def serves(self, model: str) -> bool:
        """Whether this vendor is known to serve ``model`` (False: unknown, not refused)."""
        return model.startswith(self.model_prefixes) if self.model_prefixes else False

    def accepts_kind(self, kind: RequestKind) -> bool:
        """Whether this vendor serves requests of ``kind`` at all (chat, embedding)."""
        caps = self.capabilities
        return caps.embeddings if kind == "embedding" else caps.chat

    def check(self, request: Request) -> None:
        """Refuse, before anything is sent, a request this vendor cannot honour."""
        if not self.accepts_kind(request.kind):
            what = "embedding requests" if request.kind == "embedding" else "chat requests"
            raise UnsupportedRequest(
                f"vendor {self.name!r} cannot take {what}: route them to a vendor that can "
                "(a routing rule with request_types: [embedding], or the request's vendor)",
                vendor=self.name,
            )
        caps = self.capabilities
        # Capability first: the messages are scanned only for a vendor that lacks vision (this
        # runs for every candidate of every request).
        needs = (
            (not caps.tools and request.tools is not None, "tools"),
            (not caps.vision and any(m.images for m in request.message_list), "images"),
            (not caps.json_mode and request.response_format is not None, "response_format"),
        )
        for lacking, what in needs:
            if lacking:
                raise UnsupportedRequest(
                    f"vendor {self.name!r} cannot take {what}: route this request to a vendor "
                    f"that can, or remove {what}",
                    vendor=self.name,
                )

    @abstractmethod
    async def send(self, request: Request) -> Response:
        """One non-streamed completion (no retries here)."""

    @abstractmethod
    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """One streamed completion (no retries here)."""

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Vectors for one batch (at most ``embed_batch_size`` inputs; no retries here)."""
        raise UnsupportedRequest(
            f"vendor {self.name!r} cannot take embedding requests", vendor=self.name
        )

    async def health(self) -> Health:
        """A cheap check that the vendor answers; never raises."""
        return Health(ok=True, latency_s=0.0, detail="no health check for this vendor")

    async def list_models(self) -> list[str]:
        """The models the vendor serves, where it can list them."""
        return []

    def secrets(self) -> tuple[str, ...]:
        """Credential values to scrub from any text leaving the library."""
        return ()

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most vendors hold nothing
        """Release pooled connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
