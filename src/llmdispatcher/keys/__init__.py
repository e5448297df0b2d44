"""Stored gateway keys: a persistent, run-time resource (``llmdispatcher keys``, the admin API).

``model`` holds the values and their checks, ``store`` the operations, ``sql`` the schema;
``sqlite`` and ``postgres`` are the drivers, imported only when a URL asks for them.
"""

from .model import (
    AuditEntry,
    DuplicateName,
    InvalidField,
    KeyStoreError,
    StoredKey,
    Team,
    UnknownKey,
)
from .store import Changes, KeyStore, open_key_store

__all__ = [
    "AuditEntry",
    "Changes",
    "DuplicateName",
    "InvalidField",
    "KeyStore",
    "KeyStoreError",
    "StoredKey",
    "Team",
    "UnknownKey",
    "open_key_store",
]
