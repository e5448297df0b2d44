"""The resolved configuration as the Config page shows it: plain data, secrets masked.

A value is masked when its field's name says it holds a secret (``key``, ``secret``,
``token``, ``password``, ``credential`` as a word of it; digests such as ``admin_key_sha256`` too:
no secret, but nobody needs one on a screen), and a URL's password wherever a URL appears.
``Secret`` values never reveal themselves in the first place.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...config import Config, GatewayConfig

MASK = "••••••"
# A word of a snake_case name: ``api_key``, ``admin_key_sha256``, ``token``; not ``max_tokens``.
_SECRET_NAME = re.compile(
    r"(^|_)(key|secret|token|password|passwd|credentials?)(_|$)", re.IGNORECASE
)
_NOT_SECRET = frozenset({"key_store_url", "key_refresh_s"})


def masked_config(config: Config, settings: GatewayConfig) -> dict[str, Any]:
    """``config`` with the gateway's settings as it runs them, every secret masked."""
    found = plain(dataclasses.replace(config, gateway=settings))
    assert isinstance(found, dict)
    return found


def plain(value: Any, name: str = "") -> Any:
    if name and name not in _NOT_SECRET and _SECRET_NAME.search(name):
        return None if value is None else MASK
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f for f in dataclasses.fields(value) if f.init)  # not what is derived
        return {f.name: plain(getattr(value, f.name), f.name) for f in fields}
    if isinstance(value, Mapping):
        return {str(k): plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return _mask_url(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return str(value)  # a Secret shows itself masked; anything else by its str


def _mask_url(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK
    if parts.password is None:
        return text
    netloc = f"{parts.username}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
