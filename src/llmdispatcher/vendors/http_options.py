"""How the vendor HTTP client is configured: timeouts, connection cap, size bounds, proxy, trust.

Every size bound is a ``ResponseBounds`` field; crossing one fails the request with a retryable
``ResponseTooLarge`` (a ``VendorServerError``) and drops the connection, so a vendor (or anything
between us and it) can never make us buffer without limit. The bounds are per answer; the
``BUFFERS`` budget bounds what all answers in the process hold at once, so that many bombs at a
time cannot add up either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Final, Literal

MiB: Final = 1024 * 1024
# The longest one answer may take in all: long enough for a slow reasoning model's stream.
DEFAULT_ANSWER_TIMEOUT: Final = 600.0


class BufferBudget:
    """Bytes of vendor answers buffered in this process, across every client and connection:
    body bytes received (decompressed) and not yet taken by their reader. An answer that would
    take the total past ``limit`` fails as ``ResponseTooLarge`` (retryable: the next candidate
    gets the request), whatever its own bounds allow."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @property
    def free(self) -> int:
        return max(0, self.limit - self.held)

    def take(self, amount: int) -> bool:
        if self.held + amount > self.limit:
            return False
        self.held += amount
        return True

    def give(self, amount: int) -> None:
        self.held -= amount


def _budget_from_env() -> int:
    raw = os.environ.get("LLMDISPATCHER_MAX_BUFFERED_MB", "256")
    try:
        megabytes = int(raw)
    except ValueError:
        megabytes = 0
    if megabytes <= 0:
        raise ValueError(
            f"LLMDISPATCHER_MAX_BUFFERED_MB={raw!r}: must be a whole number of MiB above 0 (256 "
            "if unset): the most vendor answers may hold in memory at once"
        )
    return megabytes * MiB


# 256 MiB: two answers at their own bound, or hundreds of ordinary ones, at a time.
BUFFERS: Final = BufferBudget(_budget_from_env())


class _FromEnv(Enum):
    FROM_ENV = "from the environment"


# ``proxy=FROM_ENV`` (the default): HTTPS_PROXY / HTTP_PROXY / NO_PROXY decide; ``None``: never.
FROM_ENV: Final = _FromEnv.FROM_ENV
ProxySetting = str | None | Literal[_FromEnv.FROM_ENV]


@dataclass(frozen=True, slots=True)
class ResponseBounds:
    """The most of an answer the client will hold, in bytes. A vendor's ``bounds:`` setting in
    a config file (``vendors.NAME.bounds: {max_body_bytes: 67108864}``) overrides any of them.

    * ``max_header_bytes``: status line and headers together (64 KiB; servers commonly allow
      8-16 KiB). A header block still incomplete past it is refused as it arrives.
    * ``max_body_bytes``: an answer read whole (a chat completion, a listing), as received,
      before any decompression (32 MiB: a chat answer is rarely above a few MiB; an image or
      audio answer in base64, or 100k tokens with logprobs, fits).
    * ``max_decompressed_bytes``: the same answer once gzip/deflate is decoded (32 MiB).
      Decoding stops at the bound, so a compression bomb costs at most that much memory.
    * ``max_embeddings_bytes``: an embeddings answer read whole, as received and once decoded
      (128 MiB: 2,048 inputs of 3,072 floats as JSON are about 80 MB).
    * ``max_stream_bytes``: a streamed answer in all, as received and once decoded (256 MiB).
      A stream is never held whole (a line at a time, and at most ``HIGH_WATER`` read ahead of
      its reader, compressed or not), so this bounds its length, not its memory.
    * ``max_line_bytes``: one line, or one event's data, of an SSE or NDJSON stream (16 MiB:
      a streamed image in base64 fits). The stream decoders enforce it; a refused line's
      bytes are let go at once.
    """

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 32 * MiB
    max_decompressed_bytes: int = 32 * MiB
    max_embeddings_bytes: int = 128 * MiB
    max_stream_bytes: int = 256 * MiB
    max_line_bytes: int = 16 * MiB

    def __post_init__(self) -> None:
        for bound in fields(self):
            value = getattr(self, bound.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ValueError(
                    f"bounds.{bound.name}: must be a whole number of bytes, at least 1024"
                )


# How an answer is read decides which bounds hold it: whole (a chat completion, a listing),
# whole but large by nature (embeddings), or as a stream. Each kind's (as received, once
# decompressed) bound, by ``ResponseBounds`` field name.
AnswerKind = Literal["whole", "embeddings", "stream"]
BOUND_NAMES: Final[dict[AnswerKind, tuple[str, str]]] = {
    "whole": ("max_body_bytes", "max_decompressed_bytes"),
    "embeddings": ("max_embeddings_bytes", "max_embeddings_bytes"),
    "stream": ("max_stream_bytes", "max_stream_bytes"),
}


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Settings of one ``HttpClient``.

    * ``connect_timeout``: TCP connect, proxy tunnel and TLS handshake together.
    * ``read_timeout``: the longest silence allowed while an answer is due.
    * ``answer_timeout``: the longest one answer may take from sending to its last byte, however
      steadily it trickles (a vendor sending a byte a second never trips ``read_timeout``).
    * ``stall_timeout``: the longest a stream's answer may wait for its reader (body bytes
      buffered, or its end reached, and nothing taken). Then its connection is closed: the
      vendor stops generating and the ``max_connections`` slot is freed. A complete answer
      stays readable; an incomplete one fails with a ``VendorTimeout`` (not retryable: the
      reader stalled, not the vendor) when the reader comes back.
    * ``max_connections``: connections open at once (0: no cap); requests over it wait.
    * ``bounds``: the size bounds above.
    * ``proxy``: ``"http://[user:password@]host:port"``; ``FROM_ENV`` (default) reads
      ``https_proxy``/``http_proxy``/``no_proxy`` (either case, lower case first; never for
      loopback hosts); ``None`` goes direct whatever the environment says.
    * ``ca_bundle``: a PEM file of CA certificates to trust *instead of* the system's store
      (default: the system's, where ``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    answer_timeout: float = DEFAULT_ANSWER_TIMEOUT
    stall_timeout: float = 60.0
    max_connections: int = 0
    bounds: ResponseBounds = field(default_factory=ResponseBounds)
    proxy: ProxySetting = field(default=FROM_ENV, repr=False)  # may hold a password
    ca_bundle: str | None = None
