"""Off means off: without ``Config.tracing`` and ``Config.cache`` a dispatcher that served a
request has imported nothing of OpenTelemetry and nothing of the cache."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import asyncio, sys
from llmdispatcher import Dispatcher, Request
from tests.unit.echo_vendor import EchoVendor

HI = Request(model="m", messages=[{"role": "user", "content": "hi"}])

async def main():
    async with Dispatcher(vendors=[EchoVendor("e")]) as d:
        await d.send(HI)
        [c async for c in d.stream(HI)]

asyncio.run(main())
loaded = [m for m in sys.modules if m.startswith(("opentelemetry", "llmdispatcher.cache",
          "llmdispatcher.observability.tracing", "llmdispatcher.lifecycle.cached"))]
print(",".join(loaded))
"""


def test_a_request_with_tracing_and_cache_off_imports_neither() -> None:
    from tests.cli import ROOT

    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == ""
