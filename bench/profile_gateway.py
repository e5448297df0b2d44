"""Where does the gateway's CPU go, per layer, under load?

Starts the pipeline of ``bench/gateway.py`` (a zero-delay mock upstream, ``llmdispatcher serve``
with a stored key and the ledger on, in a throwaway home), drives it with wrk at concurrency 64
and samples it with py-spy (``--nonblocking``, so the sampler never pauses it) for the same
seconds. Each sample's innermost frame is charged to a layer by its file (ours by module, the
libraries by name); the layer's share of the samples times the measured CPU per request gives
its microseconds per request:

    .venv/bin/python bench/profile_gateway.py                 # 20 s
    .venv/bin/python bench/profile_gateway.py --seconds 10 --top 30
    .venv/bin/python bench/profile_gateway.py --stream       # streams of 20 chunks at c=16

``--top`` also lists the hottest functions (self time). On a loaded machine a thread waiting
for the GIL is sampled as busy where it waits; ``--gil`` keeps only the samples that hold it
(and so leaves out C code that runs without it, such as SQLite's writes). py-spy comes with
the ``bench`` extra; it needs ptrace rights over the gateway (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import _pid, scripts, servers, wrk

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
# Checked in order: the first match names the layer of a file.
LAYERS = (
    ("llmdispatcher/gateway/", "gateway/ (auth, parsing, relay, metrics)"),
    ("llmdispatcher/vendors/http", "vendors/http*.py (our HTTP client)"),
    ("llmdispatcher/vendors/", "vendors/ (the OpenAI adapter)"),
    ("llmdispatcher/dispatcher.py", "dispatcher.py"),
    ("llmdispatcher/lifecycle/", "lifecycle/ (runner, scope, accounting)"),
    ("llmdispatcher/routing/", "routing/"),
    ("llmdispatcher/resilience/", "resilience/"),
    ("llmdispatcher/observability/ledger", "observability/ledger*"),
    ("llmdispatcher/observability/", "observability/ (events, stats)"),
    ("llmdispatcher/types.py", "types.py"),
    ("llmdispatcher/pricing/", "pricing/"),
    ("llmdispatcher/", "llmdispatcher (other)"),
    ("aiohttp/", "aiohttp (server)"),
    ("prometheus_client/", "prometheus_client"),
    ("sqlite3/", "sqlite3"),
    ("<string>", "dataclass __init__ (generated code)"),
    ("<frozen", "python (frozen modules: os.environ etc.)"),
    ("asyncio/runners.py", "event loop (uvloop's C code under run())"),
    ("asyncio/", "asyncio"),
    ("concurrent/futures/", "thread pool (concurrent.futures)"),
    ("uvloop/", "uvloop"),
    ("dataclasses.py", "dataclasses"),
    ("decimal.py", "decimal"),
)


# Inclusive: a sample counts for every part whose frame is anywhere on its stack.
PARTS = (
    ("the gateway's middleware and handler (all below it)", "gateway/app.py"),
    ("  parse_chat (body to Request)", "parse_chat ("),
    ("  Dispatcher.send (all below it)", "Dispatcher.send ("),
    ("    Router.decide", "Router.decide ("),
    ("    token estimate for routing", "estimate_prompt_tokens ("),
    ("    HttpVendor.send (adapter + client, as awaited)", "HttpVendor.send ("),
    ("vendors/http*.py anywhere (client, its callbacks, HttpVendor)", "vendors/http"),
    ("    accounting (cost, RequestFinished)", "lifecycle/accounting.py"),
    ("    event subscribers (stats, ledger queue, metrics)", "Dispatcher._emit ("),
    ("  completion_body (Response to JSON)", "completion_body ("),
    ("  Dispatcher.stream (all below it)", "Dispatcher._stream ("),
    ("    the vendor's stream (client, SSE, chunks)", "HttpVendor.stream ("),
    ("      SSE parse and chunk decoding", "vendors/sse.py"),
    ("    StreamRelay (fold, strip)", "lifecycle/relay.py"),
    ("  relay (write, drain)", "relay (llmdispatcher/gateway/relay.py"),
    ("    the stream encoder", "StreamEncoder."),
    ("  stored key: usage lease + settle", "gateway/key_usage.py"),
    ("Prometheus (anywhere)", "prometheus_client/"),
    ("the ledger (writer task and its thread)", "observability/ledger"),
    ("the key cache poller", "KeyCache.run ("),
    ("thread pool (anywhere)", "concurrent/futures/"),
    ("aiohttp (anywhere: its server, and under it everything above)", "aiohttp/"),
)
# A thread-pool worker blocked on its queue: py-spy can count it as active; it uses no CPU.
IDLE = ("_worker (concurrent/futures/thread.py:81)",)


def samples(raw: str) -> Iterator[tuple[str, int]]:
    """(stack, count) of py-spy's raw lines, idle waits left out."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and not stack.endswith(IDLE):
            yield stack, int(count)


def parts(raw: str) -> tuple[Counter[str], int]:
    found: Counter[str] = Counter()
    total = 0
    for stack, count in samples(raw):
        total += count
        for name, needle in PARTS:
            if needle in stack:
                found[name] += count
    return found, total


def layer_of(path: str) -> str:
    for needle, name in LAYERS:
        if needle in path:
            return name
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    return "python stdlib / other" if path.endswith(".py") else path


def parse(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """Self-time samples by layer and by function, and the total, from py-spy's raw format."""
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for stack, count in samples(raw):
        innermost = stack.rsplit(";", 1)[-1]
        found = FRAME.match(innermost)
        path = found.group("file") if found else innermost
        func = found.group("func") if found else innermost
        layers[layer_of(path)] += count
        short = path.split("site-packages/", 1)[-1].split("src/", 1)[-1]
        functions[f"{func} ({short})"] += count
        total += count
    return layers, functions, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=25, help="hottest functions to list")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks here")
    parser.add_argument(
        "--gil", action="store_true", help="only samples holding the GIL (no GIL waits)"
    )
    parser.add_argument(
        "--stream", action="store_true", help="streams of 20 chunks at c=16 instead of posts"
    )
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("needs py-spy: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as s:
        work, pid = Path(tmp), _pid(s["gateway"])
        url, post = str(s["gateway_url"]), scripts(work, str(s["stored_key"]))["post"]
        stream = scripts(work, str(s["stored_key"]))["stream"]
        conc, script = (16, stream) if args.stream else (64, post)
        wrk(url, script, conc, 3, pid)  # warm up
        out = work / "stacks.txt"
        command = [spy, "record", "--pid", str(pid), "--duration", str(args.seconds),
                   "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out),
                   *(["--gil"] if args.gil else [])]  # fmt: skip
        sampler = threading.Thread(
            target=subprocess.run, args=(command,), kwargs={"capture_output": True}
        )
        sampler.start()
        found = wrk(url, script, conc, args.seconds, pid)
        sampler.join()
        layers, functions, total = parse(out.read_text())
        inclusive, _ = parts(out.read_text())
        if args.raw:
            shutil.copy(out, args.raw)
    cpu = found.cpu_us or 0.0
    load = os.getloadavg()[0]
    print(f"wrk c={conc} for {args.seconds} s: {found.rps:.0f} req/s, {cpu:.0f} us CPU/request, "
          f"{found.errors} errors; {total} samples; load average {load:.2f}\n")  # fmt: skip
    print(f"{'layer (self time)':<44}{'share':>7}{'us/req':>8}")
    for name, count in layers.most_common():
        print(f"{name:<44}{count / total * 100:6.1f}%{count / total * cpu:8.1f}")
    print(f"\n{'part (inclusive: it and what it calls)':<52}{'share':>7}{'us/req':>8}")
    for name, _ in PARTS:
        share = inclusive[name] / total
        print(f"{name:<52}{share * 100:6.1f}%{share * cpu:8.1f}")
    print(f"\nhottest functions (self time), top {args.top}:")
    for name, count in functions.most_common(args.top):
        print(f"{count / total * 100:6.1f}%{count / total * cpu:7.1f} us  {name[:110]}")
    return 1 if found.errors else 0


if __name__ == "__main__":
    sys.exit(main())
