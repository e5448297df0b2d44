"""The dashboard's sub-application under ``/ui/``: its middleware, templates and sign-in.

One middleware for every dashboard request: the session (``session.py``; pages need one, the
sign-in page and static files do not), the CSRF check on every POST but the sign-in itself,
and errors as HTML pages (JSON for the Playground's fetch), never a traceback. One
``on_response_prepare`` hook stamps every response, streamed too, with the security headers:
a Content-Security-Policy allowing only this origin's own scripts and styles (no inline
script, ``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff``, a same-origin
referrer, and no caching of pages.

Access: the admin key signs in as ``admin`` (every page, key changes, replays, the
Playground); a stored key whose role is ``viewer`` signs in read-only (no key changes, no
replays; the Playground only for the models the key allows). Without an admin key configured,
``/ui/`` explains how to turn it on and serves nothing else, even on loopback: a dashboard shows
who spends what, which every local user of a shared machine could otherwise read.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..auth import digest_of
from ..errors import ApiError
from ..relay import json_response
from ..state import GATEWAY, Gateway
from .formatting import FILTERS
from .session import COOKIE, SESSION_S, Role, Session, Sessions

logger = logging.getLogger("llmdispatcher.gateway")
HERE = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSIONS = web.AppKey("ui_sessions", Sessions)
TEMPLATES = web.AppKey("ui_templates", Environment)
SESSION = web.RequestKey("ui_session", Session)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form
    # POST, which the gateway's origin check (origin.py) rightly refuses
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
OPEN = ("/ui/login", "/ui/static/")
# A form's body carries its CSRF token in the ``csrf`` field (multipart: the Replay page's upload).
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
NAV = (
    ("Overview", "/ui/"),
    ("Vendors", "/ui/vendors"),
    ("Requests", "/ui/requests"),
    ("Keys", "/ui/keys"),
    ("Playground", "/ui/playground"),
    ("Replay", "/ui/replay"),
    ("Config", "/ui/config"),
)
HOW_TO_ENABLE = (
    "Set an admin key and restart the gateway: export LLMDISPATCHER_ADMIN_KEY=<a long random "
    "secret> (or gateway.admin_key: ${MY_ENV_VAR} in the config file). Then sign in here with it."
)


def build() -> web.Application:
    """The ``/ui/`` sub-application (mounted by ``create_app``)."""
    ui = web.Application(middlewares=[_middleware])
    ui.on_response_prepare.append(_secure_headers)
    ui[SESSIONS] = Sessions()
    ui[TEMPLATES] = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # everything from the ledger or a client is text, never markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    ui[TEMPLATES].filters.update(FILTERS)
    ui.router.add_static("/static/", HERE / "static", append_version=False)
    from . import pages

    pages.add_routes(ui)
    ui.router.add_get("/login", login_page)
    ui.router.add_post("/login", sign_in)
    ui.router.add_post("/logout", sign_out)
    return ui


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    env = request.app[TEMPLATES]
    session = request.get(SESSION)
    csrf = request.app[SESSIONS].csrf_token(session) if session else ""
    body = env.get_template(template).render(
        nav=NAV, path=request.path, session=session, csrf=csrf, **context
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:  # a redirect as is; an HTTP error becomes a page
        # (returned, not raised: the gateway's middleware makes API errors of exceptions)
        if exc.status < 400:
            response = web.Response(status=exc.status, headers=exc.headers)
        else:
            response = _error_page(request, exc.status, exc.reason)
    except ApiError as exc:
        if request.content_type == "application/json":  # the Playground's fetch
            response = json_response({"error": exc.message}, status=exc.status)
        else:
            response = _error_page(request, exc.status, exc.message)
    except Exception:
        logger.exception("dashboard: %s %s failed", request.method, request.path)
        response = _error_page(request, 500, "internal error: see the gateway's log")
    return response


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every dashboard response, streamed or not, just before its headers go out."""
    response.headers.update(HEADERS)
    if not request.path.startswith("/ui/static/"):
        response.headers["Cache-Control"] = "no-store"


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    if request.path == "/ui":
        raise web.HTTPPermanentRedirect("/ui/")
    if request.path.startswith("/ui/static/"):
        return await handler(request)
    if gateway.settings.admin_key_sha256 is None:
        return render(request, "off.html", status=404, how_to=HOW_TO_ENABLE)
    if request.path.startswith(OPEN):
        return await handler(request)
    token = request.cookies.get(COOKIE, "")
    session = request.app[SESSIONS].read(token) if token else None
    if session is None or not _still_valid(gateway, session):
        raise web.HTTPSeeOther("/ui/login")
    request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type in FORMS:
            given = str((await request.post()).get("csrf", ""))
        if not request.app[SESSIONS].csrf_ok(session, given):
            raise ApiError(403, "missing or wrong CSRF token: reload the page and try again")
    return await handler(request)


def _still_valid(gateway: Gateway, session: Session) -> bool:
    """A viewer's key may have been revoked or expired since it signed in."""
    if session.admin:
        return True
    cache = gateway.stored_keys
    return cache is not None and cache.active_key(session.subject) is not None


def redirect(location: str) -> web.Response:
    """A 303 to ``location`` (after a form's POST: the browser GETs it)."""
    return web.Response(status=303, headers={"Location": location})


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


# --- sign in and out -----------------------------------------------------------------------------
async def login_page(request: web.Request) -> web.StreamResponse:
    return render(request, "login.html", error=None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    gateway = request.config_dict[GATEWAY]
    address = request.remote or "-"
    wait = gateway.auth_failures.wait_s(address)
    if wait:
        message = f"Too many wrong keys from this address: try again in {math.ceil(wait)}s."
        return render(request, "login.html", status=429, error=message)
    form = await request.post()
    token = str(form.get("admin_key", "")).strip()
    found = _identify(gateway, token)
    if found is None:
        gateway.auth_failures.take(address)
        logger.warning("dashboard sign-in refused from %s", address)
        error = "That key is not the admin key or a viewer key of this gateway."
        return render(request, "login.html", status=401, error=error)
    cookie, _ = request.app[SESSIONS].issue(*found)
    response = redirect("/ui/")
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_S,
        path="/ui/",
        httponly=True,
        samesite="Strict",
        secure=_behind_tls(request),
    )
    return response


def _identify(gateway: Gateway, token: str) -> tuple[Role, str] | None:
    """``("admin", "admin")``, ``("viewer", key id)``, or None."""
    if not token:
        return None
    expected = bytes.fromhex(gateway.settings.admin_key_sha256 or "")
    if hmac.compare_digest(digest_of(token), expected):
        return "admin", "admin"
    cache = gateway.stored_keys
    key = cache.identify(digest_of(token)) if cache is not None else None
    if key is not None and key.id is not None and key.role == "viewer":
        return "viewer", key.id
    return None


def _behind_tls(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def sign_out(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].end(request[SESSION])
    response = redirect("/ui/login")
    response.del_cookie(COOKIE, path="/ui/")
    return response
