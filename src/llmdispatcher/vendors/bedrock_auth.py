"""How a Bedrock request is authorised: a Bedrock API key, or SigV4 through botocore.

* A Bedrock API key (``api_key=`` or ``AWS_BEARER_TOKEN_BEDROCK``, as botocore reads it) is an
  ``Authorization: Bearer`` header; botocore is not imported at all.
* Otherwise every request is SigV4-signed (signing name ``bedrock``) by botocore's ``SigV4Auth``
  with credentials from botocore's own chain: explicit keys, the environment, the shared
  config/credentials files and ``profile``, SSO, web identity (EKS), container and instance
  metadata. Nothing of that chain is re-implemented here. botocore is the ``bedrock`` extra and
  is imported when such a vendor is built, never by ``import llmdispatcher``.

Credentials are resolved on the first request, in a worker thread (the chain may call the
instance metadata service), and again only when botocore says a refreshable set is about to
expire (``refresh_needed``): not per request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import AuthenticationError, ConfigError
from .base import Secret

SIGNING_NAME = "bedrock"
TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"
INSTALL_HINT = "pip install 'llmdispatcher[bedrock]'"


@dataclass(frozen=True, slots=True)
class AwsKeys:
    """Static AWS keys, instead of the credential chain (boto3's ``aws_access_key_id``,
    ``aws_secret_access_key`` and ``aws_session_token``)."""

    aws_access_key_id: str
    aws_secret_access_key: str = field(repr=False)
    aws_session_token: str | None = field(default=None, repr=False)


class Authoriser(Protocol):
    async def ready(self) -> None:
        """Make sure valid credentials are at hand (may resolve or refresh them)."""
        ...

    def headers(
        self, url: str, headers: Mapping[str, str], body: bytes, method: str = "POST"
    ) -> dict[str, str]:
        """``headers`` plus what authorises this exact request."""
        ...

    def secrets(self) -> tuple[str, ...]: ...


class BearerKey:
    """A Bedrock API key."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    async def ready(self) -> None:
        return None

    def headers(
        self, url: str, headers: Mapping[str, str], body: bytes, method: str = "POST"
    ) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self._key.reveal()}"}

    def secrets(self) -> tuple[str, ...]:
        return (self._key.reveal(),)


class SigV4:
    """SigV4 signing with botocore's credential chain (see the module docstring)."""

    def __init__(
        self, region: str, profile: str | None, session: Any, keys: AwsKeys | None, vendor: str
    ) -> None:
        self.region = region
        self._profile = profile
        self._session = session  # None: made on the first request, in a worker thread
        self._keys = keys
        self._vendor = vendor
        self._credentials: Any = None
        self._frozen: Any = None
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        if self._frozen is not None and not self._refresh_needed():
            return
        async with self._lock:
            if self._frozen is None or self._refresh_needed():
                self._frozen = await asyncio.to_thread(self._resolve)

    def _refresh_needed(self) -> bool:
        check = getattr(self._credentials, "refresh_needed", None)
        return bool(check()) if callable(check) else False

    def _resolve(self) -> Any:
        """Frozen credentials (blocking: botocore may read files or call a metadata service)."""
        if self._session is None:  # also the check that botocore is installed
            self._session = botocore_session(self._profile, self._vendor)
        from botocore.exceptions import BotoCoreError

        try:
            if self._credentials is None:
                self._credentials = self._chain()
            return self._credentials.get_frozen_credentials()
        except BotoCoreError as exc:
            raise AuthenticationError(
                f"AWS credentials could not be loaded: {exc}", vendor=self._vendor
            ) from exc

    def _chain(self) -> Any:
        if self._keys is not None:
            from botocore.credentials import Credentials

            keys = self._keys
            return Credentials(
                keys.aws_access_key_id, keys.aws_secret_access_key, keys.aws_session_token
            )
        found = self._session.get_credentials()
        if found is None:
            raise AuthenticationError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE (or profile=), or AWS_BEARER_TOKEN_BEDROCK (or api_key=)",
                vendor=self._vendor,
            )
        return found

    def headers(
        self, url: str, headers: Mapping[str, str], body: bytes, method: str = "POST"
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self._frozen, SIGNING_NAME, self.region).add_auth(request)
        return dict(request.headers.items())

    def secrets(self) -> tuple[str, ...]:
        frozen = self._frozen
        if frozen is None:
            return ()
        return tuple(s for s in (frozen.secret_key, frozen.token) if s)


def botocore_session(profile: str | None, vendor: str) -> Any:
    """A botocore session for ``profile`` (None: ``AWS_PROFILE`` or the default)."""
    try:
        import botocore.session
    except ImportError:
        raise ConfigError(
            f"vendor {vendor!r}: SigV4 signing needs botocore ({INSTALL_HINT}); or use a "
            f"Bedrock API key ({TOKEN_ENV} or api_key=)"
        ) from None
    return botocore.session.Session(profile=profile)


def region_from(region: str | None, session: Any) -> str | None:
    """The region as botocore resolves it (``AWS_DEFAULT_REGION``, then the profile's config),
    or, without botocore, ``AWS_DEFAULT_REGION`` then ``AWS_REGION``."""
    if region:
        return region
    if session is not None:
        found = session.get_config_variable("region")
        return str(found) if found else None
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
