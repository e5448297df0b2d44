"""The package as a user gets it: ``python -m build`` makes an sdist and a wheel from it (so the
sdist is complete), both carry the LICENSE; the wheel with its ``gateway`` extra installs into a
clean venv (no system site-packages, not this checkout) from the package index as ``pip``
would for anyone, and ``llmdispatcher serve`` from that venv serves a chat request and answers
``/readyz`` 200. Dependencies come from the index (pip's cache makes a rerun quick); nothing of
the development environment leaks in: the venv's interpreter runs from a directory outside the
checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import orjson
import pytest

from tests.fakes.fixtures import FAKE_OPENAI_KEY
from tests.fakes.openai_fake import FakeOpenAI
from tests.gateway import call
from tests.state.own_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_sdist_and_wheel_carry_the_license_and_the_data(dist: Path) -> None:
    (sdist,) = dist.glob("llmdispatcher-*.tar.gz")
    (wheel,) = dist.glob("llmdispatcher-*.whl")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "CHANGELOG.md"} <= names
    assert "src/llmdispatcher/gateway/health.py" in names
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith("dist-info/METADATA")))
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)
    assert "llmdispatcher/py.typed" in names
    assert "llmdispatcher/pricing/prices.toml" in names
    assert b"License-Expression: MIT" in metadata
    assert not any(n.startswith("tests/") for n in names)


def test_the_wheel_serves_from_a_clean_venv(
    dist: Path, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    (wheel,) = dist.glob("llmdispatcher-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    install = [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[gateway]"]
    done = subprocess.run(
        install, capture_output=True, text=True, timeout=300, env=clean, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    where = subprocess.run(
        [str(python), "-c", "import llmdispatcher; print(llmdispatcher.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=clean, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(env_dir))  # the installed copy, not this checkout

    config = tmp_path / "llmdispatcher.yaml"
    config.write_text(
        f"vendors:\n  openai: {{type: openai, base_url: '{fake_openai.url}/v1', "
        f"api_key: {FAKE_OPENAI_KEY}}}\n"
    )
    port = free_port()
    serve = [str(env_dir / "bin" / "llmdispatcher"), "serve", "--config", str(config),
             "--port", str(port)]  # fmt: skip
    home = {"LLMDISPATCHER_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(
        serve, cwd=tmp_path, env={**clean, **home},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _until_ready(url, server)
        assert ready["ready"] is True
        assert set(ready["checks"]) == {"vendors", "ledger", "key_store"}  # data directory SQLite
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        answer = call("POST", f"{url}/v1/chat/completions", chat)
        assert answer.status == 200
        assert answer.json()["choices"][0]["message"]["content"]
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err.decode()[-2000:]


def _until_ready(url: str, server: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the installed gateway exited"
        try:
            reply = call("GET", f"{url}/readyz", timeout=2)
        except OSError:
            time.sleep(0.1)
            continue
        found: dict[str, object] = orjson.loads(reply.body)
        if reply.status == 200:
            return found
        time.sleep(0.1)
    raise AssertionError("/readyz never answered 200")
