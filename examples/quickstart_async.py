"""Ask one question and stream another, with asyncio.

Vendors come from the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY,
OLLAMA_HOST, ...). Run: python examples/quickstart_async.py [MODEL]
"""

import asyncio
import sys

from llmdispatcher import Dispatcher, Request


async def main(model: str) -> None:
    async with Dispatcher.from_env() as dispatcher:
        request = Request(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": "What is the capital of France? Answer in one sentence.",
                }
            ],
            max_tokens=40,
            temperature=0,
        )
        response = await dispatcher.send(request)
        print(f"{response.vendor}/{response.model}: {response.content}")
        print(f"tokens: {response.usage.total_tokens}, latency: {response.latency_s:.2f}s")

        async for chunk in dispatcher.stream(request):
            print(chunk.delta, end="", flush=True)
        print()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "local"))
