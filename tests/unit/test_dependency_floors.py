"""Dependency floors that exist for security: lowering one lets a vulnerable release in."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from tests.cli import ROOT

# The release that fixed the newest aiohttp advisory we know of (Request.scheme, 3.14.4).
AIOHTTP_FIXED = (3, 14, 4)


def _floor(name: str) -> tuple[int, ...]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = next(d for d in project["dependencies"] if re.match(rf"{name}\b", d))
    found = re.search(r">=\s*([\d.]+)", spec)
    assert found, f"{spec}: no >= floor"
    return tuple(int(part) for part in found.group(1).split("."))


def test_aiohttp_floor_admits_no_release_with_a_known_advisory() -> None:
    assert _floor("aiohttp") >= AIOHTTP_FIXED
    installed = tuple(int(p) for p in version("aiohttp").split(".")[:3])
    assert installed >= _floor("aiohttp")
