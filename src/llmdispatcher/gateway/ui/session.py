"""Dashboard sessions: a signed cookie, its expiry, and the CSRF token bound to it.

A session is ``role|subject|expires|nonce``, base64url-encoded and signed with HMAC-SHA256
(``Sessions.issue`` / ``Sessions.read``). Nothing secret is in it: ``subject`` is ``admin`` or a
stored key's id, never a key. The signing secret is ``LLMDISPATCHER_UI_SECRET`` (hex) when set
(``serve --workers N`` sets one for its workers), else 32 random bytes per process (a restart
signs everyone out). A session expires ``SESSION_S`` after sign-in; signing out
forgets its nonce in this process (and clears the cookie).

The CSRF token is HMAC(secret, ``csrf:`` + nonce): every form and every ``htmx`` request sends
it back (a hidden ``csrf`` field or the ``X-CSRF-Token`` header) and a mutation without the
right one is refused, on top of the cookie's ``SameSite=Strict``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

COOKIE = "llmd_session"
SESSION_S = 8 * 3600
Role = Literal["admin", "viewer"]


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    subject: str  # "admin", or the stored key's id
    expires: float
    nonce: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Sessions:
    """Issues and checks session cookies for one gateway process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or _shared_secret() or secrets.token_bytes(32)
        self._ended: dict[str, float] = {}  # nonce -> expiry: signed out here

    def issue(self, role: Role, subject: str, now: float | None = None) -> tuple[str, Session]:
        now = time.time() if now is None else now
        session = Session(role, subject, float(int(now + SESSION_S)), secrets.token_hex(16))
        payload = f"{role}|{subject}|{session.expires:.0f}|{session.nonce}".encode()
        token = f"{_b64(payload)}.{_b64(self._sign(payload))}"
        return token, session

    def read(self, token: str, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None (forged, expired, signed out, malformed)."""
        now = time.time() if now is None else now
        body, _, signature = token.partition(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._sign(payload)):
            return None
        parts = payload.decode(errors="replace").split("|")
        if len(parts) != 4 or parts[0] not in ("admin", "viewer") or not parts[2].isdigit():
            return None
        role: Role = "admin" if parts[0] == "admin" else "viewer"
        session = Session(role, parts[1], float(parts[2]), parts[3])
        if session.expires <= now or session.nonce in self._ended:
            return None
        return session

    def end(self, session: Session) -> None:
        now = time.time()
        self._ended = {n: t for n, t in self._ended.items() if t > now}  # forget the expired
        self._ended[session.nonce] = session.expires

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, b"csrf:" + session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf_token(session).encode())

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()


def _shared_secret() -> bytes | None:
    given = os.environ.get("LLMDISPATCHER_UI_SECRET", "").strip()
    if not given:
        return None
    try:
        found = bytes.fromhex(given)
    except ValueError:
        found = b""
    if len(found) < 16:
        raise ConfigError(
            "LLMDISPATCHER_UI_SECRET: at least 32 hex digits, e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
