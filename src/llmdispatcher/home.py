"""The data directory: where the CLI and the gateway keep their one SQLite database.

``$LLMDISPATCHER_HOME``, else ``$XDG_DATA_HOME/llmdispatcher``, else
``~/.local/share/llmdispatcher`` (as ``simonw/llm`` does). Its ``llmdispatcher.db`` is the
default request ledger of ``chat`` and ``serve`` and the default key store. Nothing is created
until something is written; moving the directory (and pointing ``LLMDISPATCHER_HOME`` at the new
place) moves everything.

Which ledger a front end records to (``ledger_url``): the configured ``ledger_url``, else
``$LLMDISPATCHER_LEDGER``, else the data directory's database; ``ledger_url: none`` or
``LLMDISPATCHER_NO_LEDGER=1`` records nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATABASE = "llmdispatcher.db"
OFF = "none"  # ledger_url: none


def recording_off(url: str) -> bool:
    """Whether a configured ``ledger_url`` says ``none``."""
    return url.strip().lower() == OFF


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory (not created here)."""
    env = os.environ if environ is None else environ
    home = env.get("LLMDISPATCHER_HOME")
    if home:
        return Path(home).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path("~/.local/share").expanduser()
    return base / "llmdispatcher"


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """``sqlite:///<data dir>/llmdispatcher.db`` (an absolute path: four slashes)."""
    return f"sqlite:///{(data_dir(environ) / DATABASE).absolute()}"


def ledger_url(configured: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The ledger a front end records to; None: recording is off."""
    env = os.environ if environ is None else environ
    if env.get("LLMDISPATCHER_NO_LEDGER", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    if configured:
        return None if recording_off(configured) else configured
    return env.get("LLMDISPATCHER_LEDGER") or database_url(env)


def key_store_url(
    configured: str | None, ledger: str | None, environ: Mapping[str, str] | None = None
) -> str:
    """Where stored gateway keys live: ``gateway.key_store_url``, else the configured
    ``ledger_url`` (unless ``none``), else the data directory's database."""
    if configured:
        return configured
    if ledger and not recording_off(ledger):
        return ledger
    return database_url(environ)
