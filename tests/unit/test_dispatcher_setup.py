"""Building a dispatcher: registration, vendors from config, early configuration errors."""

from pathlib import Path

import pytest

from llmdispatcher import Config, Dispatcher, Message, Request
from llmdispatcher.errors import ConfigError, NoVendorsRegistered
from llmdispatcher.vendors import OpenAIVendor

HELLO = Request(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_a_plain_dispatcher_has_no_vendors() -> None:
    async with Dispatcher() as d:
        assert d.vendors == {}
        with pytest.raises(NoVendorsRegistered, match=r"register"):
            await d.send(HELLO)


def test_duplicate_names_are_refused() -> None:
    d = Dispatcher(vendors=[OpenAIVendor(api_key="k-1234")])
    with pytest.raises(ConfigError, match=r"already registered"):
        d.register(OpenAIVendor(api_key="k-5678"))


def test_missing_key_names_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    expected = r"OPENAI_API_KEY is not set: export it, or set api_key .*llmdispatcher.yaml"
    with pytest.raises(ConfigError, match=expected):
        OpenAIVendor()


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-1234")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1/")
    vendor = OpenAIVendor()
    assert vendor.base_url == "http://127.0.0.1:1234/v1"
    assert vendor.api_key.reveal() == "sk-env-key-1234"
    assert "sk-env-key-1234" not in repr(vendor) + repr(vendor.api_key)
    assert vendor.name == "openai"


def test_vendors_are_built_from_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "vendors:\n  main: {type: openai, api_key: k-1234, base_url: 'http://127.0.0.1:1/v1'}\n"
    )
    d = Dispatcher(Config.from_file(path))
    assert list(d.vendors) == ["main"]
    assert isinstance(d.vendors["main"], OpenAIVendor)
    assert d.vendors["main"].base_url == "http://127.0.0.1:1/v1"


async def test_unregistered_names_in_config_are_config_errors() -> None:
    d = Dispatcher(Config(fallback_vendors=("ghost",)), vendors=[OpenAIVendor(api_key="k-1234")])
    with pytest.raises(ConfigError, match=r"fallback_vendors names unregistered vendor.*ghost"):
        await d.send(HELLO)
    d = Dispatcher(Config(default_vendor="ghost"), vendors=[OpenAIVendor(api_key="k-1234")])
    with pytest.raises(ConfigError, match=r"'ghost' .*default_vendor"):
        d.plan(HELLO)


async def test_request_ids_are_unique_within_and_across_dispatchers() -> None:
    from llmdispatcher.observability.events import Event, RequestFinished
    from tests.unit.echo_vendor import EchoVendor

    seen: list[str] = []

    def record(event: Event) -> None:
        if isinstance(event, RequestFinished):
            seen.append(event.request_id)

    for _ in range(2):
        dispatcher = Dispatcher(vendors=[EchoVendor("echo")])
        dispatcher.subscribe(record)
        for _ in range(3):
            await dispatcher.send(Request(model="m", messages=[Message("user", "hi")]))
    assert len(set(seen)) == 6
    assert all(len(rid) == 16 and int(rid, 16) >= 0 for rid in seen)
