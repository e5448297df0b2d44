"""Helpers for running the CLI as users do: in-process with click's CliRunner (fast) and as a
subprocess (``python -m llmdispatcher``), against the fake vendor servers. Fixtures live in
conftest.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from llmdispatcher.cli.main import main
from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
VENDOR_ENV = ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE", "AZURE", "OLLAMA", "LLAMACPP")
OUR_ENV = ("LLMDISPATCHER_", "NO_COLOR", "FORCE_COLOR")
# Kept in every test's environment: tests/conftest.py points it at a temporary directory, so
# nothing a test runs ever writes to the real data directory.
HERMETIC_ENV = ("LLMDISPATCHER_HOME",)
# No waiting between retries, so failure tests stay fast.
FAST_RETRIES = "retry_policy: {max_retries: 0, base_delay: 0, jitter: false}"


def is_setting(name: str) -> bool:
    """Whether ``name`` is a vendor key or one of our settings (the data directory is kept)."""
    return name.startswith(VENDOR_ENV + OUR_ENV) and name not in HERMETIC_ENV


def clean_environ() -> dict[str, str]:
    """The current environment without vendor keys or our own settings."""
    return {k: v for k, v in os.environ.items() if not is_setting(k)}


def vendor_yaml(
    name: str, fake: FakeOpenAI | str, key: str = FAKE_OPENAI_KEY, **extra: object
) -> str:
    """One ``type: openai`` vendor entry pointing at a fake (or at any base URL)."""
    url = f"{fake.url}/v1" if isinstance(fake, FakeOpenAI) else fake
    fields = {"type": "openai", "base_url": url, "api_key": key, **extra}
    return f"  {name}: {json.dumps(fields)}\n"  # JSON is YAML


def write_config(
    path: Path,
    vendors: Mapping[str, FakeOpenAI | str] | str,
    *extra: str,
    retries: str = FAST_RETRIES,
) -> Path:
    """A YAML config with ``vendors`` (name -> fake or URL, or ``vendor_yaml`` lines), extra
    top-level lines and a retry policy."""
    if isinstance(vendors, str):
        body = vendors
    else:
        body = "".join(vendor_yaml(name, fake) for name, fake in vendors.items())
    path.write_text("\n".join([retries, *extra, "vendors:", body]))
    return path


class CliInvoker:
    """``cli("chat", "hi")``: run the CLI in-process and return click's Result."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self, *args: str | Path, input: str | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        argv = [str(a) for a in args]
        result = self.runner.invoke(
            main, argv, input=input, env=dict(env or {}), prog_name="llmdispatcher"
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a bug in the CLI: let pytest show the traceback
        return result


def cli_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "llmdispatcher", *(str(a) for a in args)]


def run_cli(
    *args: str | Path,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m llmdispatcher ARGS`` as a subprocess with a clean environment."""
    return subprocess.run(
        cli_command(*args),
        input=input,
        env={**clean_environ(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` whose child gets SIGINT as a Ctrl-C. If this process ignores SIGINT
    (a background job of a script), the child would inherit that; a handler installed here is
    reset to the default in the child instead."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(args, **kwargs)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_line(text: str) -> str:
    """The text, asserted to be exactly one line."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]
