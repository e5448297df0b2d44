"""Optional: the same non-streaming cells against Portkey's open-source gateway, for scale.

Installs ``@portkey-ai/gateway`` from the npm registry into its own folder under /tmp (once;
needs ``npm`` and Node.js), then starts the mock upstream, ``llmdispatcher serve`` (a stored key,
the ledger on: ``bench/gateway.py``'s set-up) and Portkey (``--port=N``; one Node.js process),
each pinned to CPU 0 in turn, and prints requests/s, latency and CPU per request for each at
concurrency 1, 16 and 64:

    .venv/bin/python bench/portkey_compare.py              # install if needed, then measure
    .venv/bin/python bench/portkey_compare.py --seconds 5  # shorter cells

Portkey is told its upstream per request, with the ``x-portkey-provider: openai`` and
``x-portkey-custom-host`` headers; the ``Authorization`` header is the upstream's key, which it
forwards. It checks no key of its own (its open-source gateway has no key store): it does less
per request than llmdispatcher here (no authentication, no ledger, no routing or fallback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import _wait_listening, free_port
from workers import tree_cpu

from gateway import GATEWAY_CPU, MESSAGES, ROOT, _pid, scripts, servers, wrk

FOLDER = Path(tempfile.gettempdir()) / "llmdispatcher-portkey"
ENTRY = FOLDER / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def install() -> None:
    if ENTRY.exists():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("needs Node.js and npm: apt-get install -y nodejs npm")
    print(f"installing @portkey-ai/gateway into {FOLDER} ...", flush=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "@portkey-ai/gateway"],
        cwd=FOLDER, check=True,
    )  # fmt: skip


def portkey_script(workdir: Path, upstream: str) -> Path:
    path = workdir / "portkey.lua"
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 128})
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer sk-up-0123456789"\n'
        'wrk.headers["x-portkey-provider"] = "openai"\n'
        f'wrk.headers["x-portkey-custom-host"] = "{upstream}/v1"\n'
        f"wrk.body = '{body.decode()}'\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    install()
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as s:
        work = Path(tmp)
        ours = scripts(work, str(s["stored_key"]))["post"]
        theirs = portkey_script(work, str(s["fast_url"]))
        port = free_port()
        portkey = subprocess.Popen(
            ["taskset", "-c", str(GATEWAY_CPU), "node", str(ENTRY), f"--port={port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_listening(port, portkey)
            url = f"http://127.0.0.1:{port}"
            targets = [
                ("direct", str(s["fast_url"]), ours, None),
                ("llmdispatcher", str(s["gateway_url"]), ours, _pid(s["gateway"])),
                ("portkey", url, theirs, portkey.pid),
            ]
            for _, target, script, _ in targets[1:]:
                wrk(target, script, 16, 2)  # warm up (Node's JIT too)
            print(f"load average {os.getloadavg()[0]:.2f}")
            print(f"{'target':<15}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
                  f"{'cpu us':>8}{'errs':>6}")  # fmt: skip
            for conc in (1, 16, 64):
                for name, target, script, pid in targets:
                    before = tree_cpu(pid)[1] if pid else 0.0
                    found = wrk(target, script, conc, args.seconds)
                    used = tree_cpu(pid)[1] - before if pid else None
                    cpu = "       -" if used is None else f"{used / found.requests * 1e6:8.0f}"
                    print(f"{name:<15}{conc:>5}{found.rps:9.0f}{found.p50_ms:9.2f}"
                          f"{found.p99_ms:9.2f}{cpu}{found.errors:6d}", flush=True)  # fmt: skip
            print(f"load average {os.getloadavg()[0]:.2f}")
        finally:
            portkey.terminate()
            portkey.wait(30)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
