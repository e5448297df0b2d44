"""Output helpers: colour decisions, tables, the footer, error verdicts."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from llmdispatcher import Usage
from llmdispatcher import errors as e
from llmdispatcher.cli import output
from llmdispatcher.cli.output import Cell, Footer


@pytest.fixture(autouse=True)
def _reset_colour() -> Iterator[None]:
    yield
    output.configure("auto")


def test_colour_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    output.configure("always")
    assert output.style("x", "red") == "\x1b[31mx\x1b[0m"
    output.configure("never")
    assert output.style("x", "red") == "x"
    output.configure("auto")  # pytest captures stdout: not a terminal
    assert output.style("x", "red") == "x"


def test_no_color_wins_over_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert output.color_enabled()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.color_enabled()


def test_table_columns_line_up_with_colour_on() -> None:
    output.configure("always")
    lines = output.render_table(["A", "LONGER"], [["wide cell", Cell("x", "red")], ["b", "yy"]])
    plain = [click.unstyle(line) for line in lines]
    assert plain == ["A          LONGER", "wide cell  x", "b          yy"]
    assert "\x1b[31mx" in lines[1]


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "-"), (0.0123, "12ms"), (1.5, "1.5s"), (30.0, "30s")]
)
def test_seconds(value: float | None, shown: str) -> None:
    assert output.seconds(value) == shown


def test_money_and_masks() -> None:
    assert output.dollars(None) == "cost n/a"
    assert output.dollars(0.000123) == "$0.000123"
    assert output.dollars(1.5) == "$1.5000"
    assert output.mask("sk-0123456789abcd") == "***abcd"
    assert output.mask("short") == "***"
    assert output.mask("") == "(empty)"


def test_footer() -> None:
    footer = Footer("openai", "gpt-4o", Usage(10, 5, 15), 0.0004, 1.25, 0.2, 1, ("main",))
    assert output.format_footer(footer) == (
        "openai · gpt-4o · 10 in + 5 out tokens · $0.000400 · 1.25s (first token 200ms) · "
        "1 retry · fell back from main"
    )
    bare = Footer("x", "m", None, None, 0.5, None, 2)
    assert output.format_footer(bare) == "x · m · tokens n/a · cost n/a · 500ms · 2 retries"


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (e.AuthenticationError("no", vendor="v", status=401), "bad key"),
        (e.ModelNotFound("no", vendor="v", status=404), "model not found"),
        (e.ContextLengthExceeded("no", vendor="v"), "prompt too long"),
        (e.RateLimitError("no", vendor="v", status=429), "rate limited"),
        (e.VendorTimeout("no", vendor="v"), "timed out"),
        (e.VendorConnectionError("no", vendor="v"), "unreachable"),
        (e.VendorServerError("no", vendor="v", status=500), "vendor error"),
        (e.StreamInterrupted("no", vendor="v", partial_text="ab"), "interrupted"),
        (TimeoutError(), "timed out"),
        (e.VendorUnavailable([], e.VendorServerError("no", vendor="v")), "vendor error"),
        (RuntimeError("?"), "failed"),
    ],
)
def test_failure_verdicts(error: BaseException, verdict: str) -> None:
    assert output.failure_kind(error)[0] == verdict


def test_explain_failure_is_one_line_with_the_fix() -> None:
    error = e.AuthenticationError("Incorrect API key", vendor="openai", status=401)
    assert output.explain_failure(error) == (
        "openai HTTP 401: Incorrect API key (fix: check the API key of vendor 'openai' "
        "(its environment variable, or api_key in the config file))"
    )
    unavailable = e.VendorUnavailable([], e.VendorServerError("down", vendor="a"))
    assert output.explain_failure(unavailable).endswith(
        "(fix: `llmdispatcher test-vendor` checks each vendor)"
    )
