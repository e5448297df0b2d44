"""``llmdispatcher keys``: stored gateway keys, on the configured key store.

The store is the config file's ``gateway.key_store_url``, else its ``ledger_url``, else the data
directory's database (``home``): the same one ``serve`` reads, so a key made here works on a
running gateway within ``gateway.key_refresh_s``. ``create`` prints the key on stdout, alone
on its line, once: only its SHA-256 is kept.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .main import EXIT_USAGE, CliError, config_option, state
from .output import echo, render_table

if TYPE_CHECKING:
    from ..keys import KeyStore, StoredKey

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def store_url() -> str:
    from ..home import key_store_url

    path = state().config_path
    if path is None:
        return key_store_url(None, None)
    from ..config import Config

    config = Config.from_file(path)
    return key_store_url(config.gateway.key_store_url, config.ledger_url)


def run(work: Callable[[KeyStore], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` on the key store; its refusals are one-line usage errors."""
    from ..keys import KeyStoreError, open_key_store

    async def main() -> T:
        store = open_key_store(store_url())
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except KeyStoreError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (a container without /etc/passwd)
        return "cli"


def fields(
    team: str | None,
    models: str | None,
    rpm: str | None,
    tpm: str | None,
    max_concurrency: str | None,
    budget: str | None,
    expires: str | None,
    metadata: str | None,
) -> dict[str, Any]:
    """The options given, as the store's fields (``none`` clears one on update)."""
    out: dict[str, Any] = {}
    if team is not None:
        out["team"] = _none(team)
    if models is not None:
        out["models"] = models
    for name, value in (("rpm", rpm), ("tpm", tpm), ("max_concurrency", max_concurrency)):
        if value is not None:
            out[name] = None if _none(value) is None else _int(name, value)
    if budget is not None:
        out.update(_budget(budget))
    if expires is not None:
        out["expires_in"] = None if expires.strip().lower() in ("none", "never") else expires
    if metadata is not None:
        try:
            out["metadata"] = json.loads(metadata)
        except ValueError:
            raise CliError("--metadata: give a JSON object, like '{\"owner\": \"alice\"}'",
                           EXIT_USAGE) from None  # fmt: skip
    return out


def _none(value: str) -> str | None:
    return None if value.strip().lower() == "none" else value


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CliError(f"--{name.replace('_', '-')}: a whole number, or none", EXIT_USAGE) from None


def _budget(text: str) -> dict[str, Any]:
    """``50/month``, ``5/day``, ``100/total``, ``50`` (a month), ``none``."""
    if _none(text) is None:
        return {"budget_usd": None}
    amount, _, period = text.strip().lstrip("$").partition("/")
    return {"budget_usd": amount, "budget_period": period or "month"}


def limit_options(func: F) -> F:
    options = [
        click.option("--team", help="The key's team (its budget, if it has one, is shared)."),
        click.option("--models", help="Model patterns the key may use: 'gpt-4o*,claude-*'."),
        click.option("--rpm", help="Requests per minute."),
        click.option("--tpm", help="Tokens per minute."),
        click.option("--max-concurrency", help="Requests in flight at once."),
        click.option("--budget", help="Spend limit in USD: 50/month, 5/day or 100/total."),
        click.option("--expires", help="Lifetime: 30d, 12h, 15m (none: never)."),
        click.option("--metadata", help="A small JSON object kept with the key."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        config_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def show_key(key: StoredKey, as_json: bool) -> None:
    public = key.public()
    if as_json:
        echo(json.dumps(public, indent=2))
        return
    width = max(len(name) for name in public)
    for name, value in public.items():
        shown = "-" if value in (None, {}, []) else value
        if isinstance(shown, list):
            shown = ", ".join(shown)
        elif isinstance(shown, dict):
            shown = json.dumps(shown)
        echo(f"{name.ljust(width)}  {shown}")


@click.group("keys")
def keys() -> None:
    """Gateway keys with their own models, limits and budgets, managed at run time.

    \b
    Examples:
      llmdispatcher keys create billing --team payments --budget 50/month --rpm 60
      llmdispatcher keys create ops --role viewer
      llmdispatcher keys list --team payments
      llmdispatcher keys update key_abc123 --models 'gpt-4o*' --expires 30d
      llmdispatcher keys revoke key_abc123
    """


@keys.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["client", "viewer"]),
    default="client",
    show_default=True,
    help="viewer: the key also signs in to the read-only dashboard (/ui/).",
)
@limit_options
def create(name: str, role: str, as_json: bool, **options: str | None) -> None:
    """Create a key; prints it once (only its hash is kept)."""
    given = {"name": name, "role": role, **fields(**options)}
    key, plaintext = run(lambda store: store.create(given, actor=actor()))
    if as_json:
        echo(json.dumps({**key.public(), "key": plaintext}, indent=2))
        return
    echo(plaintext)
    echo(f"created {key.id} ({key.name}); the key above is not shown again", err=True)


@keys.command("list")
@click.option("--team", help="Only this team's keys.")
@click.option("--revoked/--active", default=None, help="Only revoked, or only active, keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def list_keys(team: str | None, revoked: bool | None, as_json: bool) -> None:
    """The stored keys (never their secrets)."""
    found = run(lambda store: store.list_keys(team=team, revoked=revoked))
    if as_json:
        echo(json.dumps([k.public() for k in found], indent=2))
        return
    headers = ["ID", "NAME", "TEAM", "PREFIX", "MODELS", "BUDGET", "EXPIRES", "STATUS"]
    rows = [_row(k) for k in found]
    for line in render_table(headers, rows):
        echo(line)


def _row(key: StoredKey) -> list[str]:
    public = key.public()
    budget = "-" if key.budget_usd is None else f"${key.budget_usd}/{key.budget_period}"
    status = "revoked" if key.revoked_at is not None else "active"
    return [key.id, key.name, key.team or "-", key.prefix, ",".join(key.models), budget,
            public["expires_at"] or "never", status]  # fmt: skip


@keys.command("show")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def show(key_id: str, as_json: bool) -> None:
    """One key's fields."""
    show_key(run(lambda store: store.get(key_id)), as_json)


@keys.command("update")
@click.argument("key_id")
@limit_options
def update(key_id: str, as_json: bool, **options: str | None) -> None:
    """Change a key's team, models, limits, budget, expiry or metadata (none clears one)."""
    changes = fields(**options)
    if not changes:
        raise CliError("nothing to change: give --rpm, --budget, --models, ...", EXIT_USAGE)
    show_key(run(lambda store: store.update(key_id, changes, actor=actor())), as_json)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def revoke(key_id: str, as_json: bool) -> None:
    """Revoke a key: gateways refuse it within a second. Idempotent."""
    show_key(run(lambda store: store.revoke(key_id, actor=actor())), as_json)


@keys.command("team")
@click.argument("name")
@click.option("--budget", required=True, help="The team's shared budget: 500/month (none: remove).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def team(name: str, budget: str, as_json: bool) -> None:
    """Set a team's budget, shared by all its keys (scope team:NAME)."""
    given = {"name": name, **_budget(budget)}
    found = run(lambda store: store.set_team_budget(given, actor=actor()))
    public = found.public() if found else {"name": name, "budget_usd": None}
    echo(json.dumps(public, indent=2) if as_json else f"team {name}: {_team_text(public)}")


def _team_text(public: dict[str, Any]) -> str:
    if public["budget_usd"] is None:
        return "no budget"
    return f"${public['budget_usd']}/{public['budget_period']}"


@keys.command("audit")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def audit(limit: int, as_json: bool) -> None:
    """The latest changes to keys and team budgets: who, what, when (never a secret)."""
    entries = [e.public() for e in run(lambda store: store.audit(limit))]
    if as_json:
        echo(json.dumps(entries, indent=2))
        return
    rows = [[e["at"] or "", e["actor"], e["action"], e["target"]] for e in entries]
    for line in render_table(["AT", "ACTOR", "ACTION", "TARGET"], rows):
        echo(line)
