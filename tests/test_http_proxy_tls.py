"""The HTTP client through a real proxy (tinyproxy, started per test on 127.0.0.1 with a
generated config) and against TLS servers whose certificates a throwaway CA signed.

tinyproxy comes from Debian (``scripts/services.sh`` installs it). Without it these tests are
skipped on a workstation and fail in CI (``CI`` set), so they can never be skipped silently
there."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, Request
from llmdispatcher.errors import ConfigError, VendorConnectionError
from llmdispatcher.vendors.http import HttpClient, HttpOptions

from .certs import Authority, Leaf
from .fakes.fixtures import FAKE_OPENAI_KEY
from .fakes.openai_fake import FakeOpenAI
from .raw_server import Server, keep_answering, serve

USER, PASSWORD = "llmd", "s3cret-proxy-pw"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Tinyproxy:
    url: str  # http://127.0.0.1:port, no credentials
    log: Path

    def with_credentials(self, user: str = USER, password: str = PASSWORD) -> str:
        return self.url.replace("http://", f"http://{user}:{password}@")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_tinyproxy(folder: Path, *, auth: bool) -> Iterator[Tinyproxy]:
    binary = shutil.which("tinyproxy")
    if binary is None:
        reason = "tinyproxy is not installed (bash scripts/services.sh installs it)"
        if _ci():
            pytest.fail(f"CI requires tinyproxy: {reason}", pytrace=False)
        pytest.skip(reason)
    port = _free_port()
    log = folder / "tinyproxy.log"
    config = folder / "tinyproxy.conf"
    lines = [
        f"Port {port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 30", "MaxClients 20",
        "DisableViaHeader Yes", "LogLevel Info", f'LogFile "{log}"',
    ]  # fmt: skip
    if auth:
        lines.append(f"BasicAuth {USER} {PASSWORD}")
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tinyproxy did not start on 127.0.0.1:{port}", pytrace=False)
            time.sleep(0.05)
        yield Tinyproxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    yield from _start_tinyproxy(tmp_path, auth=False)


@pytest.fixture
def auth_proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    yield from _start_tinyproxy(tmp_path, auth=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("ca"))


def tls_server(leaf: Leaf) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert, leaf.key)
    return context


@asynccontextmanager
async def answering(context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    box: list[Server] = []
    async with serve(keep_answering(box), context) as server:
        box.append(server)
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means; none leak in from the machine."""
    for name in ("https_proxy", "http_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# --- proxies ----------------------------------------------------------------------------------
async def test_http_goes_through_the_proxy_in_absolute_form(proxy: Tinyproxy) -> None:
    async with answering() as server:
        client = HttpClient("v", HttpOptions(proxy=proxy.url))
        for _ in range(2):
            result = await client.request("POST", server.url, headers={}, body=b"{}")
            assert (result.status, result.body) == (200, b'{"ok":true}')
        await client.aclose()
    # tinyproxy closes after every answer, unannounced: each request took a new connection
    assert proxy.log_text().count(f"POST {server.url} HTTP/1.1") == 2
    assert len(server.requests) == 2


async def test_https_goes_through_a_connect_tunnel(proxy: Tinyproxy, ca: Authority) -> None:
    async with answering(tls_server(ca.leaf("ip", ip="127.0.0.1"))) as server:
        client = HttpClient("v", HttpOptions(proxy=proxy.url, ca_bundle=str(ca.cert)))
        async with client.stream("POST", server.url, headers={}, body=b"{}") as stream:
            assert b"".join([p async for p in stream.chunks()]) == b'{"ok":true}'
        assert (await client.request("GET", server.url, headers={})).status == 200
        await client.aclose()
    assert "CONNECT" in proxy.log_text()
    assert server.connections == 1  # the tunnel was reused for the second request


async def test_the_environments_proxy_is_not_used_for_loopback_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local model server is reached directly whatever HTTPS_PROXY/HTTP_PROXY say (the
    variables' parsing and NO_PROXY rules are in tests/unit/test_proxy.py)."""
    dead = f"http://127.0.0.1:{_free_port()}"  # a proxy that is not there
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("HTTPS_PROXY", dead)
    async with answering() as server:
        assert (await HttpClient("v").request("GET", server.url, headers={})).status == 200
        with pytest.raises(VendorConnectionError, match=r"through proxy 127\.0\.0\.1"):
            await HttpClient("v", HttpOptions(proxy=dead)).request("GET", server.url, headers={})


@pytest.mark.parametrize("https", [False, True])
async def test_proxy_credentials_from_the_url_are_sent_and_never_shown(
    auth_proxy: Tinyproxy, ca: Authority, https: bool
) -> None:
    context = tls_server(ca.leaf("ip", ip="127.0.0.1")) if https else None
    async with answering(context) as server:
        good = HttpClient(
            "v", HttpOptions(proxy=auth_proxy.with_credentials(), ca_bundle=str(ca.cert))
        )
        assert (await good.request("GET", server.url, headers={})).status == 200
        assert PASSWORD not in repr(good.options)
        wrong = HttpClient(
            "v",
            HttpOptions(
                proxy=auth_proxy.with_credentials(password="nope-x"), ca_bundle=str(ca.cert)
            ),
        )
        if https:  # the tunnel is refused: an error that names the fix, not the password
            with pytest.raises(VendorConnectionError, match=r"HTTP 40[17]") as caught:
                await wrong.request("GET", server.url, headers={})
            assert "nope-x" not in str(caught.value)
            assert "check the user and password" in str(caught.value)
        else:  # an answer from the proxy, for the vendor to turn into an error
            assert (await wrong.request("GET", server.url, headers={})).status in (401, 407)
    assert PASSWORD not in auth_proxy.log_text()


async def test_https_without_proxy_credentials_says_how_to_give_them(
    auth_proxy: Tinyproxy, ca: Authority
) -> None:
    async with answering(tls_server(ca.leaf("ip", ip="127.0.0.1"))) as server:
        client = HttpClient("v", HttpOptions(proxy=auth_proxy.url, ca_bundle=str(ca.cert)))
        with pytest.raises(VendorConnectionError, match=r"407\): give the proxy's user"):
            await client.request("GET", server.url, headers={})


async def test_a_proxy_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http://") as caught:
        await HttpClient("v", HttpOptions(proxy="socks5://u:pw-123@127.0.0.1:1080")).request(
            "GET", "http://127.0.0.1:9/x", headers={}
        )
    assert "pw-123" not in str(caught.value)


# --- TLS --------------------------------------------------------------------------------------
async def test_ssl_cert_file_names_the_ca_to_trust(
    ca: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
    async with answering(tls_server(ca.leaf("ip", ip="127.0.0.1"))) as server:
        assert (await HttpClient("v").request("GET", server.url, headers={})).status == 200


async def test_ca_bundle_is_trusted_instead_of_the_system_store(
    ca: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with answering(tls_server(ca.leaf("ip", ip="127.0.0.1"))) as server:
        with pytest.raises(VendorConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await HttpClient("v").request("GET", server.url, headers={})
        client = HttpClient("v", HttpOptions(ca_bundle=str(ca.cert)))
        assert (await client.request("GET", server.url, headers={})).status == 200


@pytest.mark.parametrize(
    ("leaf", "why"),
    [
        ({"dns": "vendor.example"}, "IP address mismatch"),
        ({"ip": "127.0.0.1", "expired": True}, "certificate has expired"),
    ],
)
async def test_a_wrong_name_or_an_expired_certificate_is_refused(
    ca: Authority, leaf: dict[str, object], why: str
) -> None:
    cert = ca.leaf(f"bad-{why[:4]}", **leaf)  # type: ignore[arg-type]
    async with answering(tls_server(cert)) as server:
        client = HttpClient("v", HttpOptions(ca_bundle=str(ca.cert)))
        with pytest.raises(VendorConnectionError, match=why):
            await client.request("GET", server.url, headers={})
        assert server.requests == []


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_bundle for vendor 'v'"):
        HttpClient("v", HttpOptions(ca_bundle=str(tmp_path / "absent.pem")))


async def test_a_vendor_from_a_config_file_takes_its_own_proxy(
    proxy: Tinyproxy, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """``proxy:`` beside a vendor's other settings folds into its ``Connection``; an explicit
    proxy applies even to a loopback vendor (only the environment's skips those)."""
    path = tmp_path / "proxied.yaml"
    path.write_text(
        "vendors:\n"
        f"  openai: {{type: openai, base_url: '{fake_openai.url}/v1', "
        f"api_key: '{FAKE_OPENAI_KEY}', proxy: '{proxy.url}', timeout: 20}}\n"
    )
    async with Dispatcher(Config.from_file(path)) as d:
        answer = await d.send(Request(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
    assert answer.vendor == "openai"
    assert f"POST {fake_openai.url}/v1/chat/completions HTTP/1.1" in proxy.log_text()
