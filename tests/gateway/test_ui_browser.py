"""The dashboard in a real browser: Debian's chromium driven by Playwright against
``llmdispatcher serve`` (a real process) with fake vendors and the built-in local model behind.

One gateway and one browser for the module; the tests run in file order, each on its own page,
and every page they visit is saved as a screenshot (``UI_SCREENSHOT_DIR`` when set, which is how
``docs/ui-*.png`` are refreshed; else a temporary directory). Every page also checks that the
browser logged no console error and asked no host but the gateway's ``127.0.0.1``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from llmdispatcher.local_models import smollm2_path
from tests.cli import run_cli
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Fail
from tests.gateway import GatewayProcess, call

IN_CI = bool(os.environ.get("CI"))  # CI installs both: a missing one fails there, never skips
if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
from playwright import sync_api as playwright  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not IN_CI:
    pytest.skip("no chromium: scripts/services.sh installs Debian's", allow_module_level=True)

ADMIN = "ui-test-admin-key-0123456789"
API_KEY = "ui-test-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
XSS = "<img src=x onerror=alert(1)>"
KEY = FAKE_OPENAI_KEY
PAGES = ("overview", "vendors", "requests", "keys", "playground", "replay", "config")


def _config(tmp: Path, main: FakeOpenAI, flaky: FakeOpenAI) -> Path:
    model = smollm2_path()
    local = (
        [f"  local: {{type: llamacpp, model_path: '{model}', aliases: [local]}}"] if model else []
    )
    config = tmp / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                f"ledger_url: 'sqlite:///{tmp / 'ledger.db'}'",
                "ledger_content: true",
                "retry_policy: {max_retries: 0}",
                "circuit_breaker: {failure_threshold: 2, cooldown_s: 600}",
                "routing_rules:",
                '  - {vendor: flaky, priority: 1, condition: {model_pattern: "flaky-*"}}',
                '  - {vendor: local, priority: 2, condition: {model_pattern: "local"}}'
                if model
                else "",
                "gateway:",
                f"  admin_key: {ADMIN}",
                f"  key_store_url: 'sqlite:///{tmp / 'keys.db'}'",
                "  auth_failures_per_minute: 100000",
                "  api_keys:",
                f"    - {{name: team-key, key: {API_KEY}}}",
                "vendors:",
                f"  openai: {{type: openai, base_url: '{main.url}/v1', api_key: {KEY}}}",
                f"  flaky: {{type: openai, base_url: '{flaky.url}/v1', api_key: {KEY}}}",
                *local,
            ]
        )
    )
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, FakeOpenAI]]:
    tmp = tmp_path_factory.mktemp("ui")
    with FakeOpenAI(api_key=FAKE_OPENAI_KEY) as main, FakeOpenAI(api_key=FAKE_OPENAI_KEY) as flaky:
        env = {"LLMDISPATCHER_HOME": str(tmp / "home")}
        server = GatewayProcess("--config", _config(tmp, main, flaky), env=env)
        try:
            yield server.wait_listening(), tmp, flaky
        finally:
            server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("UI_SCREENSHOT_DIR")
    return Path(given) if given else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield found
        finally:
            found.close()


class Watched:
    """A signed-in page that records console errors and every host it asked."""

    def __init__(
        self, browser: Any, url: str, shots: Path, *, width: int = 1280, scheme: str = "light"
    ) -> None:
        self.url, self.shots = url, shots
        size = {"width": width, "height": 800}
        self.context = browser.new_context(viewport=size, color_scheme=scheme)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.hosts.add(urlsplit(r.url).hostname or r.url))

    def sign_in(self, key: str = ADMIN) -> Any:
        page = self.page
        page.goto(f"{self.url}/ui/")
        page.get_by_label("Admin key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.url}/ui/")
        return page

    def go(self, name: str) -> Any:
        self.page.get_by_role("link", name=name, exact=True).click()
        self.page.wait_for_load_state("load")
        return self.page

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"ui-{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.hosts <= {"127.0.0.1"}, f"requests left the gateway: {self.hosts}"


@pytest.fixture
def watched(browser: Any, gateway: tuple[str, Path, FakeOpenAI], shots: Path) -> Iterator[Watched]:
    found = Watched(browser, gateway[0], shots)
    yield found
    found.close()


def chat(url: str, model: str, content: str, headers: dict[str, str] = AUTH) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return call("POST", f"{url}/v1/chat/completions", body, headers).status


# --- the tests, in order ---------------------------------------------------------------------
def test_sign_in_is_required_and_a_wrong_key_is_refused(watched: Watched) -> None:
    page = watched.page
    page.goto(f"{watched.url}/ui/vendors")
    assert page.url.endswith("/ui/login")
    watched.shot("login")
    page.get_by_label("Admin key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    assert "not the admin key" in page.get_by_role("alert").inner_text()
    watched.errors.clear()  # the browser logs the 401 itself
    watched.sign_in()
    assert page.get_by_role("heading", name="Overview").is_visible()


def test_overview_numbers_equal_the_stats_api_and_a_chart_has_points(
    watched: Watched, gateway: tuple[str, Path, FakeOpenAI]
) -> None:
    url, tmp, _ = gateway
    assert [chat(url, "gpt-4o-mini", f"hello {i}") for i in range(5)] == [200] * 5
    assert chat(url, "gpt-4o-mini", XSS) == 200
    page = watched.sign_in()
    live = call("GET", f"{url}/api/v1/stats", headers=AUTH).json()
    for name in ("total_requests", "successful_requests", "failed_requests", "retries"):
        shown = page.locator(f'#live [data-stat="{name}"]').inner_text()
        assert int(shown.replace(",", "")) == live[name], name
    db = f"sqlite:///{tmp / 'ledger.db'}"
    ledger = run_cli("stats", "--json", "--since", "1h", "--ledger", db)
    totals = json.loads(ledger.stdout)["totals"]
    assert int(page.locator('#window [data-stat="requests"]').inner_text()) == totals["requests"]
    chart = page.locator('[data-chart="rps"]')
    chart.locator("canvas").wait_for()
    assert int(chart.get_attribute("data-points") or 0) >= 1
    watched.shot("overview")


def test_a_broken_vendor_shows_its_breaker_open(
    watched: Watched, gateway: tuple[str, Path, FakeOpenAI]
) -> None:
    url, _, flaky = gateway
    flaky.enqueue(Fail("server"), Fail("server"))
    assert all(chat(url, "flaky-model", "hi") >= 500 for _ in range(2))
    watched.sign_in()
    page = watched.go("Vendors")
    assert page.locator('[data-vendor="flaky"] [data-breaker]').get_attribute("data-breaker") == (
        "open"
    )
    assert page.locator('[data-vendor="openai"] [data-breaker]').get_attribute("data-breaker") == (
        "closed"
    )
    page.locator('[data-vendor="openai"]').get_by_role("button", name="Test").click()
    result = page.locator('[data-vendor="openai"] [data-test-result]')
    result.wait_for()
    assert result.get_attribute("data-test-result") == "ok"
    watched.shot("vendors")


def test_requests_lists_them_and_a_detail_shows_the_routing_decision(watched: Watched) -> None:
    watched.sign_in()
    page = watched.go("Requests")
    rows = page.locator("#requests tbody tr[data-request-id]")
    assert rows.count() >= 8
    watched.shot("requests")
    page.locator("#requests").get_by_role("link").first.click()
    page.locator("#routing").wait_for()
    assert page.locator('[data-routing="strategy"]').inner_text()
    assert page.locator("#routing [data-candidate]").count() >= 1
    assert page.locator("#attempts tbody tr").count() >= 1
    watched.shot("request")


def test_a_hostile_prompt_shows_as_text(watched: Watched) -> None:
    watched.sign_in()
    page = watched.go("Requests")
    page.get_by_label("Model").fill("gpt-4o-mini")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state("load")
    links = page.locator("#requests tbody tr[data-request-id] a")
    for i in range(links.count()):
        page.locator("#requests tbody tr[data-request-id] a").nth(i).click()
        page.wait_for_load_state("load")
        if XSS in page.locator("#content").inner_text():
            break
        page.go_back()
    else:
        pytest.fail("the hostile prompt's request is not listed")
    assert page.locator("#content img").count() == 0  # text, not an element
    assert page.locator("#content pre", has_text=XSS).count() == 1


def test_a_key_made_on_the_keys_page_works_until_revoked(
    watched: Watched, gateway: tuple[str, Path, FakeOpenAI]
) -> None:
    url = gateway[0]
    watched.sign_in()
    page = watched.go("Keys")
    page.get_by_text("Create key").first.click()
    page.get_by_label("Name").fill("browser-made")
    page.get_by_label("Requests/min").fill("100")
    page.get_by_role("button", name="Create key").click()
    page.locator("#created").wait_for()
    key = page.locator("#new-key").input_value()
    assert key.startswith("sk-llmd-")
    assert chat(url, "gpt-4o-mini", "hi", {"Authorization": f"Bearer {key}"}) == 200
    watched.shot("keys")
    page.goto(f"{url}/ui/keys")
    assert key not in page.content()  # shown once, never again
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator('[data-key="browser-made"]')
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state("load")
    assert page.locator('[data-key="browser-made"]').inner_text().count("revoked") == 1
    assert chat(url, "gpt-4o-mini", "hi", {"Authorization": f"Bearer {key}"}) == 401


def test_the_playground_streams_from_the_local_model(watched: Watched) -> None:
    if smollm2_path() is None and not IN_CI:
        pytest.skip("the built-in local model is not installed (make setup installs it)")
    watched.sign_in()
    page = watched.go("Playground")
    page.get_by_label("Model or group").fill("local")
    page.get_by_label("Prompt").fill("Say hello in three words.")
    page.get_by_label("Max tokens").fill("24")
    page.get_by_role("button", name="Send").click()
    page.locator('#answer[data-done="true"]').wait_for(timeout=120_000)
    assert page.locator("#answer").inner_text().strip()
    assert page.locator('[data-fact="vendor"]').inner_text() == "local"
    assert "local" in page.locator('[data-fact="candidates"]').inner_text()
    watched.shot("playground")


def test_config_masks_secrets(watched: Watched) -> None:
    watched.sign_in()
    page = watched.go("Config")
    text = page.locator("#config").inner_text()
    assert FAKE_OPENAI_KEY not in text
    assert API_KEY not in text
    assert ADMIN not in text
    assert "••••••" in text
    watched.shot("config")


def test_a_config_replayed_on_the_replay_page_shows_its_report_and_charts(
    watched: Watched, gateway: tuple[str, Path, FakeOpenAI]
) -> None:
    """The gateway's own config with gpt-4o-mini limited to 2 requests a minute: replayed on
    the traffic the tests above sent, the report beside the running config's, with charts."""
    url, tmp, _ = gateway
    assert [chat(url, "gpt-4o-mini", f"more {i}") for i in range(12)] == [200] * 12
    limited = "  - {name: gpt-4o-mini, deployments: [{vendor: openai, model: gpt-4o-mini, rpm: 2}]}"
    proposal = f"model_groups:\n{limited}\n" + (tmp / "gateway.yaml").read_text()
    watched.sign_in()
    page = watched.go("Replay")
    assert "this gateway's running config" in page.locator("main").inner_text()
    page.get_by_label("Proposed config (YAML, as the gateway's config file)").fill(proposal)
    page.get_by_label("Seed").fill("3")
    page.get_by_role("button", name="Run replay").click()
    page.locator("#replay-summary").wait_for(timeout=120_000)  # polled, then reloaded
    cost = page.locator('[data-measure="cost_usd"] [data-side="proposal"]').inner_text()
    assert cost.startswith("$")
    assert "seed 3" in page.locator("#replay-result h2").inner_text()
    for name in ("replay_cost", "replay_latency"):
        chart = page.locator(f'[data-chart="{name}"]')
        chart.locator("canvas").wait_for()
        assert int(chart.get_attribute("data-points") or 0) >= 1, name
    assert page.locator("#replay-vendors [data-name=openai]").count() == 1
    succeeded = page.locator('[data-measure="ok"] td').all_inner_texts()
    assert int(succeeded[2]) < int(succeeded[1])  # the limit refused some
    watched.shot("replay")


def test_every_page_at_phone_width(
    browser: Any, gateway: tuple[str, Path, FakeOpenAI], shots: Path
) -> None:
    phone = Watched(browser, gateway[0], shots, width=390)
    try:
        phone.sign_in()
        for name in ("Vendors", "Requests", "Keys", "Playground", "Replay", "Config", "Overview"):
            page = phone.go(name)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390 + 1, f"{name} scrolls sideways at phone width ({width}px)"
        phone.shot("phone-overview")
    finally:
        phone.close()


def test_dark_mode_follows_the_system(
    browser: Any, gateway: tuple[str, Path, FakeOpenAI], shots: Path
) -> None:
    dark = Watched(browser, gateway[0], shots, scheme="dark")
    try:
        page = dark.sign_in()
        page.locator('[data-chart="rps"] canvas').wait_for()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 22)"
        dark.shot("overview-dark")
    finally:
        dark.close()
