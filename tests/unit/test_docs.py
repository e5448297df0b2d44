"""Docs that name code cannot go stale: every module, file and symbol that a page of docs/
names in backticks must exist."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "llmdispatcher"
PAGES = sorted((ROOT / "docs").glob("*.md"))
TOKEN = re.compile(r"`([^`\s]+)`")


def _definitions() -> tuple[dict[str, set[str]], set[str]]:
    """Every class with the names defined in its body, and every other name defined anywhere
    in the package or the code beside it (tests, fakes, bench, fuzz)."""
    classes: dict[str, set[str]] = {}
    names: set[str] = set()
    trees = (PACKAGE, ROOT / "tests", ROOT / "bench", ROOT / "fuzz")
    for path in (p for tree in trees for p in tree.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                members = classes.setdefault(node.name, set())
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        members.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        members.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        members.update(t.id for t in item.targets if isinstance(t, ast.Name))
                names |= members
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return classes, names


CLASSES, NAMES = _definitions()
BUILTINS = {name for name in dir(builtins) if name[:1].isupper()}


def _problem(token: str) -> str | None:
    called = token.endswith("()")
    token = token.removesuffix("()")
    if ":" in token or "<" in token:
        return None  # a URL or a pattern, not a path in the tree
    if token.endswith((".py", "/")):
        found = (ROOT / token).exists() or (PACKAGE / token).exists()
        return None if found else f"no file or folder {token}"
    if not re.fullmatch(r"[A-Za-z_][\w.]*", token):
        return None  # prose, a value or a command, not a name
    head, _, rest = token.partition(".")
    if head[:1].isupper() and not head.isupper() and head not in BUILTINS:
        if head not in CLASSES:
            return f"no class {head}"
        attribute = rest.split(".")[0] if rest else ""
        if attribute and attribute not in CLASSES[head] | NAMES:
            return f"{head} has no {attribute}"
        return None
    # A bare snake_case word is as often a config key or a wire value as a function: only a
    # call (``send_sync()``) is held to exist.
    last = token.rsplit(".", 1)[-1]
    if called and last not in NAMES and last not in CLASSES:
        return f"no function {last}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_name_a_page_gives_exists(page: Path) -> None:
    problems = [
        f"{token}: {problem}"
        for token in TOKEN.findall(page.read_text())
        if (problem := _problem(token)) is not None
    ]
    assert problems == [], f"{page.name} names what does not exist"


def test_the_checker_catches_a_stale_name() -> None:
    assert _problem("Dispatcher._attempt_loop") == "Dispatcher has no _attempt_loop"
    assert _problem("routing/plan.py") == "no file or folder routing/plan.py"
    assert _problem("AttemptRunner") == "no class AttemptRunner"
    assert _problem("Runner.run") is None
    assert _problem("lifecycle/scope.py") is None
    assert _problem("attempt_loop()") == "no function attempt_loop"
