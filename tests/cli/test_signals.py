"""Ctrl-C (SIGINT) while an answer streams: exit 130, nothing on stderr, and the vendor sees the
connection close (the upstream request is cancelled, not left running)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import ROOT, clean_environ, cli_command, popen
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Stall


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return popen(
        cli_command("--config", config, "chat", "-m", "gpt-4o", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_environ(),
        cwd=ROOT,
    )


def read_until(proc: subprocess.Popen[bytes], text: bytes, timeout: float = 10.0) -> bytes:
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{text!r} never arrived; stdout so far: {seen!r}"
        if select.select([fd], [], [], remaining)[0]:
            data = os.read(fd, 1024)
            assert data, f"stdout closed before {text!r}: {seen!r}"
            seen += data
    return seen


@pytest.mark.parametrize("started", [True, False], ids=["mid-answer", "before-first-token"])
def test_ctrl_c_during_a_stream(config_file: Path, fake_openai: FakeOpenAI, started: bool) -> None:
    fake_openai.enqueue(Stall(seconds=30, after_chunks=1 if started else 0))
    proc = start(config_file, "a long story please")
    try:
        if started:
            assert read_until(proc, b"Hell") == b"Hell"
        else:
            assert fake_openai.wait_for_requests(1, timeout=10)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert stderr == b""
    assert stdout == (b"\n" if started else b"")  # the partial line is ended, nothing more
    assert fake_openai.wait_for_disconnect(timeout=5)
