"""The same, from a plain script: no asyncio in sight.

Run: python examples/quickstart_sync.py [MODEL]
"""

import sys

from llmdispatcher import Dispatcher, Request

model = sys.argv[1] if len(sys.argv) > 1 else "local"
request = Request(
    model=model,
    max_tokens=40,
    temperature=0,
    messages=[{"role": "user", "content": "Name three primary colours."}],
)

with Dispatcher.from_env() as dispatcher:
    print(dispatcher.send_sync(request).content)
    for chunk in dispatcher.stream_sync(request):
        print(chunk.delta, end="", flush=True)
    print()
    stats = dispatcher.stats()
    print(f"requests: {stats.total_requests}, ok: {stats.successful_requests}")
