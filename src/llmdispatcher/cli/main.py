"""``llmdispatcher``: the command group, global options and the one error-handling wrapper.

Importing this module loads click and nothing heavy: subcommand modules load when their command
runs (or ``--help`` lists them), and they import the library's HTTP and vendor code only inside
their functions. Exit codes: 0 ok, 1 a vendor or request failed, 2 usage or configuration error,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .. import __version__
from .output import configure, echo, error_line, explain_failure

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# command name -> (module in llmdispatcher.cli, attribute). Listed in this order by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("chat", "chat"),
    "embed": ("embed_cmd", "embed"),
    "vendors": ("vendors_cmd", "vendors"),
    "test-vendor": ("vendors_cmd", "test_vendor"),
    "models": ("vendors_cmd", "models"),
    "route": ("route_cmd", "route"),
    "config": ("config_cmd", "config"),
    "stats": ("stats_cmd", "stats"),
    "replay": ("replay_cmd", "replay"),
    "serve": ("serve_cmd", "serve"),
    "keys": ("keys_cmd", "keys"),
}

NO_VENDORS = (
    "no vendor is configured: export a vendor's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, "
    "GEMINI_API_KEY, OLLAMA_HOST, ...) or pass --config FILE "
    "(`llmdispatcher config init` writes one)"
)


class CliError(Exception):
    """A failure reported as one ``error: ...`` line on stderr, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(slots=True)
class CliState:
    """Global options, shared by every command through the click context."""

    config_path: str | None = None
    debug: bool = False


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(CliState).config_path = value


def config_option(func: F) -> F:
    """``--config FILE`` on a subcommand (same as the global option, placed after it)."""
    return click.option(
        "--config",
        "-c",
        metavar="FILE",
        expose_value=False,
        callback=set_config,
        help="Config file (YAML or TOML). Default: $LLMDISPATCHER_CONFIG, else the environment.",
    )(func)


def timeout_option(default: float) -> Callable[[F], F]:
    return click.option(
        "--timeout",
        "wait_s",
        type=click.FloatRange(min=0.1),
        default=default,
        show_default=True,
        help="Seconds to wait for each vendor.",
    )


def load_dispatcher() -> Dispatcher:
    """The dispatcher the global options describe: the config file, else the environment.
    A dispatcher without vendors is a configuration error (exit 2)."""
    from ..config import Config
    from ..dispatcher import Dispatcher
    from ..errors import ConfigError
    from ..home import ledger_url

    st = state()
    config = Config.from_file(st.config_path) if st.config_path else Config()
    config = replace(config, ledger_url=ledger_url(config.ledger_url))
    if st.debug:
        config = replace(config, enable_logging=True)
    dispatcher = Dispatcher(config) if st.config_path else Dispatcher.from_env(config)
    if not dispatcher.vendors:
        if st.config_path:
            raise ConfigError(
                f"{st.config_path}: no vendors: add one under `vendors:` "
                "(`llmdispatcher config init` writes an example)"
            )
        raise ConfigError(NO_VENDORS)
    for notice in dispatcher.notices:
        click.echo(f"llmdispatcher: {notice}", err=True)
    return dispatcher


def require_vendor(dispatcher: Dispatcher, name: str) -> None:
    """Exit 2 naming the configured vendors when ``name`` is not one of them."""
    if name not in dispatcher.vendors:
        from ..errors import ConfigError

        known = ", ".join(dispatcher.vendors) or "none"
        raise ConfigError(
            f"unknown vendor {name!r}: the configured vendors are {known} ({how_to_add(name)})"
        )


def how_to_add(name: str) -> str:
    """How to make vendor ``name`` available: its environment variable, when it has one."""
    from ..vendors import env_key_for

    env = env_key_for(name)
    if env is None:
        return "add it to the config file"
    return f"export {env}, or add it to the config file"


def run_closing(dispatcher: Dispatcher, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a private event loop, then close the dispatcher's connections.
    Ctrl-C cancels ``work`` (and so its HTTP requests) before ``KeyboardInterrupt`` rises."""
    import asyncio

    with asyncio.Runner() as runner:
        try:
            return runner.run(work)
        finally:
            runner.run(dispatcher.aclose())


def error_for(exc: BaseException) -> CliError:
    """The exit code and one-line message, with the fix, for an exception from a command."""
    from ..errors import ConfigError, DispatcherError, NoVendorsRegistered

    if isinstance(exc, ConfigError):
        return CliError(str(exc), EXIT_USAGE)
    if isinstance(exc, NoVendorsRegistered):  # from_env found nothing: its message says why
        return CliError(str(exc), EXIT_USAGE)
    if isinstance(exc, DispatcherError):
        return CliError(explain_failure(exc), EXIT_FAILURE)
    if isinstance(exc, ValueError):  # a request the library refused to build
        return CliError(str(exc), EXIT_USAGE)
    return CliError(
        f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
        EXIT_FAILURE,
    )


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        module = importlib.import_module(f"{__package__}.{found[0]}")
        command: click.Command = getattr(module, found[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map what it raises to an exit code and one line on stderr."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
        except CliError as exc:
            failure = exc
        except Exception as exc:
            if ctx.ensure_object(CliState).debug:
                traceback.print_exc()
            failure = error_for(exc)
        echo(error_line(failure.message), err=True)
        raise click.exceptions.Exit(failure.exit_code)


def _quiet_broken_pipe() -> NoReturn:
    """The reader went away (``| head``): stop without a second error on closing stdout."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise click.exceptions.Exit(EXIT_FAILURE)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "-c",
    metavar="FILE",
    envvar="LLMDISPATCHER_CONFIG",
    help="Config file (YAML or TOML). Default: $LLMDISPATCHER_CONFIG, else vendors from the "
    "environment (OPENAI_API_KEY, ...).",
)
@click.option("--debug", is_flag=True, help="Log every attempt; show tracebacks.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour output (NO_COLOR=1 also turns it off).",
)
@click.version_option(
    __version__, "-V", "--version", prog_name="llmdispatcher", message="%(prog)s %(version)s"
)
@click.pass_context
def main(ctx: click.Context, config: str | None, debug: bool, color: str) -> None:
    """One client for every LLM vendor: chat, check vendors, explain routing.

    \b
    Examples:
      llmdispatcher chat "Why is the sky blue?" --model gpt-4o-mini
      git diff | llmdispatcher chat --system "Review this diff"
      llmdispatcher test-vendor
      llmdispatcher --config llmdispatcher.yaml route explain "hi" --model gpt-4o
    """
    configure(color)
    st = ctx.ensure_object(CliState)
    st.config_path = config
    st.debug = debug
