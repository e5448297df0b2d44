"""The data directory and which ledger / key store a front end uses by default."""

from __future__ import annotations

from pathlib import Path

from llmdispatcher import home


def test_the_data_directory_follows_the_environment() -> None:
    assert home.data_dir({"LLMDISPATCHER_HOME": "/srv/llmd"}) == Path("/srv/llmd")
    assert home.data_dir({"XDG_DATA_HOME": "/xdg"}) == Path("/xdg/llmdispatcher")
    assert home.data_dir({}) == Path("~/.local/share/llmdispatcher").expanduser()
    assert home.database_url({"LLMDISPATCHER_HOME": "/srv/llmd"}) == (
        "sqlite:////srv/llmd/llmdispatcher.db"
    )


def test_ledger_url_defaults_to_the_data_directory_unless_turned_off() -> None:
    env = {"LLMDISPATCHER_HOME": "/d"}
    assert home.ledger_url(None, env) == "sqlite:////d/llmdispatcher.db"
    assert home.ledger_url("postgresql://db/x", env) == "postgresql://db/x"
    assert home.ledger_url("none", env) is None
    assert home.ledger_url("None", env) is None
    assert home.ledger_url("sqlite:///x.db", {**env, "LLMDISPATCHER_NO_LEDGER": "1"}) is None
    assert home.ledger_url(None, {**env, "LLMDISPATCHER_LEDGER": "sqlite:///l.db"}) == (
        "sqlite:///l.db"
    )


def test_key_store_url_falls_back_to_the_ledger_then_the_data_directory() -> None:
    env = {"LLMDISPATCHER_HOME": "/d"}
    assert home.key_store_url("sqlite:///k.db", "sqlite:///l.db", env) == "sqlite:///k.db"
    assert home.key_store_url(None, "postgresql://db/x", env) == "postgresql://db/x"
    assert home.key_store_url(None, "none", env) == "sqlite:////d/llmdispatcher.db"
    assert home.key_store_url(None, None, env) == "sqlite:////d/llmdispatcher.db"
