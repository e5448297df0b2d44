"""An OpenAPI-driven fuzz run (schemathesis, valid and invalid inputs) against the running
gateway with the fake vendors behind it: whatever the generated requests look like, no response
is a 5xx. (schemathesis' pytest plugin does not run under pytest 9, so its CLI runs here.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway import ADMIN_KEY, KEY

CLI = Path(sys.executable).with_name("schemathesis")


@pytest.mark.skipif(not CLI.exists() and not shutil.which("schemathesis"), reason="no schemathesis")
@pytest.mark.parametrize(
    ("key", "paths"),
    [(KEY, "--exclude-path-regex"), (ADMIN_KEY, "--include-path-regex")],
    ids=["client-key", "admin-key"],
)
def test_no_server_errors(gateway: str, tmp_path: Path, key: str, paths: str) -> None:
    """Every operation with a client key but the admin API's; the admin API with the admin
    key (the others answer it 403), then statefully: chains of create -> show / update /
    revoke along the document's links."""
    command = [
        str(CLI if CLI.exists() else shutil.which("schemathesis")),
        "run",
        f"{gateway}/openapi.json",
        "--checks", "not_a_server_error",
        "--mode", "all",
        "--max-examples", "20",
        "--phases", "examples,fuzzing" + (",stateful" if key == ADMIN_KEY else ""),
        "--seed", "1",
        "--header", f"Authorization: Bearer {key}",
        paths, "^/admin/",
        "--request-timeout", "10",
        "--workers", "2",
        "--no-color",
        "--generation-database", "none",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    if key == ADMIN_KEY:  # the stateful phase ran and followed our three links
        links = re.search(r"API Links:\s+(\d+) covered", done.stdout)
        assert links is not None, done.stdout[-3000:]
        assert int(links.group(1)) >= 3, links.group(0)
