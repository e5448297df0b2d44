"""Google OAuth2 access tokens for Vertex AI, through ``google-auth``.

Credentials are Application Default Credentials (``google.auth.default``: the
``GOOGLE_APPLICATION_CREDENTIALS`` file, gcloud's user credentials, GKE workload identity, the
metadata server), a service-account key file by path (what a config file can name), or any
``google.auth.credentials.Credentials`` the caller passes. Nothing of
that chain is re-implemented here. ``google-auth`` is the ``vertex`` extra, imported on the first
request, never by ``import llmdispatcher``.

A token is fetched on the first request and again only when google-auth no longer calls it
``valid``: it counts a token as expired a few minutes (its refresh threshold) before the real
expiry, so requests always carry a token with time left, and one refresh serves every request
in the meantime. Loading and refreshing block (files, HTTP), so they run in a worker thread,
one at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import AuthenticationError, ConfigError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
INSTALL_HINT = "pip install 'llmdispatcher[vertex]'"


class GoogleToken:
    """The bearer token (and quota project) for Vertex requests."""

    def __init__(self, credentials: Any, vendor: str) -> None:
        self._credentials = credentials
        self._vendor = vendor
        self._transport: Any = None
        self._lock = asyncio.Lock()
        self.project: str | None = None  # the ADC project, when ADC names one

    @property
    def token(self) -> str:
        found = getattr(self._credentials, "token", None)
        return found if isinstance(found, str) else ""

    @property
    def quota_project(self) -> str | None:
        found = getattr(self._credentials, "quota_project_id", None)
        return found if isinstance(found, str) and found else None

    def _valid(self) -> bool:
        loaded = self._credentials is not None and not isinstance(self._credentials, str)
        return loaded and bool(self._credentials.valid) and bool(self.token)

    async def ready(self) -> str:
        """A token with time left (fetched or refreshed only when needed)."""
        if not self._valid():
            async with self._lock:
                if not self._valid():
                    await asyncio.to_thread(self._refresh)
        return self.token

    def _refresh(self) -> None:
        try:
            import google.auth
            import google.auth.exceptions
            import google.auth.transport.requests
        except ImportError:
            raise ConfigError(
                f"vendor {self._vendor!r}: Vertex AI auth needs google-auth ({INSTALL_HINT})"
            ) from None
        try:
            if isinstance(self._credentials, str):  # a key file named in a config file
                from google.oauth2 import service_account

                load = service_account.Credentials.from_service_account_file
                account = load(self._credentials, scopes=[SCOPE])  # type: ignore[no-untyped-call]
                self._credentials, self.project = account, account.project_id
            elif self._credentials is None:
                self._credentials, self.project = google.auth.default(scopes=[SCOPE])
            if self._transport is None:
                self._transport = google.auth.transport.requests.Request()
            self._credentials.refresh(self._transport)
        except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
            raise AuthenticationError(
                f"Google credentials could not give a token: {exc}", vendor=self._vendor
            ) from exc
