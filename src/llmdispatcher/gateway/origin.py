"""Who may reach the gateway from a browser: ``Host`` and ``Origin`` checks against DNS
rebinding and cross-site requests.

A gateway on loopback with no keys spends the user's vendor credits for whoever can send it a
request. A web page can: a cross-site ``fetch`` with a ``text/plain`` body needs no preflight,
and DNS rebinding points an attacker's name at 127.0.0.1 so the browser treats the gateway as
the attacker's own origin. Three checks close both:

* ``Host`` must name an allowed host (a rebinding page sends its own name): else **421**;
* ``Origin``, which browsers add to cross-site and to all POST requests, must name one: else
  **403** (SDKs and curl send none, so they are unaffected);
* POST bodies must be ``Content-Type: application/json`` (``read_json``; **415**), which a page
  cannot send cross-site without a CORS preflight, which the gateway never approves.

``gateway.allowed_hosts`` lists the names (ports are ignored; ``*`` allows any). By default:
on a loopback address, the listen host, ``localhost``, ``127.0.0.1`` and ``::1``; on any other
address, any host (a public gateway is reached by names only its operator knows, and needs keys
or ``allow_unauthenticated`` anyway): list them to check there too.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from ..config import GatewayConfig
from .errors import ApiError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY = "*"
MAX_REMEMBERED = 32


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise(host: str) -> str:
    """``[::1]`` → ``::1``, ``LocalHost.`` → ``localhost``."""
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def allowed_hosts(settings: GatewayConfig) -> frozenset[str] | None:
    """The host names to accept; None for any."""
    if settings.allowed_hosts:
        names = frozenset(normalise(h) for h in settings.allowed_hosts)
        return None if ANY in names else names
    if is_loopback(normalise(settings.host)):
        return frozenset((normalise(settings.host), *LOOPBACK_NAMES))
    return None


def host_of(header: str) -> str:
    """The name in a ``Host`` header, without its port."""
    if header.startswith("["):
        return normalise(header.partition("]")[0])
    return normalise(header.rpartition(":")[0] if header.count(":") == 1 else header)


def _origin_host(origin: str) -> str:
    try:
        return normalise(urlsplit(origin).hostname or "")
    except ValueError:  # not a URL ("null" comes out as no host)
        return ""


class OriginGuard:
    """``check`` raises 421 for a ``Host`` that is not allowed, 403 for such an ``Origin``.
    ``Host`` headers already accepted are remembered (a few: clients use one or two), so the
    usual request costs one set lookup."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self._accepted: set[str] = set()

    def check(self, request: web.Request) -> None:
        host = request.headers.get("Host", "")
        if host not in self._accepted:
            self._check_host(host)
        origin = request.headers.get("Origin")
        if origin is not None and _origin_host(origin) not in self.allowed:
            raise ApiError(
                403,
                f"requests from origin {origin[:100]!r} are refused: add its host to "
                "gateway.allowed_hosts to let web pages there call the gateway",
                code="origin_not_allowed",
            )

    def _check_host(self, host: str) -> None:
        if host_of(host) not in self.allowed:
            raise ApiError(
                421,
                f"this gateway does not answer to host {host[:100]!r}: add it to "
                "gateway.allowed_hosts if clients reach the gateway by that name",
                code="host_not_allowed",
            )
        if len(self._accepted) < MAX_REMEMBERED:
            self._accepted.add(host)
