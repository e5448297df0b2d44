"""Gateway API keys: who may call, and which models each key may ask for.

Keys come from ``gateway.api_keys`` (plain ``key``, usually ``${ENV}``, or ``key_sha256``) and
``LLMDISPATCHER_API_KEYS`` (comma-separated). Only their SHA-256 digests are kept: the settings
the gateway holds have every plain key replaced by its digest (``digests_only``) as soon as
they are read. A presented
token is hashed and compared with *every* stored digest by ``hmac.compare_digest``, so the time
taken does not depend on which key (if any) matched or how much of it did.

Clients send ``Authorization: Bearer <key>``; on ``/v1/messages`` the Anthropic SDK's
``x-api-key`` is accepted too. Client credentials are only ever checked here: the dispatcher
builds every vendor request from the gateway's own configuration, so nothing a client sends
(headers or body fields such as ``api_key`` or ``base_url``) reaches a vendor.

Stored keys (``llmdispatcher keys``, the admin API) are looked up in a ``KeyCache``
(``key_cache.py``): an in-memory index by digest that each gateway refreshes from the key store,
so the request path never queries the database. A stored key carries its id, team, limits and
expiry; an expired one is refused at once, a revoked one as soon as the cache learns of it.

``Admission`` is the hook for per-key rate limits and budgets (the limits module plugs in here):
it may raise ``ApiError(429, ...)`` before anything is sent.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from aiohttp import web

from ..config import ApiKeyConfig, GatewayConfig
from ..limits import Limits
from ..types import Request
from .errors import ApiError

# The per-key limit/budget hook: raise ApiError(429, ..., retry_after=...) to refuse.
Admission = Callable[["ApiKey | None", Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A configured or stored key, by name; ``digest`` is the SHA-256 of the key. ``metadata``
    and ``user``, when set, are pinned: they replace the client's (``pin``). A stored key also
    has its ``id``, ``team``, ``limits`` and ``expires_at`` (epoch seconds)."""

    name: str
    digest: bytes
    allowed_models: tuple[str, ...] = ("*",)
    metadata: Mapping[str, str | int | float | bool] | None = field(default=None, hash=False)
    user: str | None = None
    id: str | None = None
    team: str | None = None
    limits: Limits | None = None
    expires_at: float | None = None
    role: str = "client"  # a stored key's: "viewer" may also sign in to the dashboard

    def allows(self, model: str) -> bool:
        if self.allowed_models == ("*",):  # the default: skip the pattern matching
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, allowed_models={self.allowed_models!r})"


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def key_from_config(config: ApiKeyConfig) -> ApiKey:
    digest = (
        digest_of(config.key) if config.key is not None else bytes.fromhex(config.key_sha256 or "")
    )
    return ApiKey(config.name, digest, config.allowed_models, config.metadata, config.user)


def digests_only(settings: GatewayConfig) -> GatewayConfig:
    """``settings`` with every plain ``key`` (and ``admin_key``) replaced by its SHA-256."""
    if settings.admin_key is not None:
        admin = digest_of(settings.admin_key).hex()
        settings = replace(settings, admin_key=None, admin_key_sha256=admin)
    if all(k.key is None for k in settings.api_keys):
        return settings
    hashed = tuple(
        k if k.key is None else replace(k, key=None, key_sha256=digest_of(k.key).hex())
        for k in settings.api_keys
    )
    return replace(settings, api_keys=hashed)


def keys_from_env(value: str) -> tuple[ApiKeyConfig, ...]:
    """``LLMDISPATCHER_API_KEYS="k1,k2"``: keys named ``env-1``, ``env-2`` for every model."""
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    return tuple(ApiKeyConfig(f"env-{i}", key=t) for i, t in enumerate(tokens, 1))


class StoredKeys(Protocol):
    """What the gateway asks of its stored keys (``key_cache.KeyCache``)."""

    @property
    def enabled(self) -> bool:
        """Whether the store holds any key, even a revoked one (or could not be read yet)."""
        ...

    def identify(self, digest: bytes) -> ApiKey | None:
        """The active key with this digest, in time independent of how much of it matched."""
        ...


class KeyStore:
    """The keys the gateway accepts (configured, then stored); none means no authentication."""

    def __init__(
        self,
        configs: Iterable[ApiKeyConfig],
        stored: StoredKeys | None = None,
        *,
        required: bool = False,
    ) -> None:
        self._keys = tuple(key_from_config(c) for c in configs)
        self.stored = stored
        self.required = required  # a managed gateway (admin key set) is never open

    @property
    def enabled(self) -> bool:
        return (
            self.required or bool(self._keys) or (self.stored is not None and self.stored.enabled)
        )

    def identify(self, token: str) -> ApiKey | None:
        digest = digest_of(token)
        found = None
        for key in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(digest, key.digest):
                found = key
        if self.stored is not None:  # always asked, so a configured key takes no less time
            stored = self.stored.identify(digest)
            found = found or stored
        return found

    def authenticate(self, request: web.Request, *, x_api_key: bool = False) -> ApiKey | None:
        """The caller's key; ``ApiError(401)`` when keys are configured and none matches."""
        if not self.enabled:
            return None
        token = presented_token(request, x_api_key=x_api_key)
        if not token:
            raise ApiError(
                401,
                "no API key: send Authorization: Bearer <your gateway key>",
                code="missing_api_key",
            )
        key = self.identify(token)  # malformed, unknown, revoked, expired: one answer
        if key is None:
            raise ApiError(401, "the API key is not valid for this gateway", code="invalid_api_key")
        return key


def presented_token(request: web.Request, *, x_api_key: bool = False) -> str:
    """The key the client sent (``Authorization: Bearer``, or ``x-api-key`` when allowed)."""
    token = _bearer(request.headers.get("Authorization", ""))
    if not token and x_api_key:
        token = request.headers.get("x-api-key", "").strip()
    return token


def fingerprint(token: str) -> str:
    """A short, non-secret tag of a presented key for the log: the first 8 hex digits of its
    SHA-256 (the same token always gives the same tag; nothing of the key can be recovered)."""
    return digest_of(token).hex()[:8] if token else "none"


def check_model(
    key: ApiKey | None, model: str, groups: Mapping[str, tuple[str, ...]] | None = None
) -> None:
    """``ApiError(403)`` when ``key`` may not use ``model``, or, when ``model`` names a model
    group (``groups``: group -> the models it may route to), one of the group's models."""
    if key is None or key.allowed_models == ("*",):
        return
    for name in (model, *(groups or {}).get(model, ())):
        if not key.allows(name):
            raise ApiError(
                403,
                f"the API key {key.name!r} may not use model {name!r}",
                param="model",
                code="model_not_allowed",
            )


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
