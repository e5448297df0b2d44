"""Terminal output: colour when it helps, plain text when piped, tables, footers, error lines.

Colour is on when the stream is a terminal, unless ``NO_COLOR`` is set (https://no-color.org) or
``--color never`` was given; ``--color always`` forces it (for ``less -R``). Only click is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..observability.events import Event, RequestFinished
    from ..types import Usage

COLOR_MODES = ("auto", "always", "never")
_settings = {"color": "auto"}


def configure(color: str) -> None:
    """Set the colour mode for this process (``auto``, ``always`` or ``never``)."""
    _settings["color"] = color if color in COLOR_MODES else "auto"


def color_enabled(err: bool = False) -> bool:
    mode = _settings["color"]
    if mode != "auto":
        return mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    stream: IO[Any] = sys.stderr if err else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def style(
    text: str, fg: str | None = None, *, bold: bool = False, dim: bool = False, err: bool = False
) -> str:
    """``text`` coloured for stdout (or stderr with ``err``), or unchanged when colour is off."""
    if not color_enabled(err) or not text:
        return text
    return click.style(text, fg=fg, bold=bold or None, dim=dim or None)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(text, err=err, nl=nl, color=color_enabled(err))


def write_raw(text: str) -> None:
    """Stream a piece of an answer to stdout at once (no newline, no styling)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def progress(text: str) -> None:
    """A progress note on stderr, only for a person watching it."""
    if sys.stderr.isatty():
        echo(style(text, dim=True, err=True), err=True)


def ok_word(ok: bool, yes: str = "ok", no: str = "FAIL", *, err: bool = False) -> str:
    return style(yes, "green", err=err) if ok else style(no, "red", bold=True, err=err)


# --- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell with an optional colour (applied after padding, so columns stay aligned)."""

    text: str
    fg: str | None = None
    bold: bool = False


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str | Cell]]) -> list[str]:
    """Left-aligned columns separated by two spaces; the header row is bold on a terminal."""
    cells = [[Cell(h, bold=True) for h in headers]]
    cells += [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    widths = [max(len(row[i].text) for row in cells) for i in range(len(headers))]
    widths[-1] = 0  # no padding after the last column
    return [
        "  ".join(
            style(c.text.ljust(w), c.fg, bold=c.bold) for c, w in zip(row, widths, strict=True)
        )
        for row in cells
    ]


# --- numbers -----------------------------------------------------------------------------------
def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.2f}".rstrip("0").rstrip(".") + "s"


def dollars(value: float | None) -> str:
    if value is None:
        return "cost n/a"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def mask(secret: str) -> str:
    """``***`` plus the last four characters of a long secret (enough to tell keys apart)."""
    if not secret:
        return "(empty)"
    return "***" + secret[-4:] if len(secret) >= 12 else "***"


# --- the footer after an answer ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Footer:
    vendor: str
    model: str
    usage: Usage | None
    cost_usd: float | None
    latency_s: float
    ttft_s: float | None
    retries: int
    fell_back_from: tuple[str, ...] = ()


def format_footer(f: Footer) -> str:
    """One line: vendor, model, tokens, cost, latency (and time to first token), retries."""
    if f.usage is None:
        tokens = "tokens n/a"
    else:
        tokens = f"{f.usage.prompt_tokens} in + {f.usage.completion_tokens} out tokens"
    latency = seconds(f.latency_s)
    if f.ttft_s is not None:
        latency += f" (first token {seconds(f.ttft_s)})"
    retries = f"{f.retries} retr{'y' if f.retries == 1 else 'ies'}"
    parts = [f.vendor, f.model, tokens, dollars(f.cost_usd), latency, retries]
    if f.fell_back_from:
        parts.append(f"fell back from {', '.join(f.fell_back_from)}")
    return style(" · ".join(parts), dim=True, err=True)


class FooterRecorder:
    """Keeps the dispatcher's last ``RequestFinished`` event, for the footer."""

    def __init__(self) -> None:
        self.finished: RequestFinished | None = None

    def on_event(self, event: Event) -> None:
        from ..observability.events import RequestFinished

        if isinstance(event, RequestFinished):
            self.finished = event

    def show(self, cost_usd: float | None) -> None:
        done = self.finished
        if done is None or done.vendor is None:
            return
        tried = tuple(dict.fromkeys(a.vendor for a in done.attempts)) or (done.vendor,)
        footer = Footer(
            vendor=done.vendor,
            model=done.model or done.request.model,
            usage=done.usage,
            cost_usd=cost_usd,
            latency_s=done.latency_s,
            ttft_s=done.ttft_s,
            retries=len(done.attempts) - len(tried),
            fell_back_from=tried[:-1],
        )
        echo(format_footer(footer), err=True)


# --- errors ------------------------------------------------------------------------------------
def error_line(message: str) -> str:
    return f"{style('error:', 'red', bold=True, err=True)} {message}"


def failure_kind(exc: BaseException) -> tuple[str, str]:
    """A short verdict (``bad key``, ``unreachable``, ...) and the fix, for a failed request."""
    from .. import errors as e

    if isinstance(exc, e.VendorUnavailable) and exc.last_error is not None:
        return failure_kind(exc.last_error)[0], "`llmdispatcher test-vendor` checks each vendor"
    vendor = repr(getattr(exc, "vendor", "the vendor"))
    kinds: tuple[tuple[type[BaseException], str, str], ...] = (
        (e.AuthenticationError, "bad key", f"check the API key of vendor {vendor} "
         "(its environment variable, or api_key in the config file)"),
        (e.ModelNotFound, "model not found", f"`llmdispatcher models` lists what {vendor} "
         "serves; choose one with --model"),
        (e.ContextLengthExceeded, "prompt too long", "shorten the prompt or lower --max-tokens"),
        (e.UnsupportedRequest, "unsupported", "send it to another vendor with --vendor"),
        (e.InvalidRequestError, "request refused", "check the model and the request options"),
        (e.RateLimitError, "rate limited", "wait and retry, or add fallback_vendors to the config"),
        (e.StreamInterrupted, "interrupted", "the answer broke off mid-stream; ask again"),
        (e.VendorTimeout, "timed out", f"{vendor} is slow or stuck; retry, or raise the timeout"),
        (TimeoutError, "timed out", "the vendor is slow or stuck; retry, or raise --timeout"),
        (e.VendorConnectionError, "unreachable", f"check that {vendor} is running and that its "
         "base_url is right"),
        (e.VendorServerError, "vendor error", f"{vendor} failed on its side; retry later, or add "
         "fallback_vendors to the config"),
    )  # fmt: skip
    for cls, verdict, fix in kinds:
        if isinstance(exc, cls):
            return verdict, fix
    return "failed", ""


def explain_failure(exc: BaseException) -> str:
    """``<what happened> (fix: <what to do>)`` on one line."""
    _, fix = failure_kind(exc)
    text = str(exc) or type(exc).__name__
    return f"{text} (fix: {fix})" if fix else text
