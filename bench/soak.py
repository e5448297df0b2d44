"""A soak through the real gateway with fake vendors that fail in every way a real one does.

Starts three fake vendors in chaos mode (``tests/fakes/chaos.py``; OpenAI, Anthropic and Gemini
wire formats, one process each), ``llmdispatcher serve`` with a model group that falls back
a -> b -> c, then sends ``--requests`` chat requests (a ``--stream-share`` of them streamed) at
``--concurrency`` and checks, for every request and at the end:

* it ended exactly once: a complete answer, or one clean error (JSON, status 429/502/503/504)
  — never a hang past ``--deadline``, never a 200 stream that fails before any text, never a
  stream cut without its end, never anything after the end;
* its text is exactly what one upstream sent (the fakes' answers are unique per request and
  rebuildable from their header: no duplicate, gap or splice goes unseen);
* the ledger has exactly one row per request, and ``/api/v1/stats`` agrees with it and with
  what the fakes served (attempts >= requests a fake answered);
* the gateway's RSS, open fds and pooled upstream connections are flat (``/proc``).

    python bench/soak.py --requests 20000 --concurrency 32       # prints a summary, then JSON
    python bench/soak.py --faults none --requests 2000           # the same without faults

Exit status 1 when an invariant was violated, 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
from tests.fakes.chaos import FAULTS, expected_text, header_of  # noqa: E402

KEY = "sk-soak-gateway-0123456789"
CLEAN_STATUSES = frozenset({429, 502, 503, 504})
# Relative weight of each fault; a vendor's total fault rate is spread over them so.
WEIGHTS = {
    "rate_limit_retry_after": 8, "rate_limit": 8, "http_500": 12, "http_502": 8, "http_503": 8,
    "http_529": 6, "refused": 2, "reset_before_head": 8, "reset_mid_body": 6,
    "reset_mid_stream": 8, "stall_after_first_token": 4, "trickle": 1, "malformed_json": 8,
    "invalid_utf8": 8, "long_line": 1, "gzip_bomb": 1, "oversized": 1,
}  # fmt: skip
VENDORS = (  # name, wire format, model, total fault rate
    ("a", "openai", "gpt-4o", 0.20),
    ("b", "anthropic", "claude-sonnet-4-6", 0.05),
    ("c", "google", "gemini-2.5-flash", 0.01),
)
EXAMPLES = 5  # kept per violation kind


@dataclass
class Outcomes:
    """What the client saw, per request class, and every invariant it broke."""

    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    served_by: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, list[str]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def violate(self, kind: str, rid: str, detail: str) -> None:
        self.violations[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(f"{rid}: {detail[:300]}")


# --- processes -------------------------------------------------------------------------------
Process = subprocess.Popen[bytes]


def start(
    command: list[str], pattern: bytes, env: dict[str, str], log: Path | None = None
) -> tuple[Process, str]:
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
        cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + 120
    while (found := re.search(pattern, seen)) is None:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{command[:5]} did not start: {seen.decode(errors='replace')}")
        seen += line
    threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
    return proc, found.group(1).decode()


def _drain(stream: IO[bytes], log: Path | None) -> None:
    """Keep reading a server's output (a full pipe would block it); keep it if asked."""
    if log is None:
        for _ in stream:
            pass
        return
    with log.open("ab") as sink:
        for line in stream:
            sink.write(line)


def stop(proc: Process) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def fault_rates(total: float) -> dict[str, float]:
    weight = sum(WEIGHTS.values())
    return {fault: total * w / weight for fault, w in WEIGHTS.items() if total > 0}


def config_text(ports: dict[str, str], ledger: Path, args: argparse.Namespace) -> str:
    vendors = []
    for name, kind, _, _ in VENDORS:
        base = f"http://127.0.0.1:{ports[name]}" + ("/v1" if kind == "openai" else "")
        vendors.append(
            f"  {name}: {{type: {kind}, base_url: '{base}', api_key: key-{name}-0123456789, "
            # a whole answer may take the deadline plus one read timeout, trickle or not
            f"timeout: {args.read_timeout}, answer_timeout: {args.timeout + args.read_timeout}}}"
        )
    groups = []
    for k, (name, _, model, _) in enumerate(VENDORS):
        fallback = f", fallbacks: [soak-{VENDORS[k + 1][0]}]" if k + 1 < len(VENDORS) else ""
        group = "soak" if k == 0 else f"soak-{name}"
        deployment = f"{{vendor: {name}, model: {model}}}"
        groups.append(f"  - {{name: {group}, deployments: [{deployment}]{fallback}}}")
    return "\n".join(
        [
            f"timeout: {args.timeout}",
            "retry_policy: {max_retries: 2, base_delay: 0.05, max_delay: 0.5}",
            f"ledger_url: 'sqlite:///{ledger}'",
            "model_groups:", *groups,
            "gateway:", f"  api_keys: [{{name: soak, key: {KEY}}}]",
            "vendors:", *vendors, "",
        ]
    )  # fmt: skip


@contextmanager
def servers(workdir: Path, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    fakes, ports = {}, {}
    try:
        for name, kind, _, total in VENDORS:
            rates = fault_rates(total if args.faults == "default" else 0.0)
            chaos = orjson.dumps({"rates": rates, **args.chaos_options}).decode()
            fake_type = "gemini" if kind == "google" else kind
            command = [sys.executable, "-m", "tests.fakes.chaos_serve", "--type", fake_type,
                       "--name", name, "--seed", str(args.seed), "--chaos", chaos]  # fmt: skip
            fakes[name], ports[name] = start(command, rb"port (\d+)", env)
        ledger = workdir / "ledger.db"
        config = workdir / "soak.yaml"
        config.write_text(config_text(ports, ledger, args))
        command = [sys.executable, "-m", "llmdispatcher", "serve", "--config", str(config),
                   "--port", "0"]  # fmt: skip
        gateway, url = start(command, rb"listening on (http://\S+)", env, args.gateway_log)
        try:
            yield {"gateway": gateway, "url": url, "ports": ports, "ledger": ledger}
        finally:
            stop(gateway)
    finally:
        for proc in fakes.values():
            stop(proc)


# --- /proc -----------------------------------------------------------------------------------
def sample(pid: int, ports: set[int]) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss, peak = (
        int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
        for field in ("VmRSS", "VmHWM")
    )
    fds = os.listdir(f"/proc/{pid}/fd")
    inodes = set()
    for fd in fds:
        with suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    upstream = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        remote_port = int(cols[2].split(":")[1], 16)
        if cols[3] == "01" and cols[9] in inodes and remote_port in ports:
            upstream += 1
    return {"t": round(time.monotonic(), 1), "rss_mib": round(rss, 1),
            "peak_rss_mib": round(peak, 1),
            "fds": len(fds), "upstream": upstream}  # fmt: skip


# --- the client --------------------------------------------------------------------------------
def body_for(rid: str, stream: bool) -> bytes:
    messages = [{"role": "user", "content": f"[[id:{rid}]] Tell me something."}]
    return orjson.dumps({"model": "soak", "messages": messages, "stream": stream, "user": rid})


def _partial_header(rid: str) -> re.Pattern[str]:
    return re.compile(rf"<{re.escape(rid)}\|[^|<>]*(\|\d*(\|\d*)?)?")


def check_text(out: Outcomes, rid: str, text: str, *, complete: bool) -> None:
    expected = expected_text(text)
    head = header_of(text)
    if not complete and head is None and _partial_header(rid).fullmatch(text):
        return  # cut inside the header itself: a prefix of some upstream's answer for rid
    if expected is None or head is None or head[0] != rid:
        out.violate("answer not from one upstream", rid, f"header {text[:60]!r}")
    elif complete and text != expected:
        kind = "duplicated text" if len(text) > len(expected) else "text gap or splice"
        out.violate(kind, rid, f"got {len(text)} chars, upstream sent {len(expected)}")
    elif not complete and not expected.startswith(text):
        out.violate("text gap or splice", rid, f"partial text is not a prefix ({len(text)})")
    else:
        out.served_by[head[1]] += 1


def check_error(out: Outcomes, rid: str, status: int, body: bytes, where: str) -> None:
    out.statuses[f"{where} {status}"] += 1
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        out.violate("error body is not a JSON error", rid, f"{status} {body[:200]!r}")
        return
    shown = out.error_examples.setdefault(f"{where} {status}", [])
    if len(shown) < 3:
        shown.append(f"{rid}: {str(message)[:200]}")
    if status not in CLEAN_STATUSES:
        out.violate(f"error status {status}", rid, str(message))


async def plain(session: aiohttp.ClientSession, url: str, rid: str, out: Outcomes) -> None:
    async with session.post(url, data=body_for(rid, False)) as resp:
        body = await resp.read()
        if resp.status != 200:
            out.counts["plain error"] += 1
            check_error(out, rid, resp.status, body, "plain")
            return
    try:
        text = orjson.loads(body)["choices"][0]["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        out.violate("200 body is not a completion", rid, repr(body[:200]))
        return
    out.counts["plain ok"] += 1
    check_text(out, rid, text, complete=True)


async def streamed(session: aiohttp.ClientSession, url: str, rid: str, out: Outcomes) -> None:
    async with session.post(url, data=body_for(rid, True)) as resp:
        if resp.status != 200:
            out.counts["stream error before the head"] += 1
            check_error(out, rid, resp.status, await resp.read(), "stream")
            return
        text, error, done, after_end, buffer = [], None, False, False, b""
        async for data in resp.content.iter_any():
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                payload = event.removeprefix(b"data: ")
                if done or error is not None:
                    after_end = True
                elif payload == b"[DONE]":
                    done = True
                else:
                    obj = orjson.loads(payload)
                    if "error" in obj:
                        error = obj["error"]
                    else:
                        text += [c["delta"].get("content") or "" for c in obj.get("choices", ())]
    joined = "".join(text)
    if after_end:
        out.violate("data after the end of a stream", rid, repr(buffer[:100]))
    if error is not None:
        out.counts["stream broken after text" if joined else "stream error with no text"] += 1
        if not joined:
            out.violate("200 stream failed before any text", rid, str(error.get("message")))
        else:
            check_text(out, rid, joined, complete=False)
    elif not done:
        out.violate("stream cut without an end", rid, f"{len(joined)} chars, no [DONE]")
    else:
        out.counts["stream ok"] += 1
        check_text(out, rid, joined, complete=True)


async def one(session: aiohttp.ClientSession, url: str, rid: str, stream: bool,
              out: Outcomes, deadline: float) -> None:  # fmt: skip
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            await (streamed if stream else plain)(session, url, rid, out)
    except TimeoutError:
        out.violate("hang past the deadline", rid, f"stream={stream}, > {deadline:g} s")
    except (aiohttp.ClientError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        out.violate("gateway connection failed", rid, f"stream={stream}: {exc!r}")
    out.latencies.append(time.monotonic() - started)


async def load(url: str, args: argparse.Namespace, pid: int, ports: set[int]) -> dict[str, Any]:
    out, samples = Outcomes(), []
    counter = itertools.count()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    target = f"{url}/v1/chat/completions"
    started = time.monotonic()

    async def worker() -> None:
        while (n := next(counter)) < args.requests:
            rid = f"s{args.seed}-{n}"
            stream = (n * 7919 % 1000) < args.stream_share * 1000
            await one(session, target, rid, stream, out, args.deadline)

    async def sampler() -> None:
        while True:
            samples.append(sample(pid, ports) | {"done": len(out.latencies)})
            if not args.quiet:
                print(f"  {len(out.latencies):>8} done  {samples[-1]}", file=sys.stderr)
            await asyncio.sleep(args.sample_s)

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        watch = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        watch.cancel()
        samples.append(sample(pid, ports) | {"done": len(out.latencies)})
        async with session.get(f"{url}/api/v1/stats") as resp:
            stats = await resp.json()
        fakes = {}
        for name, port in ports_by_name(args).items():
            async with session.get(f"http://127.0.0.1:{port}/_chaos") as resp:
                fakes[name] = await resp.json()
    await asyncio.sleep(args.settle_s)  # the gateway lets go of what it no longer needs
    samples.append(sample(pid, ports) | {"done": len(out.latencies), "idle": True})
    return {"out": out, "elapsed": elapsed, "samples": samples, "stats": stats, "fakes": fakes}


def ports_by_name(args: argparse.Namespace) -> dict[str, int]:
    return dict(args.ports)


# --- the checks after the run ------------------------------------------------------------------
def check_ledger(path: Path, args: argparse.Namespace, out: Outcomes) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT user_id, status FROM ledger_requests").fetchall()
    per_request = Counter(user for user, _ in rows)
    statuses = Counter(status for _, status in rows)
    expected = {f"s{args.seed}-{n}" for n in range(args.requests)}
    missing = expected - set(per_request)
    doubled = {rid: n for rid, n in per_request.items() if n > 1}
    for rid in sorted(missing)[:EXAMPLES]:
        out.violate("no ledger row", rid, "the ledger has no row for this request")
    if len(missing) > EXAMPLES:
        out.violations["no ledger row"] += len(missing) - EXAMPLES
    for rid, n in sorted(doubled.items())[:EXAMPLES]:
        out.violate("several ledger rows", rid, f"{n} rows")
    if len(doubled) > EXAMPLES:
        out.violations["several ledger rows"] += len(doubled) - EXAMPLES
    return {"rows": len(rows), "statuses": dict(statuses), "missing": len(missing),
            "doubled": len(doubled)}  # fmt: skip


def check_stats(found: dict[str, Any], ledger: dict[str, Any], fakes: dict[str, Any],
                out: Outcomes) -> None:  # fmt: skip
    total, ok = found["total_requests"], found["successful_requests"]
    if total != ledger["rows"]:
        out.violate(
            "stats disagree with the ledger", "-", f"stats {total}, ledger {ledger['rows']}"
        )
    if ok != ledger["statuses"].get("ok", 0):
        detail = f"stats ok {ok}, ledger ok {ledger['statuses'].get('ok', 0)}"
        out.violate("stats disagree with the ledger", "-", detail)
    answered = out.counts["plain ok"] + out.counts["stream ok"]
    if ok != answered:
        out.violate("stats disagree with the clients", "-", f"stats ok {ok}, answered {answered}")
    for name, fake in fakes.items():
        attempts = found["vendor_stats"].get(name, {}).get("requests", 0)
        if fake["served"] > attempts:
            detail = f"vendor {name} answered {fake['served']} requests, stats count {attempts}"
            out.violate("requests sent but not counted", "-", detail)


def check_flat(samples: list[dict[str, Any]], concurrency: int, out: Outcomes) -> dict[str, Any]:
    """Early (10 % of the load done) against the end of the load and after it settled."""
    busy = [s for s in samples if not s.get("idle")]
    total = busy[-1]["done"] or 1
    early = next((s for s in busy if s["done"] >= total * 0.1), busy[0])
    end, idle = busy[-1], samples[-1]
    report = {"early": early, "end": end, "idle": idle, "rss_max_mib": idle["peak_rss_mib"]}
    rss_growth = end["rss_mib"] - early["rss_mib"]
    if rss_growth > max(32.0, early["rss_mib"] * 0.15):
        out.violate("RSS grew", "-", f"{early['rss_mib']} -> {end['rss_mib']} MiB")
    if idle["peak_rss_mib"] > end["rss_mib"] + 256:
        detail = f"peak {idle['peak_rss_mib']} MiB against {end['rss_mib']} MiB at the end"
        out.violate("unbounded buffering (RSS peak)", "-", detail)
    if idle["fds"] > early["fds"] + 16:
        out.violate("open fds grew", "-", f"{early['fds']} -> {idle['fds']} (idle)")
    if idle["upstream"] > 3 * concurrency:
        out.violate("pooled connections grew", "-", f"{idle['upstream']} open when idle")
    return report


# --- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp), args) as s:
        args.ports = {name: int(port) for name, port in s["ports"].items()}
        pid = s["gateway"].pid
        found = asyncio.run(load(s["url"], args, pid, set(args.ports.values())))
        stop(s["gateway"])  # the ledger writes what it still holds on the way out
        out: Outcomes = found["out"]
        ledger = check_ledger(s["ledger"], args, out)
    check_stats(found["stats"], ledger, found["fakes"], out)
    flat = check_flat(found["samples"], args.concurrency, out)
    latencies = sorted(out.latencies) or [0.0]
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "stream_share": args.stream_share,
        "faults": args.faults,
        "seed": args.seed,
        "seconds": round(found["elapsed"], 1),
        "requests_per_s": round(args.requests / found["elapsed"], 1),
        "latency_p50_s": round(latencies[len(latencies) // 2], 4),
        "latency_max_s": round(latencies[-1], 3),
        "outcomes": dict(out.counts),
        "error_statuses": dict(out.statuses),
        "error_examples": out.error_examples,
        "answered_by": dict(out.served_by),
        "violations": dict(out.violations),
        "examples": out.examples,
        "resources": flat,
        "ledger": ledger,
        "stats": {k: v for k, v in found["stats"].items() if k != "vendor_stats"}
        | {
            "vendor_attempts": {n: v["requests"] for n, v in found["stats"]["vendor_stats"].items()}
        },
        "fakes": found["fakes"],
        "ok": not out.violations,
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"soak: {result['requests']} requests, concurrency {result['concurrency']}, "
        f"{result['stream_share']:.0%} streamed, faults {result['faults']} (seed {result['seed']})",
        f"  {result['seconds']} s, {result['requests_per_s']} req/s, "
        f"p50 {result['latency_p50_s']} s,"
        f" max {result['latency_max_s']} s",
        f"  outcomes: {result['outcomes']}",
        f"  error statuses: {result['error_statuses']}",
        f"  answered by: {result['answered_by']}",
        "  faults injected: " + ", ".join(
            f"{n}: {sum(f['faults'].values())}/{f['served']}" for n, f in result["fakes"].items()),
        f"  stats: {result['stats']}",
        f"  ledger: {result['ledger']}",
    ]  # fmt: skip
    res = result["resources"]
    lines.append(
        "  gateway RSS {e} -> {n} MiB (peak {m}, idle {i}); fds {ef} -> {nf} (idle {if_}); "
        "pooled upstream {eu} -> {nu} (idle {iu})".format(
            e=res["early"]["rss_mib"],
            n=res["end"]["rss_mib"],
            m=res["rss_max_mib"],
            i=res["idle"]["rss_mib"],
            ef=res["early"]["fds"],
            nf=res["end"]["fds"],
            if_=res["idle"]["fds"],
            eu=res["early"]["upstream"],
            nu=res["end"]["upstream"],
            iu=res["idle"]["upstream"],
        )
    )
    if result["violations"]:
        lines.append("INVARIANTS VIOLATED:")
        for kind, count in sorted(result["violations"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:>7}  {kind}")
            lines += [f"           e.g. {e}" for e in result["examples"].get(kind, ())]
    else:
        lines.append("every invariant held")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream-share", type=float, default=0.5)
    parser.add_argument("--faults", choices=("default", "none"), default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=4.0, help="the gateway's deadline")
    parser.add_argument("--read-timeout", type=float, default=1.5, help="vendor read timeout")
    hang = "a request taking longer hangs (default: timeout + 2 x read timeout + 5)"
    parser.add_argument("--deadline", type=float, default=0.0, help=hang)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--chaos", default="{}", help="more Chaos fields as JSON (sizes...)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--gateway-log", type=Path, default=None, help="keep the gateway's log")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.deadline = args.deadline or args.timeout + 2 * args.read_timeout + 5
    args.chaos_options = orjson.loads(args.chaos)
    unknown = set(args.chaos_options.get("rates", {})) - set(FAULTS)
    if unknown:
        parser.error(f"--chaos: unknown faults {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    print(summary(result))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
