"""The admin API (``/admin/v1``): stored keys, team budgets and the audit trail, at run time.

Authenticated by the admin key (``LLMDISPATCHER_ADMIN_KEY``, ``gateway.admin_key`` or
``admin_key_sha256``), compared by digest in constant time. Without one the whole API answers
404, saying how to turn it on. A missing or wrong bearer token is 401 (and counts against the
address's wrong-key throttle); a valid client key is 403. Field errors are 422 naming the
field and what it accepts; a name in use 409; an unknown id 404.

A change made here reaches this gateway's key cache at once and every other replica's within
``key_refresh_s``. Responses never carry a key except ``POST /admin/v1/keys``'s ``key``: the
plaintext, this once.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from aiohttp import web

from ..budgets import Budget, from_micros, period_key
from ..keys import KeyStore as StoredKeyStore
from ..keys import KeyStoreError, StoredKey
from ..keys.model import iso
from .auth import digest_of, presented_token
from .errors import ApiError
from .relay import json_response, read_json
from .state import GATEWAY, Gateway

PREFIX = "/admin/v1"
STORE = web.AppKey("key_store", StoredKeyStore)
HOW_TO = (
    "the admin API is off: set LLMDISPATCHER_ADMIN_KEY (or gateway.admin_key, or "
    "gateway.admin_key_sha256) and restart the gateway"
)


def add_routes(app: web.Application, store: StoredKeyStore | None) -> None:
    """The routes; without a key store they all answer 404 (``authorize``)."""
    if store is not None:
        app[STORE] = store
    app.router.add_post(f"{PREFIX}/keys", create_key)
    app.router.add_get(f"{PREFIX}/keys", list_keys)
    app.router.add_get(f"{PREFIX}/keys/{{id}}", show_key)
    app.router.add_patch(f"{PREFIX}/keys/{{id}}", update_key)
    app.router.add_delete(f"{PREFIX}/keys/{{id}}", revoke_key)
    app.router.add_put(f"{PREFIX}/teams/{{name}}", set_team)
    app.router.add_get(f"{PREFIX}/teams", list_teams)
    app.router.add_get(f"{PREFIX}/audit", audit)


def authorize(gateway: Gateway, request: web.Request) -> str:
    """The actor to record (``admin@<address>``), or the right ``ApiError``."""
    expected = gateway.settings.admin_key_sha256
    if expected is None or gateway.stored_keys is None:
        raise ApiError(404, HOW_TO, code="admin_api_off")
    address = request.remote or "-"
    wait = gateway.auth_failures.wait_s(address)
    if wait:
        raise ApiError(
            429,
            f"too many requests with a wrong key from this address: retry in {math.ceil(wait)}s",
            code="too_many_auth_failures",
            retry_after=wait,
        )
    token = presented_token(request)
    if token and hmac.compare_digest(digest_of(token), bytes.fromhex(expected)):
        return f"admin@{address}"
    if token and gateway.keys.identify(token) is not None:
        raise ApiError(403, "this key is not the admin key", code="not_admin")
    gateway.auth_failures.take(address)
    raise ApiError(401, "send Authorization: Bearer <the admin key>", code="invalid_api_key")


async def _begin(request: web.Request) -> tuple[Gateway, StoredKeyStore, str]:
    gateway = request.app[GATEWAY]
    actor = authorize(gateway, request)
    return gateway, request.app[STORE], actor


async def _changed(gateway: Gateway) -> None:
    """Make this gateway see its own change at once (the others poll)."""
    if gateway.stored_keys is not None:
        await gateway.stored_keys.load()


def _refused(exc: KeyStoreError) -> ApiError:
    codes = {404: "key_not_found", 409: "duplicate_name", 422: "invalid_field"}
    param = getattr(exc, "field", None)
    return ApiError(exc.status, str(exc), param=param, code=codes.get(exc.status))


async def create_key(request: web.Request) -> web.StreamResponse:
    gateway, store, actor = await _begin(request)
    body = await read_json(request, gateway)
    try:
        key, plaintext = await store.create(body, actor=actor)
    except KeyStoreError as exc:
        raise _refused(exc) from None
    await _changed(gateway)
    return json_response({**key.public(), "key": plaintext}, status=201)


async def list_keys(request: web.Request) -> web.StreamResponse:
    _, store, _ = await _begin(request)
    query = request.query
    revoked = query.get("revoked")
    if revoked not in (None, "true", "false"):
        raise ApiError(422, "revoked: true or false", param="revoked", code="invalid_field")
    keys = await store.list_keys(
        team=query.get("team"), revoked=None if revoked is None else revoked == "true"
    )
    return json_response({"object": "list", "data": [k.public() for k in keys]})


async def show_key(request: web.Request) -> web.StreamResponse:
    gateway, store, _ = await _begin(request)
    try:
        key = await store.get(request.match_info["id"])
    except KeyStoreError as exc:
        raise _refused(exc) from None
    return json_response({**key.public(), "usage": await usage_report(gateway, key)})


async def update_key(request: web.Request) -> web.StreamResponse:
    gateway, store, actor = await _begin(request)
    body = await read_json(request, gateway)
    try:
        key = await store.update(request.match_info["id"], body, actor=actor)
    except KeyStoreError as exc:
        raise _refused(exc) from None
    await _changed(gateway)
    return json_response(key.public())


async def revoke_key(request: web.Request) -> web.StreamResponse:
    gateway, store, actor = await _begin(request)
    try:
        key = await store.revoke(request.match_info["id"], actor=actor)
    except KeyStoreError as exc:
        raise _refused(exc) from None
    await _changed(gateway)
    return json_response(key.public())


async def set_team(request: web.Request) -> web.StreamResponse:
    gateway, store, actor = await _begin(request)
    body = await read_json(request, gateway)
    try:
        team = await store.set_team_budget(
            {**body, "name": request.match_info["name"]}, actor=actor
        )
    except KeyStoreError as exc:
        raise _refused(exc) from None
    await _changed(gateway)
    name = request.match_info["name"]
    return json_response(team.public() if team else {"name": name, "budget_usd": None})


async def list_teams(request: web.Request) -> web.StreamResponse:
    _, store, _ = await _begin(request)
    return json_response({"object": "list", "data": [t.public() for t in await store.teams()]})


async def audit(request: web.Request) -> web.StreamResponse:
    _, store, _ = await _begin(request)
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(422, "limit: a whole number from 1 to 1000", param="limit",
                       code="invalid_field")  # fmt: skip
    entries = await store.audit(int(raw))
    return json_response({"object": "list", "data": [e.public() for e in entries]})


async def usage_report(gateway: Gateway, key: StoredKey) -> dict[str, Any]:
    """Use in the key's current budget period (the month when it has no budget)."""
    usage = gateway.key_usage
    if usage is None:
        return {}
    period = key.budget_period if key.budget_usd is not None else "month"
    use = await usage.use(key.id, period)
    wall = gateway.clock.wall()
    spent, remaining = use.spent_usd, None
    if key.budget_usd is not None:
        budget = Budget(f"key:{key.name}", key.budget_usd, key.budget_period)
        spent = await usage.spent(budget)  # reservations in flight count too
        remaining = max(budget.limit_usd - spent, from_micros(0))
    _, ends = period_key(Budget(f"key:{key.name}", 1, period), wall)
    return {
        "period": period,
        "requests": use.requests,
        "tokens": use.tokens,
        "spent_usd": str(spent),
        "budget_usd": None if key.budget_usd is None else str(key.budget_usd),
        "remaining_usd": None if remaining is None else str(remaining),
        "resets_at": iso(ends),
    }
