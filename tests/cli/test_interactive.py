"""The interactive chat, driven through a pseudo-terminal as a person would type into it; and
its /commands, in-process."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from llmdispatcher.cli.chat import Session, run_command
from tests.cli import ROOT, clean_environ, cli_command, popen
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply, Stall


class Terminal:
    """The CLI running on a pseudo-terminal: ``send`` types a line, ``expect`` waits for text."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = popen(args, stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=ROOT)
        os.close(slave)
        self.seen = ""
        self._mark = 0

    def expect(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears after the previous match; return what came before it."""
        deadline = time.monotonic() + timeout
        while (found := self.seen.find(text, self._mark)) < 0:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; the terminal shows:\n{self.seen}"
            if not self._read(remaining):
                raise AssertionError(f"{text!r} never appeared; the CLI exited:\n{self.seen}")
        before = self.seen[self._mark : found]
        self._mark = found + len(text)
        return before

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return bool(data)

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def wait(self, timeout: float = 10.0) -> int:
        with_rest = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < with_rest:
            self._read(0.05)
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(two_vendors: Path) -> Iterator[Terminal]:
    env = {**clean_environ(), "NO_COLOR": "1", "TERM": "dumb"}
    term = Terminal(cli_command("--config", two_vendors, "chat", "-m", "gpt-4o"), env)
    yield term
    term.close()


def test_a_conversation_with_history_and_commands(
    terminal: Terminal, fake_openai: FakeOpenAI, fake_openai_b: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(text="First answer."), Reply(text="Second answer."))
    terminal.expect("/help lists the commands")
    terminal.expect("you> ")
    terminal.send("hello")
    terminal.expect("First answer.")
    terminal.expect("main · gpt-4o · 9 in + 12 out tokens")
    terminal.send("/model gpt-4.1")
    terminal.expect("model: gpt-4.1")
    terminal.send("and then?")
    terminal.expect("Second answer.")
    sent = fake_openai.last_request.json
    assert sent["model"] == "gpt-4.1"
    assert [m["content"] for m in sent["messages"]] == ["hello", "First answer.", "and then?"]

    terminal.send("/clear")
    terminal.expect("conversation cleared")
    terminal.send("/vendor nope")
    terminal.expect("unknown vendor 'nope'; configured: main, backup")
    terminal.send("/vendor backup")
    terminal.expect("vendor: backup")
    terminal.send("fresh start")
    terminal.expect("backup · gpt-4.1 · ")
    assert [m["content"] for m in fake_openai_b.last_request.json["messages"]] == ["fresh start"]
    terminal.send("/exit")
    assert terminal.wait() == 0
    assert "Traceback" not in terminal.seen


def test_ctrl_d_quits(terminal: Terminal) -> None:
    terminal.expect("you> ")
    os.write(terminal.master, b"\x04")
    assert terminal.wait() == 0


def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(
    terminal: Terminal, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Stall(seconds=30, after_chunks=1), Reply(text="Next answer."))
    terminal.expect("you> ")
    terminal.send("tell me a long story")
    terminal.expect("Hell")  # the first piece of the stalled answer
    terminal.proc.send_signal(signal.SIGINT)
    terminal.expect("(interrupted)")
    assert fake_openai.wait_for_disconnect(timeout=5)
    terminal.send("again")
    terminal.expect("Next answer.")
    # The interrupted exchange is not part of the history.
    assert [m["content"] for m in fake_openai.last_request.json["messages"]] == ["again"]
    terminal.send("/quit")
    assert terminal.wait() == 0
    assert "Traceback" not in terminal.seen


def test_colour_on_a_terminal_unless_no_color(two_vendors: Path) -> None:
    args = cli_command("--config", two_vendors, "route", "explain", "-m", "gpt-4o")
    for no_color, coloured in (("", True), ("1", False)):
        term = Terminal(args, {**clean_environ(), "NO_COLOR": no_color, "TERM": "xterm"})
        try:
            assert term.wait() == 0
            assert ("\x1b[" in term.seen) is coloured, term.seen
            assert "main" in term.seen
        finally:
            term.close()


# --- the /commands, in-process ---------------------------------------------------------------
class FakeDispatcher:
    vendors = {"main": object(), "backup": object()}


def test_commands_change_the_session(capsys: pytest.CaptureFixture[str]) -> None:
    session = Session("gpt-4o", None, history=[{"role": "user", "content": "hi"}])
    dispatcher = FakeDispatcher()
    assert run_command("/model gpt-5", session, dispatcher)  # type: ignore[arg-type]
    assert run_command("/vendor backup", session, dispatcher)  # type: ignore[arg-type]
    assert (session.model, session.vendor) == ("gpt-5", "backup")
    assert run_command("/vendor auto", session, dispatcher)  # type: ignore[arg-type]
    assert session.vendor is None
    assert run_command("/clear", session, dispatcher)  # type: ignore[arg-type]
    assert session.history == []
    assert run_command("/help", session, dispatcher)  # type: ignore[arg-type]
    assert run_command("/what", session, dispatcher)  # type: ignore[arg-type]
    assert not run_command("/exit", session, dispatcher)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "/vendor [NAME]" in err
    assert "unknown command /what; /help lists the commands" in err
