"""A redis-server of the test's own, on a free port, that the test may kill and restart (the
shared one on 6379 is never touched). It saves only when told (``save``): a restart comes back
with the last snapshot, or empty, as a Redis without AOF does after a crash."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        found = shutil.which("redis-server")
        if found is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary = found
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        args += ["--dir", str(self.directory), "--dbfilename", "dump.rdb"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: connections reset, new ones refused, nothing saved."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def save(self) -> None:
        """Snapshot now: the next start loads it."""
        assert self._command(b"SAVE", timeout_s=10).startswith(b"+OK")

    def _answers(self) -> bool:
        try:
            return self._command(b"PING", timeout_s=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def _command(self, command: bytes, timeout_s: float) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s) as conn:
            conn.sendall(command + b"\r\n")
            return conn.recv(64)
