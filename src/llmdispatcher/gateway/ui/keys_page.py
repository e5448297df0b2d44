"""The Keys page: stored keys with their use against budget; create, edit limits, revoke.

The same key store and checks as the admin API (``admin_api.py``, ``keys.model.parse_fields``),
recorded in the audit trail as ``ui:admin@<address>``. Only an admin session may change keys;
a viewer sees the list. A new key's plaintext is shown once, on the page the creation answers
with, and never again.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...keys import KeyStoreError
from ..admin_api import STORE, usage_report
from ..errors import ApiError
from ..state import GATEWAY
from .app import SESSION, redirect, render

LIMIT_FIELDS = ("rpm", "tpm", "max_concurrency", "budget_usd")
WITH_USAGE = 200  # keys whose use is looked up per page view (one state query each)


def add_routes(ui: web.Application) -> None:
    ui.router.add_get("/keys", keys)
    ui.router.add_post("/keys", create_key)
    ui.router.add_post("/keys/{id}/limits", edit_limits)
    ui.router.add_post("/keys/{id}/revoke", revoke_key)


async def _page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    gateway = request.config_dict[GATEWAY]
    store = request.config_dict.get(STORE)
    rows = []
    if store is not None:
        for i, key in enumerate(await store.list_keys()):
            usage = await usage_report(gateway, key) if i < WITH_USAGE else {}
            rows.append({"key": key, "usage": usage})
    context: dict[str, Any] = {"rows": rows, "store": store is not None, "created": None,
                               "error": None, **extra}  # fmt: skip
    return render(request, "keys.html", status=status, **context)


async def keys(request: web.Request) -> web.StreamResponse:
    return await _page(request)


def _admin_actor(request: web.Request) -> str:
    if not request[SESSION].admin:
        raise ApiError(403, "a viewer session cannot change keys: sign in with the admin key")
    if request.config_dict.get(STORE) is None:
        raise ApiError(404, "no key store: the gateway runs without stored keys")
    return f"ui:admin@{request.remote or '-'}"


def _fields(form: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Form text as the admin API's JSON: empty means unset (null for an edit), numbers as
    numbers, ``models`` as a comma-separated list."""
    found: dict[str, Any] = {}
    for name in names:
        raw = str(form.get(name, "")).strip()
        if name in ("rpm", "tpm", "max_concurrency"):
            found[name] = int(raw) if raw.isdigit() else (raw or None)
        else:
            found[name] = raw or None
    return found


async def create_key(request: web.Request) -> web.StreamResponse:
    actor = _admin_actor(request)
    form = await request.post()
    names = ("name", "team", "models", "role", *LIMIT_FIELDS, "budget_period", "expires_in")
    fields = {k: v for k, v in _fields(form, names).items() if v is not None}
    gateway = request.config_dict[GATEWAY]
    try:
        key, plaintext = await request.config_dict[STORE].create(fields, actor=actor)
    except KeyStoreError as exc:
        return await _page(request, status=exc.status, error=str(exc))
    if gateway.stored_keys is not None:
        await gateway.stored_keys.load()  # this gateway sees its own change at once
    return await _page(request, status=201, created={"key": key, "plaintext": plaintext})


async def edit_limits(request: web.Request) -> web.StreamResponse:
    actor = _admin_actor(request)
    fields = _fields(await request.post(), LIMIT_FIELDS)
    gateway = request.config_dict[GATEWAY]
    try:
        await request.config_dict[STORE].update(request.match_info["id"], fields, actor=actor)
    except KeyStoreError as exc:
        return await _page(request, status=exc.status, error=str(exc))
    if gateway.stored_keys is not None:
        await gateway.stored_keys.load()
    return redirect("/ui/keys")


async def revoke_key(request: web.Request) -> web.StreamResponse:
    actor = _admin_actor(request)
    gateway = request.config_dict[GATEWAY]
    try:
        await request.config_dict[STORE].revoke(request.match_info["id"], actor=actor)
    except KeyStoreError as exc:
        return await _page(request, status=exc.status, error=str(exc))
    if gateway.stored_keys is not None:
        await gateway.stored_keys.load()
    return redirect("/ui/keys")
