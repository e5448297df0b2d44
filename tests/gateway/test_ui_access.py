"""The dashboard's access rules over real HTTP (an in-process gateway on 127.0.0.1): sign-in,
the session cookie, CSRF, the security headers, viewers, escaping, and the dashboard off
without an admin key. The browser tests (``test_ui_browser.py``) cover the pages in chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from llmdispatcher import Config, Dispatcher
from llmdispatcher.config import GatewayConfig
from llmdispatcher.errors import ConfigError
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.ui.ledger_views import PAGE
from llmdispatcher.gateway.ui.session import SESSION_S, Sessions
from llmdispatcher.keys import open_key_store
from tests.gateway.inprocess import OneModelVendor

ADMIN = "ui-admin-key-0123456789abcdef"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
XSS = "<img src=x onerror=alert(1)>"


async def _client(tmp: Path, settings: GatewayConfig) -> TestClient[Any, Any]:
    config = Config(ledger_url=f"sqlite:///{tmp / 'ledger.db'}", ledger_content=True)
    dispatcher = Dispatcher(config, vendors=[OneModelVendor()])
    store = open_key_store(f"sqlite:///{tmp / 'keys.db'}")
    app = create_app(dispatcher, settings, key_store=store)
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))  # 127.0.0.1 cookies
    await client.start_server()
    return client


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(tmp_path, GatewayConfig(admin_key=ADMIN, auth_failures_per_minute=1000))
    yield client
    await client.close()


async def sign_in(client: TestClient[Any, Any], key: str = ADMIN) -> str:
    """Sign in; the page's CSRF token."""
    signed = await client.post("/ui/login", data={"admin_key": key}, allow_redirects=False)
    assert signed.status == 303, await signed.text()
    page = await (await client.get("/ui/keys")).text()
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def test_without_an_admin_key_the_dashboard_says_how_to_enable_it(tmp_path: Path) -> None:
    client = await _client(tmp_path, GatewayConfig())
    try:
        for path in ("/ui/", "/ui/login", "/ui/keys"):
            reply = await client.get(path, allow_redirects=False)
            assert reply.status == 404
            assert "LLMDISPATCHER_ADMIN_KEY" in await reply.text()
            assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
        assert (await client.get("/ui", allow_redirects=False)).headers["Location"] == "/ui/"
    finally:
        await client.close()


async def test_pages_need_a_session_and_carry_the_security_headers(
    ui: TestClient[Any, Any],
) -> None:
    for path in ("/ui/", "/ui/vendors", "/ui/requests", "/ui/keys", "/ui/playground", "/ui/config"):
        reply = await ui.get(path, allow_redirects=False)
        assert (reply.status, reply.headers["Location"]) == (303, "/ui/login"), path
    login = await ui.get("/ui/login")
    csp = login.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert login.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in await login.text()  # every script is a file
    static = await ui.get("/ui/static/app.js")
    assert static.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_session_cookie(ui: TestClient[Any, Any]) -> None:
    reply = await ui.post("/ui/login", data={"admin_key": ADMIN}, allow_redirects=False)
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/ui/" in cookie
    assert "Secure" not in cookie
    assert f"Max-Age={SESSION_S}" in cookie
    assert ADMIN not in cookie
    behind_tls = await ui.post(
        "/ui/login",
        data={"admin_key": ADMIN},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "Secure" in behind_tls.headers["Set-Cookie"]


async def test_a_wrong_key_is_refused_and_counts_against_the_address(tmp_path: Path) -> None:
    client = await _client(tmp_path, GatewayConfig(admin_key=ADMIN, auth_failures_per_minute=2))
    try:
        statuses = [
            (await client.post("/ui/login", data={"admin_key": "wrong"})).status for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
    finally:
        await client.close()


def test_a_forged_expired_or_ended_session_is_refused() -> None:
    sessions = Sessions(b"k" * 32)
    token, session = sessions.issue("admin", "admin", now=1000.0)
    assert sessions.read(token, now=1001.0) == session
    assert sessions.read(token, now=1000.0 + SESSION_S) is None  # expired
    body, _, signature = token.partition(".")
    assert sessions.read(body.replace(body[2], "A" if body[2] != "A" else "B") + "." + signature,
                         now=1001.0) is None  # fmt: skip
    assert Sessions(b"x" * 32).read(token, now=1001.0) is None  # another gateway's secret
    assert sessions.read("garbage", now=1001.0) is None
    sessions.end(session)
    assert sessions.read(token, now=1001.0) is None


def test_a_shared_session_secret_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMDISPATCHER_UI_SECRET", "ab" * 32)
    token, session = Sessions().issue("admin", "admin")
    assert Sessions().read(token) == session  # another worker with the same secret
    monkeypatch.setenv("LLMDISPATCHER_UI_SECRET", "not-hex")
    with pytest.raises(ConfigError, match="LLMDISPATCHER_UI_SECRET: at least 32 hex digits"):
        Sessions()


async def test_mutations_need_the_csrf_token(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    missing = await ui.post("/ui/keys", data={"name": "k1"})
    wrong = await ui.post("/ui/keys", data={"name": "k1", "csrf": "0" * 64})
    assert (missing.status, wrong.status) == (403, 403)
    assert "CSRF" in await missing.text()
    made = await ui.post("/ui/keys", data={"name": "k1", "csrf": csrf})
    assert made.status == 201
    assert "sk-llmd-" in await made.text()
    refused = await ui.post("/ui/playground/stream", json={"model": "known-model", "prompt": "hi"})
    assert refused.status == 403


async def test_signing_out_ends_the_session(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    cookies = {c.key: c.value for c in ui.session.cookie_jar}
    out = await ui.post("/ui/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    replay = await ui.get("/ui/", cookies=cookies, allow_redirects=False)
    assert replay.status == 303  # the old cookie no longer opens a page


async def test_a_viewer_reads_but_does_not_change(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    made = await ui.post(
        "/ui/keys",
        data={"name": "watcher", "role": "viewer", "models": "other-*", "csrf": csrf},
    )
    viewer_key = re.search(r'value="(sk-llmd-[A-Za-z0-9]+)"', await made.text())
    assert viewer_key is not None
    viewer_id = re.search(
        r'data-key="watcher">.*?/ui/keys/(key_\w+)/revoke', await made.text(), re.S
    )
    assert viewer_id is not None
    client_made = await ui.post("/ui/keys", data={"name": "plain", "csrf": csrf})
    client_key = re.search(r'value="(sk-llmd-[A-Za-z0-9]+)"', await client_made.text())
    assert client_key is not None
    ui.session.cookie_jar.clear()
    refused = await ui.post("/ui/login", data={"admin_key": client_key.group(1)})
    assert refused.status == 401  # a client key is no dashboard key
    viewer_csrf = await sign_in(ui, viewer_key.group(1))
    for path in ("/ui/", "/ui/vendors", "/ui/requests", "/ui/keys", "/ui/config"):
        assert (await ui.get(path)).status == 200, path
    keys_page = await (await ui.get("/ui/keys")).text()
    assert "Create key" not in keys_page
    assert ">Revoke<" not in keys_page
    change = await ui.post("/ui/keys", data={"name": "sneaky", "csrf": viewer_csrf})
    assert change.status == 403
    played = await ui.post(
        "/ui/playground/stream",
        json={"model": "known-model", "prompt": "hi"},
        headers={"X-CSRF-Token": viewer_csrf},
    )
    assert played.status == 403  # its models: other-* only
    assert "may not use model" in (await played.json())["error"]
    revoked = await ui.delete(
        f"/admin/v1/keys/{viewer_id.group(1)}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert revoked.status == 200
    after = await ui.get("/ui/", allow_redirects=False)
    assert (after.status, after.headers["Location"]) == (303, "/ui/login")  # its session ended


async def test_what_the_ledger_holds_is_shown_as_text(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    played = await ui.post(
        "/ui/playground/stream",
        json={"model": "known-model", "prompt": XSS},
        headers={"X-CSRF-Token": csrf},
    )
    body = await played.text()
    assert played.status == 200, body
    request_id = re.search(r'event: ledger\ndata: {"request_id":"([^"]+)"}', body)
    assert request_id is not None
    listing = await (await ui.get("/ui/requests")).text()
    detail = await (await ui.get(f"/ui/requests/{request_id.group(1)}")).text()
    for page in (listing, detail):
        assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail


async def test_unknown_requests_and_bad_filters_are_pages_not_tracebacks(
    ui: TestClient[Any, Any],
) -> None:
    await sign_in(ui)
    missing = await ui.get("/ui/requests/nope")
    assert missing.status == 404
    assert "no request &#39;nope&#39;" in await missing.text()
    bad = await ui.get("/ui/?window=1y")
    assert bad.status == 400
    assert "window: one of 15m, 1h, 24h, 7d" in await bad.text()
    assert (await ui.get("/ui/requests?before=soon")).status == 400


async def test_first_load_is_under_300_kb(ui: TestClient[Any, Any]) -> None:
    """The overview (the heaviest page: both libraries) with every asset it loads."""
    await sign_in(ui)
    page = await (await ui.get("/ui/")).read()
    assets = re.findall(rb'(?:src|href)="(/ui/static/[^"]+)"', page)
    assert len(assets) >= 5
    sizes = [len(await (await ui.get(a.decode())).read()) for a in assets]
    assert len(page) + sum(sizes) < 300_000


async def test_requests_are_paged_newest_first_and_filtered(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    for i in range(PAGE + 5):
        reply = await ui.post(
            "/ui/playground/stream",
            json={"model": "known-model" if i % 2 else "unknown-model", "prompt": f"n{i}"},
            headers={"X-CSRF-Token": csrf},
        )
        await reply.read()
    first = await (await ui.get("/ui/requests")).text()
    assert first.count("data-request-id=") == PAGE
    older = re.search(r'href="(/ui/requests\?before=[^"]+)"', first)
    assert older is not None
    second = await (await ui.get(older.group(1).replace("&amp;", "&"))).text()
    assert second.count("data-request-id=") == 5
    assert "Older" not in second
    known = await (await ui.get("/ui/requests?status=ok&model=known-model")).text()
    assert known.count("data-request-id=") == (PAGE + 5) // 2
    other = await (await ui.get("/ui/requests?model=unknown-model&window=1h")).text()
    assert other.count("data-request-id=") == (PAGE + 5) - (PAGE + 5) // 2
    failed = await (await ui.get("/ui/requests?status=error")).text()
    assert failed.count("data-request-id=") == 0


async def test_an_admin_edits_a_keys_limits(ui: TestClient[Any, Any]) -> None:
    csrf = await sign_in(ui)
    made = await (await ui.post("/ui/keys", data={"name": "tuned", "csrf": csrf})).text()
    key_id = re.search(r'data-key="tuned">.*?/ui/keys/(key_\w+)/limits', made, re.S)
    assert key_id is not None
    url = f"/ui/keys/{key_id.group(1)}/limits"
    edited = await ui.post(url, data={"rpm": "42", "budget_usd": "5", "csrf": csrf})
    assert edited.status == 200  # the listing, after the redirect
    row = re.search(r'data-key="tuned">(.*?)</tr>', await edited.text(), re.S)
    assert row is not None
    assert "42 rpm" in row.group(1)
    assert "$5.00" in row.group(1)
    bad = await ui.post(url, data={"rpm": "lots", "csrf": csrf})
    assert bad.status == 422
    assert "rpm: a whole number" in await bad.text()
