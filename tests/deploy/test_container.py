"""The container files: the Dockerfile passes hadolint and keeps its promises (multi-stage, no
compiler or network in the final stage, a non-root user, /data a volume, a HEALTHCHECK on /livez,
``llmdispatcher serve`` as the entry point); .dockerignore sends only what the build copies;
compose.yaml runs 3 read-only replicas behind HAProxy with Redis and PostgreSQL, its HAProxy
config passes ``haproxy -c`` and its gateway config loads.

No image is built or run here: the machine has the docker CLI but no daemon, and no container
registry is reachable to pull the base image from (docs/deploy.md). What the image installs is
tested by test_packaging.py: the same wheel, installed in a clean venv, serving until /readyz
is 200.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmdispatcher import Config
from tests.redis_fixtures import in_ci

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def tool(name: str) -> str:
    """A tool the test needs: next to this interpreter (pip-installed), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        problem = f"{name} is not installed (make setup / bash scripts/services.sh)"
        if in_ci():
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_hadolint_passes() -> None:
    command = [tool("hadolint"), "--no-color", "-"]
    done = subprocess.run(command, input=DOCKERFILE, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_final_stage_keeps_its_promises() -> None:
    assert sum(word == "FROM" for word, _ in instructions()) == 2
    final = final_stage()
    runs = " ".join(args for word, args in final if word == "RUN")
    assert "--no-index" in runs  # wheels from the builder only, no network
    for compiler in ("gcc", "build-essential", "apt-get install", "python -m build"):
        assert compiler not in runs
    user = next(args for word, args in final if word == "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert ("VOLUME", '["/data"]') in final
    health = next(args for word, args in final if word == "HEALTHCHECK")
    assert "/livez" in health
    assert ("ENTRYPOINT", '["llmdispatcher", "serve"]') in final
    env = " ".join(args for word, args in final if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # a read-only root filesystem stays read-only
    assert "LLMDISPATCHER_HOME=/data" in env


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for word, args in instructions():
        if word == "COPY" and "--from" not in args:
            copied.update(args.split()[:-1])
    assert kept == copied == {"pyproject.toml", "README.md", "LICENSE", "src"}
    assert all((ROOT / name).exists() for name in kept)


def compose() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return found


def test_compose_runs_three_read_only_replicas_behind_haproxy() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway", "haproxy", "redis", "postgres"}
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 3
    assert gateway["read_only"] is True
    assert gateway["tmpfs"] == ["/tmp"]
    assert gateway["cap_drop"] == ["ALL"]
    assert "gateway-data:/data" in gateway["volumes"]
    assert set(gateway["depends_on"]) == {"redis", "postgres"}
    # secrets come from the environment, with no default that could be a real key
    env = compose()["x-gateway-env"]
    assert env["OPENAI_API_KEY"] == "${OPENAI_API_KEY:?set OPENAI_API_KEY}"
    mounted = services["haproxy"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).exists()


def test_compose_haproxy_config_is_valid() -> None:
    config = ROOT / "deploy" / "compose" / "haproxy.cfg"
    command = [tool("haproxy"), "-c", "-f", str(config)]
    done = subprocess.run(command, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = config.read_text()
    assert "uri /readyz" in text
    assert "option redispatch" in text


def test_compose_gateway_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "LLMDISPATCHER_API_KEY", "POSTGRES_PASSWORD"):
        monkeypatch.setenv(name, f"test-{name.lower()}-0123456789")
    config = Config.from_file(ROOT / "deploy" / "compose" / "llmdispatcher.yaml")
    assert config.state_url == "redis://redis:6379/0"
    assert config.ledger_url is not None
    assert config.ledger_url.startswith("postgresql://llmdispatcher:")
    assert config.gateway.drain_s == 5
    grace = compose()["services"]["gateway"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > config.gateway.drain_s + config.gateway.shutdown_grace_s
