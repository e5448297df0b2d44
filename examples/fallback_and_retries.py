"""Retries with backoff, a fallback vendor, and a routing rule, configured in Python.

PRIMARY_URL / BACKUP_URL point at two OpenAI-compatible servers (keys in PRIMARY_KEY /
BACKUP_KEY). Run: python examples/fallback_and_retries.py
"""

import asyncio
import os

from llmdispatcher import Config, Dispatcher, Request, RetryPolicy, RoutingCondition, RoutingRule
from llmdispatcher.vendors import OpenAIVendor

config = Config(
    default_vendor="primary",
    fallback_vendors=("backup",),
    timeout=20.0,
    retry_policy=RetryPolicy(max_retries=2, backoff="exponential", base_delay=0.2, max_delay=2),
    routing_rules=(
        # Short, cold requests for small models go to the backup first.
        RoutingRule(
            vendor="backup",
            priority=1,
            condition=RoutingCondition(model_pattern="*-mini", max_tokens=100, temperature_max=0.5),
        ),
    ),
)


async def main() -> None:
    vendors = [
        OpenAIVendor(
            name="primary", base_url=os.environ["PRIMARY_URL"], api_key=os.environ["PRIMARY_KEY"]
        ),
        OpenAIVendor(
            name="backup", base_url=os.environ["BACKUP_URL"], api_key=os.environ["BACKUP_KEY"]
        ),
    ]
    async with Dispatcher(config, vendors=vendors) as dispatcher:
        for model, max_tokens in (("gpt-4o", 500), ("gpt-4o-mini", 50)):
            request = Request(
                model=model,
                max_tokens=max_tokens,
                temperature=0,
                messages=[{"role": "user", "content": "Say hi."}],
            )
            response = await dispatcher.send(request)
            tries = " -> ".join(f"{a.vendor}:{a.status}" for a in response.attempts)
            print(f"{model}: answered by {response.vendor} after {tries}")
        stats = dispatcher.stats()
        print(f"retries: {stats.retries}, fallbacks: {stats.fallbacks}")


if __name__ == "__main__":
    asyncio.run(main())
