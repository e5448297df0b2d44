"""One fake vendor in chaos mode as a process of its own (the soak runs three, so that the
fakes do not share a GIL with each other or with the load generator)::

    python -m tests.fakes.chaos_serve --type openai --name a --seed 1 \\
        --chaos '{"rates": {"http_500": 0.02}, "stall_s": 3600}'

prints ``port N`` once it listens, then serves until stdin closes or SIGTERM.
``GET /_chaos`` reports what it served (``ChaosEngine.snapshot``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import orjson

from .anthropic_fake import FakeAnthropic
from .chaos import Chaos
from .gemini_fake import FakeGemini
from .ollama_fake import FakeOllama
from .openai_fake import FakeOpenAI
from .server import FakeServer

TYPES: dict[str, type[FakeServer]] = {
    "openai": FakeOpenAI,
    "anthropic": FakeAnthropic,
    "gemini": FakeGemini,
    "ollama": FakeOllama,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", choices=sorted(TYPES), required=True)
    parser.add_argument("--name", required=True, help="the vendor's name in answers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chaos", default="{}", help="Chaos fields as JSON (rates, sizes...)")
    args = parser.parse_args()
    options = orjson.loads(args.chaos)
    config = Chaos(name=args.name, seed=args.seed, **options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with TYPES[args.type]().set_chaos(config) as fake:
        print(f"port {fake.port}", flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()


if __name__ == "__main__":
    main()
