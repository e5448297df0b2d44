"""How a vendor is reached over HTTP, as one value every HTTP vendor takes (``connection=``).

Each HTTP vendor used to repeat ``timeout, connect_timeout, headers, max_connections`` in its
constructor; they travel together, so they are one value (as ``Limits`` is). Config files keep
the flat keys (``vendors.openai.timeout: 30``, ``proxy: "http://proxy:3128"``) and fold them
into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .http_options import (
    DEFAULT_ANSWER_TIMEOUT,
    FROM_ENV,
    HttpOptions,
    ProxySetting,
    ResponseBounds,
)
from .transport import Transport


@dataclass(frozen=True, slots=True)
class Connection:
    """``timeout`` is the per-attempt read timeout (seconds of silence allowed) and
    ``connect_timeout`` the TCP/TLS connect timeout; ``None`` means the vendor's default (a
    local Ollama waits longer, since its first request loads the model). ``headers`` are sent
    with every request; ``max_connections`` bounds the pool (0: unbounded). ``proxy``: a URL
    (``http://user:password@host:3128``), ``None`` for none, or by default what
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` say. ``ca_bundle``: a PEM file of the CAs to
    trust instead of the system's. ``answer_timeout``: the longest one answer may take in all,
    however steadily it trickles (default 600 s). ``bounds``: the most of an answer held
    (``ResponseBounds``: body, decompressed body, embeddings, stream, line; in a file
    ``bounds: {max_body_bytes: 67108864}``). ``transport``: send through another client
    altogether (an in-memory one in tests); it replaces ours and every setting above but
    ``headers``.
    """

    timeout: float | None = None
    connect_timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 0
    proxy: ProxySetting = field(default=FROM_ENV, repr=False)  # may hold a password
    ca_bundle: str | None = None
    answer_timeout: float | None = None
    bounds: ResponseBounds = field(default_factory=ResponseBounds)
    transport: Transport | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "answer_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
        if self.max_connections < 0:
            raise ValueError(
                f"max_connections: must be 0 (unbounded) or more, got {self.max_connections}"
            )

    def timeouts(self, read: float, connect: float) -> tuple[float, float]:
        """(read, connect) timeouts, with the vendor's defaults where none was given."""
        return (
            read if self.timeout is None else self.timeout,
            connect if self.connect_timeout is None else self.connect_timeout,
        )

    def client_options(self, read: float, connect: float) -> HttpOptions:
        """Our HTTP client's settings, with the vendor's default timeouts where none was given."""
        read, connect = self.timeouts(read, connect)
        return HttpOptions(
            connect_timeout=connect,
            read_timeout=read,
            answer_timeout=self.answer_timeout or DEFAULT_ANSWER_TIMEOUT,
            max_connections=self.max_connections,
            bounds=self.bounds,
            proxy=self.proxy,
            ca_bundle=self.ca_bundle,
        )
