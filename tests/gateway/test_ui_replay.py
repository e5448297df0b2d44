"""The dashboard's Replay page over real HTTP (an in-process gateway on 127.0.0.1 in front of two
fake OpenAI servers, its SQLite ledger written by the traffic it served): access, CSRF, the
config loader's errors, one replay at a time, cancelling, and a real run whose report equals
``llmdispatcher replay --json`` for the same ledger, configs and seed. The browser test
(``test_ui_browser.py``) submits a config in chromium and sees the report and its charts."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from markupsafe import escape

from llmdispatcher import Config, Dispatcher
from llmdispatcher.config import ApiKeyConfig, GatewayConfig
from llmdispatcher.errors import ConfigError
from llmdispatcher.gateway.app import create_app
from llmdispatcher.gateway.state import GATEWAY
from llmdispatcher.gateway.ui.formatting import ms, pct, usd
from llmdispatcher.gateway.ui.replay_form import Fields, check
from llmdispatcher.gateway.ui.replay_page import RUNNER
from llmdispatcher.gateway.ui.replay_runner import ReplayRunner
from llmdispatcher.gateway.worker_stats import WORKER_STATS, WorkerStats
from llmdispatcher.keys import open_key_store
from llmdispatcher.replay.report import page as report_page
from tests.cli import run_cli
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply

ADMIN = "ui-replay-admin-key-0123456789"
API_KEY = "ui-replay-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REQUESTS = 40
XSS = "<img src=x onerror=alert(1)>"
# A stand-in replay process that waits to be cancelled, writing its pid where the test reads it.
WAITING = "import os, sys, time; sys.stdin.buffer.read(); open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"  # noqa: E501


def config_yaml(a: FakeOpenAI, b: FakeOpenAI, ledger: Path, strategy: str) -> str:
    """Group ``chat`` over a (gpt-4o) and b (gpt-4o-mini); the strategy decides which first."""
    vendors = {
        name: {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": FAKE_OPENAI_KEY}
        for name, fake in (("a", a), ("b", b))
    }
    return "\n".join(
        [
            f"ledger_url: 'sqlite:///{ledger}'",
            "retry_policy: {max_retries: 0}",
            "circuit_breaker: {enabled: false}",
            "model_groups:",
            f"  - name: chat\n    strategy: {strategy}\n    deployments:",
            "      - {vendor: a, model: gpt-4o, input_price: 2.5, output_price: 10.0}",
            "      - {vendor: b, model: gpt-4o-mini, input_price: 0.15, output_price: 0.6}",
            "vendors:",
            *(f"  {name}: {json.dumps(spec)}" for name, spec in vendors.items()),
        ]
    )


@dataclass
class Gateway:
    client: TestClient[Any, Any]
    ui: web.Application
    baseline: Path  # the gateway's own config file
    proposal: Path  # the same vendors, the cost strategy: everything to b
    ledger: str


def _ui_of(app: web.Application) -> web.Application:
    return next(r.get_info()["app"] for r in app.router.resources() if "app" in r.get_info())


async def _gateway(
    tmp: Path, baseline: Path, runner: ReplayRunner | None = None, *, workers: bool = False
) -> Gateway:
    config = Config.from_file(baseline)
    store = open_key_store(f"sqlite:///{tmp / 'keys.db'}")
    settings = GatewayConfig(
        admin_key=ADMIN,
        auth_failures_per_minute=1000,
        api_keys=(ApiKeyConfig(name="team-key", key=API_KEY),),
    )
    dispatcher = Dispatcher(config)
    app = create_app(dispatcher, settings, key_store=store)
    if workers:  # as serve --workers N sets it up in each worker
        app[WORKER_STATS] = WorkerStats(tmp, dispatcher.stats_collector)
    ui = _ui_of(app)
    if runner is not None:
        ui[RUNNER] = runner
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))  # 127.0.0.1 cookies
    await client.start_server()
    return Gateway(client, ui, baseline, tmp / "proposal.yaml", config.ledger_url or "")


async def _recorded(
    tmp: Path, a: FakeOpenAI, b: FakeOpenAI, runner: ReplayRunner | None
) -> Gateway:
    a.default = Reply(text="a fairly long answer " * 5, delay_s=0.02)
    b.default = Reply(text="short", delay_s=0.005)
    baseline = tmp / "gateway.yaml"
    # weighted: both deployments get traffic, so the replay has a record of each
    baseline.write_text(config_yaml(a, b, tmp / "ledger.db", "weighted"))
    # A rule no request matches, named to be shown: the report lists it as never matched.
    never = (
        f"routing_rules:\n  - {{name: '{XSS}', vendor: a, condition: {{model_pattern: none-*}}}}"
    )
    (tmp / "proposal.yaml").write_text(f"{never}\n{config_yaml(a, b, tmp / 'ledger.db', 'cost')}")
    gateway = await _gateway(tmp, baseline, runner)
    try:
        for n in range(REQUESTS):
            assert await chat(gateway.client, stream=n % 2 == 1) == 200
        ledger = gateway.client.app[GATEWAY].dispatcher.ledger
        assert ledger is not None
        await ledger.flush()  # what the replay reads is on disk
    except BaseException:
        await gateway.client.close()
        raise
    return gateway


async def chat(client: TestClient[Any, Any], *, stream: bool = False) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}
    reply = await client.post("/v1/chat/completions", json={**body, "stream": stream}, headers=AUTH)
    await reply.read()
    return reply.status


@pytest.fixture
async def recorded(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> AsyncIterator[Gateway]:
    gateway = await _recorded(tmp_path, fake_openai, fake_openai_b, None)
    yield gateway
    await gateway.client.close()


async def sign_in(client: TestClient[Any, Any], key: str = ADMIN) -> str:
    """Sign in; the Replay page's CSRF token."""
    signed = await client.post("/ui/login", data={"admin_key": key}, allow_redirects=False)
    assert signed.status == 303, await signed.text()
    page = await (await client.get("/ui/replay")).text()
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def form(csrf: str | None, config: str = "", **fields: str) -> aiohttp.FormData:
    """The Replay form as the browser sends it: multipart, with the file field."""
    data = aiohttp.FormData()
    if csrf is not None:
        data.add_field("csrf", csrf)
    data.add_field("config", config)
    for name, value in {"window": "7d", "sample": "1", "seed": "0", **fields}.items():
        data.add_field(name, value)
    return data


async def finished(client: TestClient[Any, Any]) -> None:
    """Poll the progress as the page does until it says the replay is over."""
    for _ in range(1200):
        status = await client.get("/ui/replay/status")
        if status.headers.get("HX-Refresh") == "true":
            return
        assert "Replaying" in await status.text()
        await asyncio.sleep(0.1)
    pytest.fail("the replay did not finish")


# --- access ------------------------------------------------------------------------------
async def test_the_page_needs_a_session_and_running_needs_the_csrf_token(
    recorded: Gateway,
) -> None:
    client = recorded.client
    for path in ("/ui/replay", "/ui/replay/status", "/ui/replay/report.json"):
        reply = await client.get(path, allow_redirects=False)
        assert (reply.status, reply.headers["Location"]) == (303, "/ui/login"), path
    csrf = await sign_in(client)
    page = await (await client.get("/ui/replay")).text()
    assert '<a href="/ui/replay" aria-current="page">Replay</a>' in page
    assert "this gateway's running config" in page
    assert 'enctype="multipart/form-data"' in page
    proposal = recorded.proposal.read_text()
    for data in (form(None, proposal), form("0" * 64, proposal)):
        refused = await client.post("/ui/replay", data=data)
        assert refused.status == 403
        assert "CSRF" in await refused.text()
    header_only = await client.post(
        "/ui/replay", data=form(None, "nope: 1"), headers={"X-CSRF-Token": csrf}
    )
    assert header_only.status == 400  # htmx's header is accepted too (then the config is bad)
    assert (await client.get("/ui/replay/report.html")).status == 404  # nothing run yet


async def test_a_viewer_sees_the_last_result_but_cannot_run_or_cancel(recorded: Gateway) -> None:
    client = recorded.client
    csrf = await sign_in(client)
    made = await client.post("/ui/keys", data={"name": "watcher", "role": "viewer", "csrf": csrf})
    viewer_key = re.search(r'value="(sk-llmd-[A-Za-z0-9]+)"', await made.text())
    assert viewer_key is not None
    ran = await client.post("/ui/replay", data=form(csrf, recorded.proposal.read_text()))
    assert ran.status == 200  # the page, after the redirect
    await finished(client)
    client.session.cookie_jar.clear()
    viewer_csrf = await sign_in(client, viewer_key.group(1))
    page = await (await client.get("/ui/replay")).text()
    assert 'id="replay-form"' not in page
    assert "needs the admin session" in page
    assert 'id="replay-summary"' in page
    assert (await client.get("/ui/replay/report.json")).status == 200
    for path in ("/ui/replay", "/ui/replay/cancel"):
        refused = await client.post(path, data=form(viewer_csrf, recorded.proposal.read_text()))
        assert refused.status == 403, path
        assert "viewer session cannot run replays" in await refused.text()


async def test_with_several_workers_the_page_says_where_a_replay_lives(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    baseline = tmp_path / "gateway.yaml"
    baseline.write_text(config_yaml(fake_openai, fake_openai, tmp_path / "ledger.db", "cost"))
    for workers in (False, True):
        gateway = await _gateway(tmp_path, baseline, workers=workers)
        try:
            await sign_in(gateway.client)
            page = await (await gateway.client.get("/ui/replay")).text()
            assert ("several worker processes" in page) is workers
        finally:
            await gateway.client.close()


# --- the form ----------------------------------------------------------------------------
async def test_a_bad_config_shows_the_loaders_error_beside_it_and_nothing_runs(
    recorded: Gateway,
) -> None:
    client = recorded.client
    csrf = await sign_in(client)
    bad = f"routing_rules:\n  - {{vendor: a, priority: high}}\nmodel_groups: []\n# {XSS}\n"
    with pytest.raises(ConfigError) as loader:
        Config.from_dict(yaml.safe_load(bad), "proposed config")
    cases = [
        (form(csrf, bad), "config-error", str(loader.value)),
        (form(csrf, "vendors: [unclosed"), "config-error", "proposed config: not valid YAML"),
        (form(csrf, ""), "config-error", "paste a config or choose a file"),
        (form(csrf, "{}", window="custom", since="soon"), "since-error", "since: a date like"),
        (form(csrf, "{}", window="custom", since="2999-01-01"), "since-error", "in the past"),
        (form(csrf, "{}", sample="0"), "sample-error", "sample: a share of the requests"),
        (form(csrf, "{}", seed="x"), "seed-error", "seed: a whole number"),
    ]
    for data, where, message in cases:
        reply = await client.post("/ui/replay", data=data)
        body = await reply.text()
        assert reply.status == 400, body
        shown = re.search(rf'id="{where}" role="alert">([^<]*)<', body)
        assert shown is not None, (where, body)
        assert str(escape(message)) in shown.group(1)
        assert XSS not in body  # the config shown back in its field is text
    assert "Last replay" not in await (await client.get("/ui/replay")).text()
    assert recorded.ui[RUNNER].last is None  # nothing ran


async def test_an_uploaded_file_is_checked_under_its_name(recorded: Gateway) -> None:
    client = recorded.client
    csrf = await sign_in(client)
    data = form(csrf)
    data.add_field("config_file", b"timeout: soon\n", filename="proposal.yaml")
    reply = await client.post("/ui/replay", data=data)
    assert reply.status == 400
    assert "proposal.yaml: timeout: expected a number" in await reply.text()


def test_the_form_never_reads_the_gateways_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAYUI_SECRET", "hunter2")
    text = (
        "model_groups:\n"
        "  - {name: '${REPLAYUI_SECRET}', deployments: [{vendor: a, model: m}]}\n"
        "  - {name: '${REPLAYUI_UNSET:-fallback}', deployments: [{vendor: a, model: m}]}\n"
        "vendors: {a: {type: openai, api_key: '${REPLAYUI_SECRET}'}}\n"
    )
    checked = check(Fields(config=text), now=2e9)
    assert checked.errors == {}
    assert checked.proposal is not None
    names = [g.name for g in checked.proposal.config.model_groups]
    assert names == ["env:REPLAYUI_SECRET", "fallback"]
    assert "hunter2" not in repr(checked.proposal.config.vendors[0].options)


def test_a_custom_window_starts_at_its_moment_in_utc() -> None:
    checked = check(Fields(config="{}", window="custom", since="2026-12-01T08:00"), now=2e9)
    assert checked.proposal is not None
    assert checked.proposal.start == 1_796_112_000.0  # 2026-12-01T08:00Z
    assert checked.proposal.label == "since 2026-12-01 08:00 UTC"
    named = check(Fields(config="{}", window="30d", sample="0.25", seed="-3"), now=2e9)
    assert named.proposal is not None
    assert (named.proposal.start, named.proposal.label) == (2e9 - 30 * 86_400, "last 30d")
    assert (named.proposal.sample, named.proposal.seed) == (0.25, -3)
    assert check(Fields(config="{}", window="1y"), now=2e9).errors == {
        "since": "window: one of 1h, 24h, 7d, 30d, custom"
    }


async def test_without_a_ledger_there_is_nothing_to_replay(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    baseline = tmp_path / "gateway.yaml"
    own = config_yaml(fake_openai, fake_openai, tmp_path / "ledger.db", "cost")
    baseline.write_text(own.replace(f"ledger_url: 'sqlite:///{tmp_path / 'ledger.db'}'", ""))
    gateway = await _gateway(tmp_path, baseline)
    try:
        csrf = await sign_in(gateway.client)
        page = await (await gateway.client.get("/ui/replay")).text()
        assert "Recording is off" in page
        assert 'id="replay-form"' not in page
        refused = await gateway.client.post("/ui/replay", data=form(csrf, own))
        assert refused.status == 409
        assert "no traffic to replay" in await refused.text()
    finally:
        await gateway.client.close()


def test_a_yaml_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]"
              for i in range(6)]  # fmt: skip
    checked = check(Fields(config="\n".join(lines)), now=2e9)
    assert "more than 100,000 values" in checked.errors["config"]


# --- running -----------------------------------------------------------------------------
async def test_a_replay_equals_the_cli_report_for_the_same_ledger_configs_and_seed(
    recorded: Gateway,
) -> None:
    client = recorded.client
    csrf = await sign_in(client)
    data = form(csrf, seed="5", sample="0.5")
    data.add_field("config_file", recorded.proposal.read_bytes(), filename="proposal.yaml")
    started = await client.post("/ui/replay", data=data, allow_redirects=False)
    assert (started.status, started.headers["Location"]) == (303, "/ui/replay")
    await finished(client)
    shown = await (await client.get("/ui/replay/report.json")).json()
    cli = await asyncio.to_thread(
        run_cli, "replay", "--config", recorded.proposal, "--baseline", recorded.baseline,
        "--ledger", recorded.ledger, "--since", "7d", "--seed", "5", "--sample", "0.5", "--json",
        timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    assert shown == expected
    replayed = shown["proposal"]["requests"]
    assert 0 < replayed < REQUESTS  # a sample of them
    assert shown["proposal"]["vendors"] == {"b": replayed}  # the cost strategy moved them all
    assert shown["baseline"]["vendors"].keys() == {"a", "b"}

    page = await (await client.get("/ui/replay")).text()
    for side in ("baseline", "proposal"):
        numbers = expected[side]
        for measure, value in (
            ("cost_usd", usd(numbers["cost_usd"])),
            ("latency_s.p95", ms(numbers["latency_s"]["p95"])),
            ("ttft_s.p99", ms(numbers["ttft_s"]["p99"])),
            ("error_rate", pct(numbers["error_rate"])),
            ("requests", f"{numbers['requests']:,}"),
        ):
            cell = re.search(
                rf'data-measure="{re.escape(measure)}">.*?data-side="{side}">([^<]*)<', page, re.S
            )
            assert cell is not None, (side, measure)
            assert cell.group(1) == value, (side, measure)
    series = re.search(r'id="charts" data-series="([^"]+)"', page)
    assert series is not None
    chart = json.loads(html.unescape(series.group(1)))
    assert sum(v or 0 for v in chart["cost_proposal"]) == pytest.approx(
        expected["proposal"]["cost_usd"]
    )
    assert 'data-chart="replay_latency"' in page
    assert '<details class="card" id="try">' in page  # folded: the result comes first
    assert "<script>" not in page
    assert expected["proposal"]["rules_never_matched"] == [XSS]
    assert XSS not in page  # a name from the config is text on the page
    assert (
        f'data-never-matched="proposal">Rules of the proposal that never matched: {escape(XSS)}<'
        in page
    )

    download = await client.get("/ui/replay/report.html")
    assert download.headers["Content-Disposition"].startswith('attachment; filename="replay-')
    assert await download.text() == report_page(expected)


async def test_a_refused_replay_says_why(recorded: Gateway) -> None:
    client = recorded.client
    csrf = await sign_in(client)
    # priority: a first, on a model it never served
    unseen = (
        recorded.proposal.read_text()
        .replace("model: gpt-4o,", "model: gpt-4.1,")
        .replace("strategy: cost", "strategy: priority")
    )
    await client.post("/ui/replay", data=form(csrf, unseen))
    await finished(client)
    page = await (await client.get("/ui/replay")).text()
    error = re.search(r'id="replay-error">([^<]*)<', page)
    assert error is not None
    assert "never saw" in error.group(1)
    assert "a/gpt-4.1" in error.group(1)
    assert '<details class="card" id="try" open>' in page  # the form stays open to fix it


async def test_one_replay_at_a_time_the_gateway_serves_meanwhile_and_cancel_stops_it(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    pid_file = tmp_path / "child.pid"
    runner = ReplayRunner(command=(sys.executable, "-c", WAITING, str(pid_file)))
    gateway = await _recorded(tmp_path, fake_openai, fake_openai_b, runner)
    client = gateway.client
    try:
        csrf = await sign_in(client)
        proposal = gateway.proposal.read_text()
        first = await client.post("/ui/replay", data=form(csrf, proposal), allow_redirects=False)
        assert first.status == 303
        second = await client.post("/ui/replay", data=form(csrf, proposal))
        assert second.status == 409
        assert "a replay is running" in await second.text()
        status = await (await client.get("/ui/replay/status")).text()
        assert 'hx-trigger="every 1s"' in status
        assert "Cancel" in status
        pid = await _pid(pid_file)
        assert await chat(client) == 200
        cancelled = await client.post("/ui/replay/cancel", data={"csrf": csrf})
        assert cancelled.status == 200
        assert 'id="replay-cancelled"' in await cancelled.text()
        assert not _alive(pid)
        again = await client.post("/ui/replay", data=form(csrf, proposal), allow_redirects=False)
        assert again.status == 303  # free again
        pid_file.unlink()
        pid = await _pid(pid_file)
    finally:
        await client.close()
    assert not _alive(pid)  # the gateway stopping stops its replay


async def test_a_crashed_replay_process_is_reported_not_hidden(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI, caplog: Any
) -> None:
    crash = "import sys; sys.stdin.buffer.read(); sys.exit('boom: the worker broke')"
    runner = ReplayRunner(command=(sys.executable, "-c", crash))
    gateway = await _recorded(tmp_path, fake_openai, fake_openai_b, runner)
    try:
        csrf = await sign_in(gateway.client)
        await gateway.client.post("/ui/replay", data=form(csrf, gateway.proposal.read_text()))
        await finished(gateway.client)
        page = await (await gateway.client.get("/ui/replay")).text()
        assert "the replay failed: see the gateway&#39;s log" in page
        assert "boom: the worker broke" not in page
        assert "boom: the worker broke" in caplog.text
    finally:
        await gateway.client.close()


async def _pid(path: Path) -> int:
    for _ in range(600):  # the stand-in child writes it once it has read its input
        written = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        if written:
            return int(written)
        await asyncio.sleep(0.05)
    pytest.fail("the replay process did not start")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
