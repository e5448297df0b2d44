"""A renderer for the subset of Helm's Go templates the chart uses (no helm binary can be installed
from the package registries here: see docs/deploy.md).

Supported, with Go template semantics: text with ``{{- ... -}}`` whitespace trimming;
``define``/``include``; ``if``/``else``/``end`` (with ``not``), ``with``, ``range`` over a list;
paths from the dot (``.Values.a.b``, ``.name``, ``$.Values``); literals (strings, integers);
pipes into ``quote``, ``nindent N``, ``sha256sum``; ``toYaml X`` and ``include "name" X``.
Anything else raises ``Unsupported``, so a template that leaves the subset fails the test
instead of rendering wrongly.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)


class Unsupported(Exception):
    pass


@dataclass
class Node:
    kind: str  # text, expr, if, with, range, define
    value: str = ""
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", s), whitespace trimmed as ``{{-`` and ``-}}`` say."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for found in _ACTION.finditer(source):
        text = source[pos : found.start()]
        if trim_next:
            text = text.lstrip()
        if found.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", found.group(2)))
        pos, trim_next = found.end(), bool(found.group(3))
    rest = source[pos:]
    out.append(("text", rest.lstrip() if trim_next else rest))
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list[Node], int, str]:
    """Nodes until an ``end``/``else`` (returned as the stop word) or the end of input."""
    nodes: list[Node] = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(Node("text", value))
            continue
        word, _, rest = value.partition(" ")
        if word in ("end", "else"):
            return nodes, i, word
        if word in ("if", "with", "range", "define"):
            body, i, stop = _parse(tokens, i)
            node = Node(word, rest.strip(), body)
            if stop == "else":
                node.orelse, i, stop = _parse(tokens, i)
            if stop != "end":
                raise Unsupported(f"{word} {rest!r} is not closed by end")
            nodes.append(node)
        elif value.startswith("/*"):
            continue
        else:
            nodes.append(Node("expr", value))
    return nodes, i, ""


@dataclass
class Chart:
    root: Path
    release: str = "demo"

    def __post_init__(self) -> None:
        self.defines: dict[str, list[Node]] = {}
        helpers = self.root / "templates" / "_helpers.tpl"
        for node in _parse(_tokens(helpers.read_text()))[0]:
            if node.kind == "define":
                self.defines[shlex.split(node.value)[0]] = node.body

    def render(self, values: dict[str, Any]) -> dict[str, str]:
        """Each template's output, by file name (helpers and NOTES.txt excepted)."""
        meta = yaml.safe_load((self.root / "Chart.yaml").read_text())
        top = {
            "Values": values,
            "Release": {"Name": self.release, "Namespace": "default", "Service": "Helm"},
            "Chart": {"Name": meta["name"], "Version": meta["version"],
                      "AppVersion": meta["appVersion"]},
        }  # fmt: skip
        out = {}
        for path in sorted((self.root / "templates").glob("*.yaml")):
            nodes = _parse(_tokens(path.read_text()))[0]
            out[path.name] = _Run(self.defines, top).nodes(nodes, top)
        return out

    def manifests(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        docs = []
        for text in self.render(values).values():
            docs += [d for d in yaml.safe_load_all(text) if d]
        return docs


class _Run:
    def __init__(self, defines: dict[str, list[Node]], top: dict[str, Any]) -> None:
        self.defines, self.top = defines, top

    def nodes(self, nodes: list[Node], dot: Any) -> str:
        return "".join(self.node(node, dot) for node in nodes)

    def node(self, node: Node, dot: Any) -> str:
        if node.kind == "text":
            return node.value
        if node.kind == "expr":
            return _text(self.pipeline(node.value, dot))
        value = self.pipeline(node.value, dot)
        if node.kind == "if":
            return self.nodes(node.body if _truthy(value) else node.orelse, dot)
        if node.kind == "with":
            return self.nodes(node.body, value) if _truthy(value) else self.nodes(node.orelse, dot)
        if node.kind == "range":
            return "".join(self.nodes(node.body, item) for item in value or ())
        raise Unsupported(node.kind)

    def pipeline(self, source: str, dot: Any) -> Any:
        stages = [s.strip() for s in source.split("|")]
        value = self.command(shlex.split(stages[0]), dot)
        for stage in stages[1:]:
            name, *args = shlex.split(stage)
            value = self.function(name, [self.arg(a, dot) for a in args] + [value])
        return value

    def command(self, words: list[str], dot: Any) -> Any:
        if len(words) == 1:
            return self.arg(words[0], dot)
        name, *args = words
        if name == "include":
            body = self.defines[args[0]]
            return self.nodes(body, self.arg(args[1], dot))
        return self.function(name, [self.arg(a, dot) for a in args])

    def arg(self, word: str, dot: Any) -> Any:
        if word == ".":
            return dot
        if word.startswith("$"):
            return _path(self.top, word[1:])
        if word.startswith("."):
            return _path(dot, word)
        if word.isdigit():
            return int(word)
        return word  # a string literal (shlex has removed its quotes)

    def function(self, name: str, args: list[Any]) -> Any:
        if name == "quote":
            return '"' + _text(args[0]).replace('"', '\\"') + '"'
        if name == "nindent":
            pad = " " * int(args[0])
            return "\n" + "\n".join(pad + line if line else line for line in args[1].split("\n"))
        if name == "toYaml":
            return yaml.safe_dump(args[0], sort_keys=False).rstrip("\n")
        if name == "sha256sum":
            return hashlib.sha256(_text(args[0]).encode()).hexdigest()
        if name == "not":
            return not _truthy(args[0])
        raise Unsupported(f"function {name}")


def _path(dot: Any, path: str) -> Any:
    value = dot
    for part in path.strip(".").split("."):
        if part:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value not in ([], {})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
