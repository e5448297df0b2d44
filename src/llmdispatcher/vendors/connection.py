"""How a vendor is reached over HTTP, as one value every HTTP vendor takes (``connection=``).

Each HTTP vendor used to repeat ``timeout, connect_timeout, headers, max_connections`` in its
constructor; they travel together, so they are one value (as ``Limits`` is). Config files keep
the flat keys (``vendors.openai.timeout: 30``) and fold them into it. Per-vendor client settings
still to come (a proxy, a CA bundle, a transport) belong here too, not in every constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Connection:
    """``timeout`` is the per-attempt read timeout (seconds of silence allowed) and
    ``connect_timeout`` the TCP/TLS connect timeout; ``None`` means the vendor's default (a
    local Ollama waits longer, since its first request loads the model). ``headers`` are sent
    with every request; ``max_connections`` bounds the pool (0: unbounded)."""

    timeout: float | None = None
    connect_timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 0

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout"):
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
