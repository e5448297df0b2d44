"""Optional: the same non-streaming cells against LiteLLM's proxy, for scale.

Installs ``litellm[proxy]`` into its own venv under /tmp (once; a few minutes and a few hundred
MB, so it is not part of ``bench/gateway.py``), then starts the mock upstream, ``llmdispatcher
serve`` and ``litellm --config ...`` (one worker each, pinned to CPU 0 in turn) against the same
mock and prints requests/s and latency for each at concurrency 1, 16 and 64:

    .venv/bin/python bench/litellm_compare.py              # install if needed, then measure
    .venv/bin/python bench/litellm_compare.py --seconds 5  # shorter cells

LiteLLM runs with the model cost map read locally (``LITELLM_LOCAL_MODEL_COST_MAP``), telemetry
and verbose logging off, and the gateway's bench key as its master key (recent releases refuse to
start without one), so both check the same bearer token on every request.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gateway import GATEWAY_CPU, KEY, ROOT, scripts, servers, start, wrk

VENV = Path(tempfile.gettempdir()) / "llmdispatcher-litellm-venv"
LITELLM = VENV / "bin" / "litellm"
ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_SCHEMA_UPDATE": "True",
    "LITELLM_MASTER_KEY": KEY,
}


def install() -> None:
    if LITELLM.exists():
        return
    print(f"installing litellm[proxy] into {VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "litellm[proxy]"], check=True)


def litellm_config(workdir: Path, upstream: str) -> Path:
    path = workdir / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-up-0123456789\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  telemetry: false\n"
    )
    return path


def wait_healthy(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health/liveliness", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"LiteLLM did not come up at {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=4011)
    args = parser.parse_args()
    install()
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as s:
        lua_files = scripts(Path(tmp))
        config = litellm_config(Path(tmp), str(s["fast_url"]))
        command = [str(LITELLM), "--config", str(config), "--port", str(args.port)]
        command += ["--num_workers", "1"]
        # No log line to wait for (its log level hides uvicorn's): readiness is the health URL.
        litellm, _ = start(command, GATEWAY_CPU, rb"()", ENV)
        url = f"http://127.0.0.1:{args.port}"
        try:
            wait_healthy(url)
            targets = {
                "direct": str(s["fast_url"]),
                "llmdispatcher": str(s["gateway_url"]),
                "litellm": url,
            }
            pids = {"llmdispatcher": s["gateway"], "litellm": litellm}
            print(f"{'target':<15}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu us':>8}")
            for conc in (1, 16, 64):
                for name, target in targets.items():
                    proc = pids.get(name)
                    pid = proc.pid if isinstance(proc, subprocess.Popen) else None
                    found = wrk(target, lua_files["post"], conc, args.seconds, pid)
                    cpu = f"{found.cpu_us:8.0f}" if found.cpu_us is not None else "       -"
                    print(f"{name:<15}{conc:>5}{found.rps:9.0f}{found.p50_ms:9.2f}"
                          f"{found.p99_ms:9.2f}{cpu}", flush=True)  # fmt: skip
        finally:
            litellm.terminate()
            litellm.wait(30)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
