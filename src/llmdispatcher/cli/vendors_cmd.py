"""``vendors``, ``test-vendor`` and ``models``: what is configured, whether it answers, what it
serves. Vendors are checked concurrently; each check has its own timeout."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from .main import (
    EXIT_FAILURE,
    config_option,
    load_dispatcher,
    require_vendor,
    run_closing,
    timeout_option,
)
from .output import Cell, echo, failure_kind, ok_word, progress, render_table, seconds, style

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from ..types import Request
    from ..vendors.base import Health, Vendor

# The model ``test-vendor`` asks when --model is not given and the vendor lists several.
TEST_MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "google": "gemini-2.0-flash",
}
PROBE = "Reply with the single word OK."


def vendor_type(dispatcher: Dispatcher, vendor: Vendor) -> str:
    """The registry type of a vendor (``openai``, ``ollama``...), else its class name."""
    from ..vendors import type_of

    for spec in dispatcher.config.vendors:
        if spec.name == vendor.name:
            return spec.type
    return type_of(vendor) or type(vendor).__name__


def breaker_state(dispatcher: Dispatcher, name: str) -> str | None:
    """The circuit breaker's state, once the dispatcher has breakers (None until then)."""
    getter = getattr(dispatcher, "breaker_state", None)
    return str(getter(name)) if callable(getter) else None


def chosen(dispatcher: Dispatcher, name: str | None) -> list[str]:
    if name is None:
        return list(dispatcher.vendors)
    require_vendor(dispatcher, name)
    return [name]


async def list_models(vendor: Vendor, wait_s: float) -> tuple[list[str] | None, str | None]:
    """(models, None), or (None, why the listing failed)."""
    from ..errors import DispatcherError

    try:
        async with asyncio.timeout(wait_s):
            return await vendor.list_models(), None
    except TimeoutError:
        return None, f"no answer within {wait_s:g}s"
    except DispatcherError as exc:
        return None, str(exc)


# --- vendors -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Status:
    name: str
    type: str
    healthy: bool
    latency_s: float
    detail: str
    breaker: str | None
    models: list[str] | None
    models_error: str | None


async def health(vendor: Vendor, wait_s: float) -> Health:
    from ..vendors.base import Health

    started = time.perf_counter()
    try:
        async with asyncio.timeout(wait_s):
            return await vendor.health()
    except TimeoutError:
        return Health(False, time.perf_counter() - started, f"no answer within {wait_s:g}s")


async def statuses(dispatcher: Dispatcher, wait_s: float) -> list[Status]:
    async def one(name: str) -> Status:
        vendor = dispatcher.vendors[name]
        checked, (models, error) = await asyncio.gather(
            health(vendor, wait_s), list_models(vendor, wait_s)
        )
        kind = vendor_type(dispatcher, vendor)
        state = breaker_state(dispatcher, name)
        return Status(
            name, kind, checked.ok, checked.latency_s, checked.detail, state, models, error
        )

    return list(await asyncio.gather(*(one(n) for n in dispatcher.vendors)))


def models_cell(status: Status) -> str:
    if status.models is None:
        return "-"
    if not status.models:
        return "not listed"
    shown = ", ".join(status.models[:3])
    return f"{len(status.models)}: {shown}{', ...' if len(status.models) > 3 else ''}"


def print_statuses(found: list[Status]) -> None:
    with_breaker = any(s.breaker is not None for s in found)
    headers = ["VENDOR", "TYPE", "HEALTH", "LATENCY", *(["BREAKER"] * with_breaker), "MODELS"]
    rows: list[list[str | Cell]] = []
    for s in found:
        state = [Cell(s.breaker or "-", "green" if s.breaker == "closed" else "yellow")]
        rows.append(
            [
                Cell(s.name, bold=True),
                s.type,
                Cell("ok" if s.healthy else "down", "green" if s.healthy else "red"),
                seconds(s.latency_s),
                *(state * with_breaker),
                models_cell(s),
            ]
        )
    for line in render_table(headers, rows):
        echo(line)
    for s in found:
        if not s.healthy:
            echo(f"{style(s.name, bold=True)}: {s.detail}")


@click.command("vendors")
@timeout_option(10.0)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@config_option
def vendors(wait_s: float, as_json: bool) -> None:
    """Show vendors: health, latency, breaker state, models.

    Every vendor is checked at once (a cheap listing call, no tokens spent). Exits 1 when a
    vendor is down.
    """
    dispatcher = load_dispatcher()
    progress(f"checking {len(dispatcher.vendors)} vendor(s)...")
    found = run_closing(dispatcher, statuses(dispatcher, wait_s))
    if as_json:
        echo(json.dumps([asdict(s) for s in found], indent=2))
    else:
        print_statuses(found)
    if not all(s.healthy for s in found):
        raise click.exceptions.Exit(EXIT_FAILURE)


# --- test-vendor ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    verdict: str
    model: str | None
    latency_s: float
    detail: str
    fix: str = ""


class NoModel(Exception):
    """The vendor lists no model and none was given."""


async def pick_model(vendor: Vendor, kind: str, given: str | None) -> str:
    if given:
        return given
    listed = await vendor.list_models()  # a bad key or a dead host fails here already
    preferred = TEST_MODELS.get(kind)
    if listed:
        return preferred if preferred in listed else listed[0]
    if preferred is None:
        raise NoModel
    return preferred


def probe(model: str) -> Request:
    from ..types import Request

    return Request(model=model, messages=[{"role": "user", "content": PROBE}], max_tokens=16)


async def check_vendor(
    dispatcher: Dispatcher, name: str, model: str | None, wait_s: float
) -> Check:
    """One tiny request straight to the vendor (no retries, no fallback), with a verdict."""
    from ..errors import DispatcherError

    vendor = dispatcher.vendors[name]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(wait_s):
            model = await pick_model(vendor, vendor_type(dispatcher, vendor), model)
            started = time.perf_counter()  # the verdict times the request, not the listing
            answer = await vendor.send(probe(model))
    except NoModel:
        fix = "pass --model NAME"
        return Check(name, False, "no model", None, 0.0, "the vendor lists no models", fix)
    except (DispatcherError, TimeoutError) as exc:
        verdict, fix = failure_kind(exc)
        detail = str(exc) or f"no answer within {wait_s:g}s"
        return Check(name, False, verdict, model, time.perf_counter() - started, detail, fix)
    reply = " ".join(answer.content.split())[:60]
    detail = f"replied {reply!r}" if reply else f"answered ({answer.finish_reason})"
    return Check(name, True, "ok", answer.model, time.perf_counter() - started, detail)


def print_check(check: Check, prefix: str, width: int) -> None:
    head = f"{prefix}{style(check.name.ljust(width), bold=True)}  "
    where = f"{check.model or '-'}, {seconds(check.latency_s)}"
    if check.ok:
        echo(f"{head}{ok_word(True)}  {check.detail} ({where})")
        return
    echo(f"{head}{ok_word(False)}  {style(check.verdict, 'red')} ({where})")
    indent = " " * (len(prefix) + 2)
    echo(f"{indent}cause: {check.detail}")
    if check.fix:
        echo(f"{indent}fix: {check.fix}")


async def run_checks(
    dispatcher: Dispatcher, names: list[str], model: str | None, wait_s: float, as_json: bool
) -> list[Check]:
    width = max(len(n) for n in names)
    tasks = [check_vendor(dispatcher, n, model, wait_s) for n in names]
    done: list[Check] = []
    for next_done in asyncio.as_completed(tasks):
        check = await next_done
        done.append(check)
        if not as_json:
            prefix = f"[{len(done)}/{len(names)}] " if len(names) > 1 else ""
            print_check(check, prefix, width)
    return done


@click.command("test-vendor")
@click.argument("name", required=False)
@click.option("-m", "--model", help="Model to ask. Default: a cheap one the vendor serves.")
@timeout_option(20.0)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@config_option
def test_vendor(name: str | None, model: str | None, wait_s: float, as_json: bool) -> None:
    """Check vendors live with a tiny request, and give a verdict.

    NAME checks one vendor; without it every configured vendor is checked at once, each
    result printed as it comes. Exits 1 when a vendor fails, with the cause (bad key,
    unreachable, model not found, ...) and the fix.
    """
    dispatcher = load_dispatcher()
    names = chosen(dispatcher, name)
    if len(names) > 1:
        progress(f"testing {len(names)} vendors...")
    done = run_closing(dispatcher, run_checks(dispatcher, names, model, wait_s, as_json))
    failed = [c for c in done if not c.ok]
    if as_json:
        echo(json.dumps([asdict(c) for c in done], indent=2))
    elif len(names) > 1:
        summary = f"{len(done) - len(failed)} of {len(done)} vendors ok"
        echo(style(summary, "red" if failed else "green", bold=True))
    if failed:
        raise click.exceptions.Exit(EXIT_FAILURE)


# --- models --------------------------------------------------------------------------------------
@click.command("models")
@click.argument("vendor", required=False)
@timeout_option(10.0)
@click.option(
    "--local",
    "local",
    is_flag=True,
    help="List the models this machine can run (Ollama, GGUF files, packages).",
)
@click.option("--json", "as_json", is_flag=True, help="Print {vendor: {models, error}} as JSON.")
@config_option
def models(vendor: str | None, wait_s: float, local: bool, as_json: bool) -> None:
    """List the models each vendor serves, and the model groups.

    VENDOR lists only that one. Vendors that cannot list their models say so. Exits 1 when a
    listing fails. --local lists what `chat --local --model NAME` can run, and where.
    """
    if local:
        show_local_models(as_json)
        return
    dispatcher = load_dispatcher()
    names = chosen(dispatcher, vendor)

    async def gather() -> list[tuple[list[str] | None, str | None]]:
        jobs = (list_models(dispatcher.vendors[n], wait_s) for n in names)
        return list(await asyncio.gather(*jobs))

    listed = dict(zip(names, run_closing(dispatcher, gather()), strict=True))
    groups = {g.name: [d.id for d in g.deployments] for g in dispatcher.config.model_groups}
    if as_json:
        data: dict[str, Any] = {n: {"models": m, "error": e} for n, (m, e) in listed.items()}
        echo(json.dumps({**data, "model_groups": groups} if groups else data, indent=2))
    else:
        print_models(listed)
        for name, deployments in groups.items():
            echo(f"{style(name, bold=True)} (model group): {', '.join(deployments)}")
    if any(error is not None for _, error in listed.values()):
        raise click.exceptions.Exit(EXIT_FAILURE)


def print_models(listed: dict[str, tuple[list[str] | None, str | None]]) -> None:
    for name, (found, error) in listed.items():
        if error is not None:
            echo(f"{style(name, bold=True)}: {style('cannot list models:', 'red')} {error}")
        elif not found:
            echo(f"{style(name, bold=True)}: this vendor does not list its models")
        else:
            echo(f"{style(name, bold=True)} ({len(found)} models)")
            for model in found:
                echo(f"  {model}")


def show_local_models(as_json: bool) -> None:
    """The local model registry: name, runtime and where the model comes from."""
    from ..local_models import list_local_models, runtime_available

    found = asyncio.run(list_local_models())
    if as_json:
        rows = [
            {
                "name": m.name,
                "runtime": m.runtime,
                "path": str(m.path) if m.path else None,
                "source": m.source,
            }
            for m in found
        ]
        echo(json.dumps(rows, indent=2))
        return
    if not found:
        echo(
            "no local models: pull one with Ollama, or put .gguf files in LLMDISPATCHER_MODEL_DIRS"
        )
        return
    runtime = "" if runtime_available() else " (needs: pip install 'llmdispatcher[local]')"
    for line in render_table(
        ["NAME", "RUNS WITH", "FROM"],
        [
            [
                Cell(m.name, bold=True),
                m.runtime + (runtime if m.runtime == "llamacpp" else ""),
                str(m.path) if m.path else m.source,
            ]
            for m in found
        ],
    ):
        echo(line)
