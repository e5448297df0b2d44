"""Shared state for rate limits and budgets, one protocol (``StateBackend``) chosen by URL.

=====================================  ===========================================================
``memory://``                          this process only (the default)
``sqlite:///state.db``                 a file: survives restarts, shared by processes on one host
                                       (``sqlite:////abs/path.db`` for an absolute path)
``redis://host:6379/0`` (``rediss://``)  shared by every replica; needs ``llmdispatcher[redis]``
=====================================  ===========================================================

Drivers load on first use: ``import llmdispatcher`` imports neither ``sqlite3`` nor ``redis``.
"""

from __future__ import annotations

from ..errors import ConfigError, StateError
from .base import AddResult, CounterAdd, LeaseResult, StateBackend, StatePolicy

__all__ = [
    "AddResult",
    "CounterAdd",
    "LeaseResult",
    "StateBackend",
    "StateError",
    "StatePolicy",
    "open_state",
]

SCHEMES = ("memory", "sqlite", "redis", "rediss")


def open_state(
    url: str = "memory://", *, prefix: str = "llmd:", policy: StatePolicy | None = None
) -> StateBackend:
    """The backend for ``url``. Nothing connects yet: the first operation does.

    ``prefix`` namespaces Redis keys (a ``?prefix=`` in the URL wins); the other backends own
    their storage and ignore it. With a ``policy`` a shared backend (Redis, SQLite) is wrapped
    in ``FailoverState``: when it fails, requests are served with local limits or refused, as
    ``policy.failure`` says (see ``state.failover``); without one its ``StateError`` propagates.
    """
    backend = _open(url, prefix, policy or StatePolicy())
    if policy is None or url.lower().startswith("memory:"):
        return backend
    from .failover import FailoverState

    return FailoverState(backend, policy)


def _open(url: str, prefix: str, policy: StatePolicy) -> StateBackend:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .memory import MemoryState

        return MemoryState(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteState

        try:
            return SQLiteState(url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisState
        except ImportError as exc:
            if exc.name is None or exc.name.partition(".")[0] != "redis":
                raise
            raise ConfigError(
                f"state_url {url.rsplit('@', maxsplit=1)[-1]!r} needs the Redis client: "
                "pip install 'llmdispatcher[redis]'"
            ) from exc
        return RedisState(
            url,
            prefix=prefix,
            timeout_s=policy.timeout_s,
            connect_timeout_s=policy.connect_timeout_s,
        )
    raise ConfigError(
        f"state_url {url!r}: unknown scheme; use one of memory://, sqlite:///path.db, "
        "redis://host:6379/0"
    )
