"""Replicas behind a real load balancer: HAProxy (Debian's package) in front of ``llmdispatcher
serve`` processes sharing the machine's Redis (limits, budgets, breakers, health) and PostgreSQL
(the ledger), with fake vendors behind (bench/cluster_vendor.py), under sustained load.

``--scenario proof`` runs, in one cluster, each while the load runs (half of it streamed):

* ``rolling``: SIGTERM one replica (it drains: ``/readyz`` 503, HAProxy takes it out), start it
  again: zero failed requests, no stream cut;
* ``kill``: SIGKILL one: only requests in flight on it fail, HAProxy stops sending to it;
* ``grow``: start a fourth replica (its slot is in HAProxy's config, down until it answers
  ``/readyz``): it takes traffic, no errors;
* ``vendor``: vendor ``a`` starts failing: every replica's breaker for it opens (shared over
  Redis) and ``a`` gets no request after that; clients never notice (fallback to ``b``);
* ``limits``: a tpm limit and a budget shared by the replicas hold exactly;
* then the ledger (PostgreSQL, one schema per run): exactly one row per request that finished on
  a surviving replica, at most one for those of the killed one, none doubled.

``--scenario scale`` measures requests/s through HAProxy for 1, 2 and 3 replicas in one run.

    python bench/cluster.py --scenario proof --json out.json
    python bench/cluster.py --scenario scale --seconds 20

Exit status 1 when an invariant was violated (``violations`` in the JSON), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cluster_load import Load, Outcome, wait_until  # noqa: E402

TPM = 5_000  # vendor c: 130 tokens per request -> at most 38 requests in one minute window
BUDGET_USD = Decimal("0.002")  # group "budgeted": 52,350 nano-USD per request -> at most 38
DRAIN_S = 3.0
PG = "postgresql://postgres:postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
# A connection refused or reset marks a replica down at once (not after its next checks).
MARK_DOWN = "observe layer4 error-limit 1 on-error mark-down"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    slot: int
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"r{self.slot}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    """The processes of one run, all under ``workdir``; every one is stopped on exit."""

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir, self.args = workdir, args
        self.procs: list[subprocess.Popen[bytes]] = []
        self.prefix = f"llmd-cluster-{uuid.uuid4().hex[:8]}:"
        self.vendors: dict[str, int] = {}
        self.replicas: list[Replica] = []
        self.lb_port = free_port()
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.ledger_url = ""

    # --- processes ----------------------------------------------------------------------------
    def spawn(self, command: list[str], log: str) -> subprocess.Popen[bytes]:
        sink = (self.workdir / log).open("ab")
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "LLMDISPATCHER_HOME": str(self.workdir / "home")},
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def wait_log(self, log: str, pattern: str, since: int = 0, timeout: float = 60) -> str:
        path = self.workdir / log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace")[since:] if path.exists() else ""
            found = re.search(pattern, text)
            if found:
                return found.group(0)
            time.sleep(0.05)
        raise RuntimeError(f"{log}: {pattern!r} never appeared: {text[-2000:]}")

    def start_vendor(self, name: str) -> None:
        script = str(ROOT / "bench" / "cluster_vendor.py")
        command = [sys.executable, script, "--chunks", str(self.args.chunks),
                   "--chunk-delay-ms", str(self.args.chunk_ms)]  # fmt: skip
        self.spawn(command, f"vendor-{name}.log")
        self.vendors[name] = int(self.wait_log(f"vendor-{name}.log", r"port (\d+)").split()[1])

    def config(self) -> Path:
        a, b = (f"http://127.0.0.1:{self.vendors[n]}/v1" for n in ("bad", "good"))
        text = f"""
state_url: '{self.args.redis}?prefix={self.prefix}'
ledger_url: '{self.ledger_url}'
retry_policy: {{max_retries: 0, base_delay: 0, jitter: false}}
circuit_breaker: {{failure_threshold: 3, cooldown_s: 600}}
model_groups:
  - name: chat
    deployments: [{{vendor: a, model: gpt-4o-mini}}, {{vendor: b, model: gpt-4o-mini}}]
  - {{name: limited, deployments: [{{vendor: c, model: gpt-4o-mini}}]}}
  - {{name: budgeted, deployments: [{{vendor: b, model: gpt-4o-mini}}]}}
  - {{name: fast, deployments: [{{vendor: b, model: gpt-4o-mini}}]}}
budgets:
  - {{scope: "group:budgeted", limit_usd: {BUDGET_USD}, period: total}}
gateway:
  drain_s: {DRAIN_S}
  shutdown_grace_s: 30
  metrics_public: true
vendors:
  a: {{type: openai, base_url: '{a}', api_key: sk-cluster}}
  b: {{type: openai, base_url: '{b}', api_key: sk-cluster}}
  c: {{type: openai, base_url: '{b}', api_key: sk-cluster, tpm: {TPM}}}
"""
        path = self.workdir / "llmdispatcher.yaml"
        path.write_text(text)
        return path

    def start_replica(self, replica: Replica) -> None:
        log = f"{replica.name}.log"
        since = (self.workdir / log).stat().st_size if (self.workdir / log).exists() else 0
        config = str(self.workdir / "llmdispatcher.yaml")
        command = [sys.executable, "-m", "llmdispatcher", "serve",
                   "--config", config, "--port", str(replica.port)]  # fmt: skip
        replica.proc = self.spawn(command, log)
        self.wait_log(log, r"listening on http://\S+", since)

    def start_haproxy(self, replicas: list[Replica]) -> None:
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
        text = f"""
global
    maxconn 4096
    stats socket {self.workdir}/haproxy.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 30s
    retries 3
    option redispatch
frontend gateway
    bind 127.0.0.1:{self.lb_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter 300ms fastinter 300ms downinter 300ms fall 2 rise 2 {MARK_DOWN}
    http-response set-header x-served-by %s
{servers}
"""
        config = self.workdir / "haproxy.cfg"
        config.write_text(text)
        self.haproxy = self.spawn(["haproxy", "-db", "-f", str(config)], "haproxy.log")

    def server_states(self) -> dict[str, str]:
        """HAProxy's view: server name -> UP, DOWN, MAINT... (its runtime API)."""
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(self.workdir / "haproxy.sock"))
            except OSError:
                return {}  # not started yet
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = [line.split(",") for line in data.decode().splitlines() if line and line[0] != "#"]
        servers = [row for row in rows if row[0] == "replicas" and row[1] != "BACKEND"]
        return {row[1]: row[17].split()[0] for row in servers}

    def wait_state(self, name: str, state: str, timeout: float = 30) -> None:
        wait_until(lambda: self.server_states().get(name) == state, timeout, f"{name} {state}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # a second one ends a replica's drain at once
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def ledger_schema(server: str) -> Iterator[str]:
    import psycopg

    schema = f"cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    sep = "&" if "?" in server else "?"
    try:
        yield f"{server}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


def forget_prefix(url: str, prefix: str) -> None:
    """Delete the run's Redis keys (a total budget's counter never expires by itself)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def ledger_rows(url: str) -> list[tuple[str, str, int]]:
    import psycopg

    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT user_id, model_group, cost_nano_usd FROM ledger_requests")
        return [(str(u), str(g), int(c or 0)) for u, g, c in found.fetchall()]


async def vendor_call(port: int, method: str, path: str, body: Any = None) -> Any:
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body) as r:
        return await r.json()


async def breaker_open(replica: Replica, vendor: str) -> bool:
    async with aiohttp.ClientSession() as session, session.get(f"{replica.url}/metrics") as r:
        text = await r.text()
    return f'llmdispatcher_breaker_state{{vendor="{vendor}"}} 2.0' in text


def rss_mib(replica: Replica) -> float:
    """A replica's resident memory now (Linux /proc)."""
    assert replica.proc is not None
    status = Path(f"/proc/{replica.proc.pid}/status").read_text()
    kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return round(kib / 1024, 1)


# --- the proof ---------------------------------------------------------------------------------
class Proof:
    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster, self.args = cluster, args
        self.violations: dict[str, list[str]] = {}
        self.results: dict[str, Any] = {}
        self.outcomes: list[Outcome] = []
        self.killed = ""

    def violated(self, name: str, detail: str) -> None:
        self.violations.setdefault(name, []).append(detail)

    def load(self, group: str = "chat") -> Load:
        url = f"http://127.0.0.1:{self.cluster.lb_port}"
        return Load(url, self.args.concurrency, group, self.args.chunks, stream_share=0.5)

    async def phase(self, name: str, action: Any) -> list[Outcome]:
        """Load for ``--phase-s`` seconds, ``action`` run one second in; every outcome kept."""
        load = self.load()
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        await asyncio.to_thread(action)
        await asyncio.sleep(self.args.phase_s)
        found = await load.stop(runner)
        self.outcomes += found
        failed = [o for o in found if not o.ok]
        self.results[name] = {
            "requests": len(found),
            "failed": len(failed),
            "streams": sum(o.stream for o in found),
            "served_by": dict(Counter(o.served_by for o in found if o.ok)),
        }
        return found

    async def run(self) -> dict[str, Any]:
        c = self.cluster
        r0, r1, r2, r3 = c.replicas
        for name in ("r0", "r1", "r2"):
            c.wait_state(name, "UP")

        def rolling() -> None:
            assert r0.proc is not None
            r0.proc.send_signal(signal.SIGTERM)
            c.wait_state("r0", "DOWN")
            r0.proc.wait(60)
            c.start_replica(r0)
            c.wait_state("r0", "UP")

        found = await self.phase("rolling", rolling)
        for o in found:
            if not o.ok:
                self.violated("rolling: a request failed", o.describe())

        kill_at: list[float] = []

        def kill() -> None:
            assert r1.proc is not None
            kill_at.append(time.monotonic())
            r1.proc.kill()
            r1.proc.wait()
            # Until here the dying process still held its listening socket: the kernel could
            # still accept a connection for it, so a request sent until then was in flight too.
            kill_at.append(time.monotonic())
            c.wait_state("r1", "DOWN")

        found = await self.phase("kill", kill)
        self.killed = "r1"
        signalled, dead = kill_at
        for o in found:
            if not o.ok and not (o.started < dead and o.ended > signalled):
                self.violated("kill: a request not in flight at the kill failed", o.describe())
        late = [o for o in found if o.started > dead + 2.0 and o.served_by == "r1"]
        if late:
            self.violated("kill: the load balancer still sent to the dead replica", str(len(late)))

        def grow() -> None:
            c.start_replica(r3)
            c.wait_state("r3", "UP")

        found = await self.phase("grow", grow)
        for o in found:
            if not o.ok:
                self.violated("grow: a request failed", o.describe())
        if not self.results["grow"]["served_by"].get("r3"):
            self.violated("grow: the new replica took no traffic", "")

        await self.vendor_fails([r0, r2, r3])
        await self.limits()
        return self.results

    async def vendor_fails(self, live: list[Replica]) -> None:
        bad = self.cluster.vendors["bad"]
        await vendor_call(bad, "POST", "/_fail", {"fail": True})
        before = (await vendor_call(bad, "GET", "/_stats"))["requests"]

        def all_open() -> None:
            wait_until(
                lambda: all(asyncio.run(breaker_open(r, "a")) for r in live), 30, "breakers open"
            )

        found = await self.phase("vendor", all_open)
        opened = (await vendor_call(bad, "GET", "/_stats"))["requests"]
        after = await self.phase("vendor_after", lambda: None)
        final = (await vendor_call(bad, "GET", "/_stats"))["requests"]
        logs = [(self.cluster.workdir / f"{r.name}.log").read_text() for r in live]
        self.results["vendor"] |= {
            "failed_calls_to_a": opened - before,
            "calls_to_a_after_all_open": final - opened,
            "replicas_told_by_another": sum("opened by replica" in log for log in logs),
        }
        if final != opened:
            self.violated("vendor: a replica kept sending to it", str(final - opened))
        for o in found + after:
            if not o.ok:
                self.violated("vendor: a request failed despite the fallback", o.describe())
        await vendor_call(bad, "POST", "/_fail", {"fail": False})

    async def limits(self) -> None:
        # One minute window for the tpm limit: start a burst early in a minute.
        if time.time() % 60 > 45:
            await asyncio.sleep(61 - time.time() % 60)
        started = time.time()
        url = f"http://127.0.0.1:{self.cluster.lb_port}"
        found: dict[str, list[Outcome]] = {}
        for group in ("limited", "budgeted"):
            load = Load(url, self.args.concurrency, group, self.args.chunks, stream_share=0.0)
            found[group] = await load.burst(self.args.burst)
            self.outcomes += found[group]
        if int(started // 60) != int(time.time() // 60):
            self.violated("limits: the burst straddled a minute (rerun)", "")
        limited_ok = sum(o.ok for o in found["limited"])
        budgeted_ok = sum(o.ok for o in found["budgeted"])
        self.results["limits"] = {
            "limited_ok": limited_ok,
            "limited_tokens": limited_ok * 130,
            "tpm": TPM,
            "budgeted_ok": budgeted_ok,
            "refused": Counter(o.status for o in found["limited"] + found["budgeted"] if not o.ok),
        }
        if limited_ok * 130 > TPM:
            self.violated("limits: tpm exceeded", f"{limited_ok * 130} > {TPM}")
        for o in found["limited"] + found["budgeted"]:
            if not o.ok and o.status != 429:
                self.violated("limits: a refusal that is not a 429", o.describe())

    def check_ledger(self) -> None:
        rows = ledger_rows(self.cluster.ledger_url)
        counts = Counter(user for user, _, _ in rows)
        lost_on_killed = 0
        for o in self.outcomes:
            n = counts.get(o.rid, 0)
            if n > 1:
                self.violated("ledger: a request recorded twice", o.describe())
            elif o.ok and n == 0 and o.served_by != self.killed:
                self.violated("ledger: a finished request has no row", o.describe())
            elif o.ok and n == 0:
                lost_on_killed += 1
        known = {o.rid for o in self.outcomes}
        strangers = [user for user in counts if user not in known]
        if strangers:
            self.violated("ledger: rows for requests never sent", str(strangers[:5]))
        spent = sum(nano for _, group, nano in rows if group == "budgeted")
        limit = int(BUDGET_USD * 10**9)
        if spent > limit:
            self.violated("limits: budget exceeded", f"{spent} > {limit} nano-USD")
        self.results["ledger"] = {
            "rows": len(rows),
            "requests": len(self.outcomes),
            "finished": sum(o.ok for o in self.outcomes),
            "lost_with_the_killed_replica": lost_on_killed,
            "budget_spent_nano_usd": spent,
            "budget_nano_usd": limit,
        }


async def proof(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.replicas = [Replica(slot, free_port()) for slot in range(4)]
    for replica in cluster.replicas[:3]:
        cluster.start_replica(replica)
    cluster.start_haproxy(cluster.replicas)
    run = Proof(cluster, args)
    await run.run()
    cluster.stop_all()  # every replica flushes its ledger buffer
    run.check_ledger()
    return {"results": run.results, "violations": run.violations}


async def scale(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.replicas = [Replica(slot, free_port()) for slot in range(3)]
    for replica in cluster.replicas:
        cluster.start_replica(replica)
    figures: dict[str, Any] = {}
    for n in (1, 2, 3):
        cluster.lb_port = free_port()
        cluster.start_haproxy(cluster.replicas[:n])
        for replica in cluster.replicas[:n]:
            cluster.wait_state(replica.name, "UP")
        url = f"http://127.0.0.1:{cluster.lb_port}"
        load = Load(url, args.concurrency, "fast", args.chunks, stream_share=0.0)
        await load.timed(1.0)  # warm up connections
        done = await load.timed(args.seconds)
        ok = sum(o.ok for o in done)
        figures[str(n)] = {
            "requests": len(done),
            "ok": ok,
            "rps": round(ok / args.seconds, 1),
            "rss_mib": [rss_mib(r) for r in cluster.replicas[:n]],
        }
        assert cluster.haproxy is not None
        cluster.haproxy.send_signal(signal.SIGTERM)
        cluster.haproxy.wait(10)
    return {"results": {"scale": figures}, "violations": {}}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("proof", "scale"), default="proof")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--phase-s", type=float, default=2.0, help="load after each action")
    parser.add_argument("--seconds", type=float, default=10.0, help="scale: per replica count")
    parser.add_argument("--chunks", type=int, default=10, help="stream length in chunks")
    parser.add_argument("--chunk-ms", type=float, default=50.0, help="between chunks")
    parser.add_argument("--burst", type=int, default=120, help="limits: requests per group")
    parser.add_argument("--postgres", default=os.environ.get("LLMDISPATCHER_TEST_POSTGRES_URL", PG))
    parser.add_argument("--redis", default=os.environ.get("LLMD_TEST_REDIS_URL", REDIS))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("haproxy") is None:
        print("haproxy is not installed: bash scripts/services.sh installs it", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="llmd-cluster-"))
    cluster = Cluster(workdir, args)
    try:
        cluster.start_vendor("bad")
        cluster.start_vendor("good")
        with ledger_schema(args.postgres) as url:
            cluster.ledger_url = url
            cluster.config()
            run = proof if args.scenario == "proof" else scale
            try:
                result = asyncio.run(run(cluster, args))
            finally:
                cluster.stop_all()  # before the schema goes
    finally:
        cluster.stop_all()
        forget_prefix(args.redis, cluster.prefix)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"] = {"cpus": os.cpu_count(), "concurrency": args.concurrency}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
