"""Which proxy a URL takes: the option, the environment's variables and NO_PROXY's rules."""

import pytest

from llmdispatcher.errors import ConfigError
from llmdispatcher.vendors.http_options import FROM_ENV
from llmdispatcher.vendors.proxy import Proxy, bypassed, choose, environment

ENV = {"https_proxy": "http://u:p%40ss@proxy.corp:3128", "http_proxy": "proxy.corp:8080"}


def test_the_scheme_picks_the_variable_and_userinfo_becomes_basic_auth() -> None:
    secure = choose(FROM_ENV, ENV, "https", "api.openai.com", 443)
    assert secure == Proxy("proxy.corp", 3128, "Basic dTpwQHNz")  # u:p@ss
    assert "p@ss" not in repr(secure) + str(secure)
    assert choose(FROM_ENV, ENV, "http", "models.corp", 80) == Proxy("proxy.corp", 8080)
    assert choose(FROM_ENV, {"http_proxy": "proxy:1"}, "https", "h", 443) is None


def test_the_option_wins_over_the_environment_and_none_goes_direct() -> None:
    assert choose("http://other:9", ENV, "https", "h", 443) == Proxy("other", 9)
    assert choose(None, ENV, "https", "h", 443) is None


def test_lower_case_variables_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    monkeypatch.setenv("NO_PROXY", "a.example")
    monkeypatch.delenv("no_proxy", raising=False)
    found = environment()
    assert (found["https_proxy"], found["no_proxy"]) == ("http://lower:2", "a.example")


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "skip"),
    [
        ("api.example.com", 443, "example.com", True),
        ("api.example.com", 443, ".example.com", True),
        ("api.example.com", 443, "*.example.com", True),
        ("badexample.com", 443, "example.com", False),
        ("example.com", 443, "example.com:8443", False),
        ("example.com", 8443, "example.com:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "[::1]:80", True),
        ("anything", 1, " *", True),
        ("host", 1, "", False),
        ("Host.Example.COM", 1, "example.com", True),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, skip: bool) -> None:
    assert bypassed(host, port, no_proxy) is skip


@pytest.mark.parametrize("url", ["https://proxy:443", "socks5://proxy:1080", "http://proxy:x"])
def test_proxies_we_cannot_speak_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="proxy"):
        choose(url, {}, "https", "h", 443)


@pytest.mark.parametrize("host", ["localhost", "api.localhost", "127.0.0.1", "127.1.2.3", "::1"])
def test_the_environments_proxy_skips_loopback_but_the_option_does_not(host: str) -> None:
    assert choose(FROM_ENV, ENV, "https", host, 443) is None
    assert choose("http://proxy.corp:1", ENV, "https", host, 443) == Proxy("proxy.corp", 1)
