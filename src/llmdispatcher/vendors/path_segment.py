"""Names that travel in a URL path (a Gemini model, an Azure deployment), checked before sending.

A client chooses the model name; a vendor that builds its URL from it must not let
``gemini-1.5-flash/../../tunedModels/x`` walk to another resource. Quoting would keep the request
line clean but send a name no vendor has; refusing says so at once, and the dispatcher can try a
vendor that takes the model in the body instead.
"""

from __future__ import annotations

import string

from ..errors import UnsupportedRequest

# RFC 3986 "unreserved": the characters a path segment carries as themselves.
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def path_segment(value: str, *, field: str, vendor: str, whole: str | None = None) -> str:
    """``value`` unchanged when it is one safe URL path segment; otherwise ``UnsupportedRequest``
    naming ``field`` and what it holds (``whole``, when ``value`` is only part of it): a ``/``,
    ``?``, ``#``, ``%``, space or other character a path would read, an empty name, or a dot
    segment such as ``..``."""
    if value not in ("", ".", "..") and UNRESERVED.issuperset(value):
        return value
    shown = value if whole is None else whole
    raise UnsupportedRequest(
        f"{field} {shown[:100]!r} cannot be sent to vendor {vendor!r}: it goes into the URL "
        f"path, so it may hold only letters, digits, '-', '.', '_' and '~' (and not be '.' or "
        f"'..'); check the {field} name",
        vendor=vendor,
    )
