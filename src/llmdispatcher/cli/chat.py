"""``llmdispatcher chat``: one-shot questions, piped prompts and an interactive chat.

The answer streams to stdout as it arrives; a one-line footer (vendor, model, tokens, cost,
latency, retries) goes to stderr. Requests run on one private event loop (``asyncio.Runner``), so
Ctrl-C cancels the request in flight, which closes its connection to the vendor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import click

from .main import (
    EXIT_USAGE,
    CliError,
    config_option,
    load_dispatcher,
    require_vendor,
    run_closing,
)
from .output import FooterRecorder, echo, error_line, explain_failure, style, write_raw

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from ..types import Request

LOCAL_VENDORS = ("llamacpp", "ollama")
DEFAULT_MODEL = "local"
HELP = """\
/model [NAME]   show or change the model
/vendor [NAME]  show or change the vendor (/vendor auto: let routing choose)
/clear          forget the conversation so far
/exit           quit (also /quit or Ctrl-D); Ctrl-C stops an answer"""


@dataclass(slots=True)
class ChatOptions:
    model: str | None = None
    vendor: str | None = None
    local: bool = False
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    as_json: bool = False
    no_stream: bool = False
    quiet: bool = False


@dataclass(slots=True)
class Session:
    """Where the next request goes, and the conversation so far."""

    model: str
    vendor: str | None
    system: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)


def default_model() -> str:
    return os.environ.get("LLMDISPATCHER_MODEL") or DEFAULT_MODEL


def resolve_local(dispatcher: Dispatcher, model: str | None) -> tuple[str, str]:
    """The (vendor, model) that ``--local`` means: a registered local vendor that serves the
    model, else whatever local runtime can run it (a running Ollama that has it, a GGUF file,
    the built-in SmolLM2), registered on the spot."""
    from .. import local_models

    name = model or DEFAULT_MODEL
    for vendor_name in LOCAL_VENDORS:
        vendor = dispatcher.vendors.get(vendor_name)
        if vendor is not None and name in getattr(vendor, "served", (name,)):
            return vendor_name, name
    vendor, served_as = asyncio.run(local_models.resolve_local(name, taken=dispatcher.vendors))
    dispatcher.register(vendor)
    return vendor.name, served_as


def target(dispatcher: Dispatcher, opts: ChatOptions) -> tuple[str | None, str]:
    """The vendor (None: routing decides) and model the options ask for."""
    if opts.local:
        if opts.vendor:
            raise CliError("--local and --vendor both choose the vendor: pass one", EXIT_USAGE)
        return resolve_local(dispatcher, opts.model)
    if opts.vendor:
        require_vendor(dispatcher, opts.vendor)
    return opts.vendor, opts.model or default_model()


def build_request(session: Session, opts: ChatOptions) -> Request:
    from ..types import Request

    system = [{"role": "system", "content": session.system}] if session.system else []
    return Request(
        model=session.model,
        messages=[*system, *session.history],
        temperature=opts.temperature,
        max_tokens=opts.max_tokens,
        vendor=session.vendor,
    )


async def ask(
    dispatcher: Dispatcher, request: Request, opts: ChatOptions
) -> tuple[str, float | None]:
    """Print the answer to ``request`` (streamed unless --no-stream or --json); returns its
    text and cost."""
    if not (opts.as_json or opts.no_stream):
        return await stream_answer(dispatcher, request)
    response = await dispatcher.send(request)
    if opts.as_json:
        echo(json.dumps(asdict(response), indent=2, ensure_ascii=False, default=str))
    else:
        echo(response.content)
    return response.content, response.cost_usd


async def stream_answer(dispatcher: Dispatcher, request: Request) -> tuple[str, float | None]:
    pieces: list[str] = []
    cost: float | None = None
    try:
        async for chunk in dispatcher.stream(request):
            if chunk.delta:
                write_raw(chunk.delta)
                pieces.append(chunk.delta)
            cost = chunk.cost_usd if chunk.cost_usd is not None else cost
    finally:
        if pieces and not pieces[-1].endswith("\n"):
            write_raw("\n")  # end the line even when interrupted
    return "".join(pieces), cost


def read_prompt(prompt: str | None) -> str | None:
    """The prompt argument; stdin when it is ``-`` or absent and piped; None for interactive."""
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
        if not text.strip():
            raise CliError("no prompt: pass it as an argument or pipe it on stdin", EXIT_USAGE)
        return text
    if prompt is not None and not prompt.strip():
        raise CliError("the prompt is empty: pass some text, or pipe it on stdin", EXIT_USAGE)
    return prompt


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model name. Default: $LLMDISPATCHER_MODEL, else 'local'.")
@click.option(
    "--vendor",
    "--vendor-override",
    "vendor",
    metavar="NAME",
    help="Send to this vendor only (no routing, no fallback).",
)
@click.option("--local", is_flag=True, help="Use the local vendor; --model picks the model.")
@click.option("-s", "--system", metavar="TEXT", help="System prompt.")
@click.option("-t", "--temperature", type=click.FloatRange(0.0, 2.0), help="0 to 2.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Longest answer, in tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole Response as JSON.")
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("-q", "--quiet", is_flag=True, help="No footer line on stderr.")
@config_option
def chat(prompt: str | None, **options: Any) -> None:
    """Ask a model: one-shot, piped, or an interactive chat.

    The prompt is PROMPT, or stdin when PROMPT is - or absent and stdin is piped. With neither,
    on a terminal, an interactive chat starts (/help lists its commands). The answer streams to
    stdout; a footer line (vendor, model, tokens, cost, latency, retries) goes to stderr.

    \b
    Examples:
      llmdispatcher chat "Name three primes" --model gpt-4o-mini
      cat notes.txt | llmdispatcher chat --system "Summarise" --no-stream
      llmdispatcher chat --local --model qwen2.5:0.5b
    """
    opts = ChatOptions(**options)
    text = read_prompt(prompt)
    if text is None:
        interactive(opts)
    else:
        one_shot(opts, text)


def one_shot(opts: ChatOptions, prompt: str) -> None:
    dispatcher = load_dispatcher()
    vendor, model = target(dispatcher, opts)
    request = build_request(Session(model, vendor, opts.system, [_user(prompt)]), opts)
    recorder = FooterRecorder()
    dispatcher.subscribe(recorder.on_event)
    _, cost = run_closing(dispatcher, ask(dispatcher, request, opts))
    if not opts.quiet:
        recorder.show(cost)


# --- the interactive chat ----------------------------------------------------------------------
def interactive(opts: ChatOptions) -> None:
    dispatcher = load_dispatcher()
    vendor, model = target(dispatcher, opts)
    session = Session(model, vendor, opts.system)
    recorder = FooterRecorder()
    dispatcher.subscribe(recorder.on_event)
    _enable_line_editing()
    names = ", ".join(dispatcher.vendors)
    echo(
        style(f"llmdispatcher chat · model {model} · vendors {names}", bold=True, err=True),
        err=True,
    )
    echo(style("/help lists the commands; /exit or Ctrl-D quits", dim=True, err=True), err=True)
    with asyncio.Runner() as runner:
        try:
            while (line := _read_line()) is not None:
                if line.startswith("/"):
                    if not run_command(line, session, dispatcher):
                        break
                elif line:
                    turn(runner, dispatcher, session, opts, recorder, line)
        finally:
            runner.run(dispatcher.aclose())


def _read_line() -> str | None:
    try:
        return input("you> ").strip()
    except EOFError:
        echo()
        return None


def turn(
    runner: asyncio.Runner,
    dispatcher: Dispatcher,
    session: Session,
    opts: ChatOptions,
    recorder: FooterRecorder,
    line: str,
) -> None:
    """One exchange; a failed or interrupted one leaves the history as it was."""
    from ..errors import DispatcherError

    session.history.append(_user(line))
    try:
        text, cost = runner.run(ask(dispatcher, build_request(session, opts), opts))
    except KeyboardInterrupt:
        session.history.pop()
        echo(style("(interrupted)", dim=True, err=True), err=True)
        return
    except DispatcherError as exc:
        session.history.pop()
        echo(error_line(explain_failure(exc)), err=True)
        return
    session.history.append({"role": "assistant", "content": text})
    if not opts.quiet:
        recorder.show(cost)


def run_command(line: str, session: Session, dispatcher: Dispatcher) -> bool:
    """Handle a /command; False means quit."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/exit", "/quit"):
        return False
    if name == "/clear":
        session.history.clear()
        _note("conversation cleared")
    elif name == "/model":
        session.model = arg or session.model
        _note(f"model: {session.model}")
    elif name == "/vendor":
        _set_vendor(session, dispatcher, arg)
    elif name == "/help":
        echo(HELP, err=True)
    else:
        _note(f"unknown command {name}; /help lists the commands")
    return True


def _set_vendor(session: Session, dispatcher: Dispatcher, name: str) -> None:
    if name == "auto":
        session.vendor = None
    elif name and name not in dispatcher.vendors:
        _note(f"unknown vendor {name!r}; configured: {', '.join(dispatcher.vendors)}")
        return
    elif name:
        session.vendor = name
    _note(f"vendor: {session.vendor or 'auto (routing decides)'}")


def _note(text: str) -> None:
    echo(style(text, dim=True, err=True), err=True)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _enable_line_editing() -> None:
    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401 - importing it gives input() history and editing
