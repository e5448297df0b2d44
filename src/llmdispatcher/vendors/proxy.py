"""Which proxy, if any, a vendor request goes through, and the bytes that ask a proxy for a tunnel.

The proxy comes from the client's ``proxy=`` option or, by default, from the environment as
curl, requests and httpx read it: ``https_proxy`` for https URLs, ``http_proxy`` for http ones
(lower case first, then upper case), skipped for hosts ``no_proxy`` lists. A ``no_proxy`` entry is
``*``, a host name (``example.com`` also covers its subdomains; a leading ``.`` or ``*.`` is the
same), an IP address or CIDR block, each optionally with ``:port``. As in Go's
``ProxyFromEnvironment``, the environment's proxy never applies to loopback hosts (``localhost``,
``127.0.0.0/8``, ``::1``): a local model server must not be sent to a corporate proxy; the
``proxy=`` option does apply to them.

Only ``http://`` proxies are spoken to: https URLs go through a CONNECT tunnel (TLS is end to
end), http URLs are sent in absolute form. Credentials in the proxy URL's userinfo become a
``Proxy-Authorization: Basic`` header; they never appear in an error, log or ``repr``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from .http_options import FROM_ENV, ProxySetting

ENV_NAMES = ("https_proxy", "http_proxy", "no_proxy")


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # a credential: never shown

    def __str__(self) -> str:
        return f"proxy {self.host}:{self.port}"

    def auth_line(self) -> str:
        """The ``Proxy-Authorization`` header line, or nothing."""
        return f"Proxy-Authorization: {self.authorization}\r\n" if self.authorization else ""

    def connect_request(self, authority: str) -> bytes:
        """The request that asks the proxy for a tunnel to ``authority`` (``host:port``)."""
        return (
            f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{self.auth_line()}\r\n"
        ).encode("latin-1")


def parse_proxy(url: str, where: str) -> Proxy:
    """``http://[user:password@]host[:port]`` as a ``Proxy``; ``where`` names the setting in
    errors (the URL itself is never echoed: it may hold a password)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"{where}: a proxy must be written http://[user:password@]host:port "
            f"(scheme {parts.scheme!r} is not supported)"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"{where}: the proxy's port is not a number") from None
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def environment() -> dict[str, str]:
    """The proxy variables of this process, lower-case names, the lower-case spelling first."""
    found: dict[str, str] = {}
    for name in ENV_NAMES:
        value = os.environ.get(name) or os.environ.get(name.upper())
        if value:
            found[name] = value.strip()
    return found


def choose(
    setting: ProxySetting, env: Mapping[str, str], scheme: str, host: str, port: int
) -> Proxy | None:
    """The proxy for ``scheme://host:port``: the configured one, else the environment's."""
    if setting is None:
        return None
    if setting is not FROM_ENV:
        return parse_proxy(setting, "proxy")
    name = f"{scheme}_proxy"
    if name not in env or _loopback(host) or bypassed(host, port, env.get("no_proxy", "")):
        return None
    return parse_proxy(env[name], f"the {name.upper()} environment variable")


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` lists ``host`` (and ``port``, where an entry names one)."""
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        name, want_port = _entry(raw.strip().lower())
        if not name or (want_port is not None and want_port != port):
            continue
        if name in ("*", host) or host.endswith("." + name) or _in_block(host, name):
            return True
    return False


def _entry(entry: str) -> tuple[str, int | None]:
    """A ``no_proxy`` entry as (host, port or None)."""
    name, port = entry, ""
    if entry.startswith("["):  # [v6]:port
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        name, port = entry.split(":")
    name = name.removeprefix("*.").lstrip(".")
    return name, int(port) if port.isdigit() else None


def _loopback(host: str) -> bool:
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress  # a route is chosen once per URL: this stays off the hot path

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _in_block(host: str, name: str) -> bool:
    if "/" not in name:
        return False
    import ipaddress  # only when a CIDR entry is there to match

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False)
    except ValueError:
        return False
