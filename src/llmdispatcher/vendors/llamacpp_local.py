"""llama.cpp in this process: a GGUF run by the ``xllamacpp`` runtime (the ``local`` extra).

The runtime's call blocks but releases the GIL, so each generation runs on a worker thread and
hands its chunks to the event loop; the loop never waits on the model. Every generation streams
internally, because only a streaming generation can be stopped: the runtime's chunk callback
returns True once the caller has gone, and llama.cpp frees the slot at the next token (or the
next ``n_batch`` prompt tokens while the prompt is still being read).

Admission is bounded: ``n_parallel`` generations run at once (llama.cpp slots, continuous
batching) and at most ``max_queue`` more wait. Past that, or while the recent time to first
token is over ``spill_ttft_s``, a request is refused at once with a non-retryable
``RateLimitError`` so the dispatcher spills it to the next vendor (local-first routing).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    InvalidRequestError,
    ModelNotFound,
    RateLimitError,
    VendorError,
    VendorServerError,
)
from ..limits import Limits
from ..streaming import StreamAccumulator
from ..types import Request, Response, StreamChunk
from .base import Capabilities, Health, Vendor
from .error_mapping import ErrorInfo, error_for
from .fanout import fan_out, refuse_streamed_n
from .llamacpp import LocalOptions
from .openai import chunk_from_openai, openai_request_body
from .openai_fields import OPENAI_ONLY_FIELDS, refuse_foreign

_DONE = object()
DEFAULT_MAX_TOKENS = 512  # without a bound llama.cpp generates until the context is full


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class LlamaCppEngine:
    """One loaded GGUF, shared by every request to it. Loaded on first use, off the loop."""

    def __init__(self, model_path: Path, options: LocalOptions, *, alias: str) -> None:
        self.model_path = model_path
        self.n_parallel = options.n_parallel
        self._options = options
        self._alias = alias
        self._server: Any = None
        self._listener_key = os.urandom(16).hex()
        self._load_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=options.n_parallel, thread_name_prefix="llmdispatcher-llamacpp"
        )

    async def _loaded(self) -> Any:
        async with self._load_lock:
            if self._server is None:
                self._server = await asyncio.to_thread(self._load)
        return self._server

    def _load(self) -> Any:
        try:
            import xllamacpp
        except ImportError:
            from ..local_models import LOCAL_INSTALL_HINT

            raise ConfigError(
                f"the local llama.cpp runtime is not installed: {LOCAL_INSTALL_HINT}"
            ) from None
        options, threads = self._options, self._options.n_threads
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_parallel = self.n_parallel
        params.n_ctx = options.n_ctx * self.n_parallel  # the runtime splits it across its slots
        params.n_batch = options.n_batch  # also how often a prompt being read can be cancelled
        params.n_ubatch = options.n_batch
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.sampling.seed = options.seed
        params.verbosity = 0  # llama.cpp logs to stderr from C++ otherwise
        params.model_alias = {self._alias}
        # The runtime always opens an HTTP listener on 127.0.0.1; lock it with a key nobody has.
        params.api_keys = [self._listener_key]
        try:
            return xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ConfigError(f"llama.cpp could not load {self.model_path}: {exc}") from None

    async def chunks(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The runtime's OpenAI-shaped stream chunks; closing the iterator stops generation."""
        server = await self._loaded()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        request = {**body, "stream": True, "return_progress": True}

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if "prompt_progress" not in chunk:
                put(chunk)
            return stop.is_set()  # True tells llama.cpp to stop this generation

        def generate() -> None:
            try:
                server.handle_chat_completions(request, on_chunk)
            except BaseException as exc:  # anything: a stream must never end quietly
                put(_Failed(exc))
            finally:
                put(_DONE)

        done = loop.run_in_executor(self._executor, generate)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            done.add_done_callback(lambda f: f.exception())

    async def slot_states(self) -> list[dict[str, Any]]:
        """llama.cpp's view of its slots (``is_processing``, tokens decoded, ...): what the
        runtime is really doing, e.g. whether a cancelled generation has stopped."""
        if self._server is None:
            return []
        url = f"{self._server.listening_address}/slots"
        key = self._listener_key

        def fetch() -> list[dict[str, Any]]:
            import json
            import urllib.request

            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=5) as answer:
                states: list[dict[str, Any]] = json.load(answer)
                return states

        return await asyncio.to_thread(fetch)

    def close(self) -> None:
        # The runtime has no close(): dropping the last reference stops its threads.
        self._server = None
        self._executor.shutdown(wait=False, cancel_futures=True)


class LlamaCppLocalVendor(Vendor):
    """In-process llama.cpp, as ``LlamaCppVendor(model_path=...)`` returns it. ``options`` says
    how the runtime runs the model (``LocalOptions``)."""

    pricing_name = "llamacpp"

    def __init__(
        self,
        *,
        model_path: str | Path,
        name: str = "llamacpp",
        aliases: Iterable[str] = (),
        options: LocalOptions | None = None,
        limits: Limits | None = None,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model_path {str(path)!r} is not a file: point it at a .gguf model")
        settings = options or LocalOptions()
        self.name = name
        self.model_name = path.stem
        self.served = tuple(dict.fromkeys((*aliases, self.model_name)))
        self.capabilities = Capabilities(
            streaming=True,
            tools=settings.tools,
            vision=False,
            json_mode=True,
            max_context=settings.n_ctx,
        )
        self.limits = limits or Limits()
        self.max_queue = settings.max_queue
        self.spill_ttft_s = settings.spill_ttft_s
        self._engine = LlamaCppEngine(path, settings, alias=self.served[0])
        self._slots = asyncio.Semaphore(settings.n_parallel)
        self._waiting = 0
        self._ttft_ewma: float | None = None

    def serves(self, model: str) -> bool:
        return model in self.served

    def check(self, request: Request) -> None:
        if request.model not in self.served:
            raise ModelNotFound(
                f"model {request.model!r} is not served by the local vendor {self.name!r}; "
                f"it serves: {', '.join(self.served)}",
                vendor=self.name,
                status=404,
            )
        # The runtime reads OpenAI's body (llama-server's code): all but custom tools.
        refuse_foreign(
            request,
            self.name,
            "llama.cpp",
            features=("logprobs", "strict", "parallel_tool_calls"),
            understood=OPENAI_ONLY_FIELDS,
        )
        super().check(request)

    async def send(self, request: Request) -> Response:
        if request.answer_count > 1:
            return await fan_out(self._send_one, request)
        return await self._send_one(request)

    async def _send_one(self, request: Request) -> Response:
        collected = StreamAccumulator(self.name, request.model)
        async for chunk in self.stream(request):
            collected.add(chunk)
        return collected.response()

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        refuse_streamed_n(request, self.name)
        self._admit()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            # aclosing: a consumer that stops early must stop the generation now, not at GC.
            async with aclosing(self._generate(request)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self._slots.release()

    def _admit(self) -> None:
        slots_busy = self._slots.locked()
        slow = self.spill_ttft_s is not None and (self._ttft_ewma or 0.0) > self.spill_ttft_s
        if slots_busy and (self._waiting >= self.max_queue or slow):
            why = (
                f"{self._waiting} requests already waiting"
                if not slow
                else f"recent time to first token {self._ttft_ewma:.2f}s"
            )
            raise RateLimitError(
                f"the local model is busy ({why}): spilling over", vendor=self.name, retryable=False
            )

    async def _generate(self, request: Request) -> AsyncGenerator[StreamChunk, None]:
        body = openai_request_body(request, max_tokens_field="max_tokens", stream=True)
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        started = asyncio.get_running_loop().time()
        first = True
        try:
            async with aclosing(self._engine.chunks(body)) as raws:
                async for raw in raws:
                    if raw.get("error"):
                        raise _runtime_error(raw["error"], self.name)
                    chunk = chunk_from_openai(raw, self.name, request.model)
                    if chunk is None:
                        continue
                    if first and (chunk.delta or chunk.tool_call_deltas):
                        first = False
                        self._observe_ttft(asyncio.get_running_loop().time() - started)
                    yield chunk
        except VendorError:
            raise
        except (ValueError, RuntimeError) as exc:  # the runtime's word for a bad request
            raise InvalidRequestError(
                f"the local runtime refused the request: {exc}", vendor=self.name, status=400
            ) from exc
        except Exception as exc:  # the runtime failed: retryable, and never a quiet end
            raise VendorServerError(f"the local runtime failed: {exc!r}", vendor=self.name) from exc

    def _observe_ttft(self, seconds: float) -> None:
        self._ttft_ewma = (
            seconds if self._ttft_ewma is None else (0.8 * self._ttft_ewma + 0.2 * seconds)
        )

    async def slot_states(self) -> list[dict[str, Any]]:
        return await self._engine.slot_states()

    async def health(self) -> Health:
        return Health(ok=True, latency_s=0.0, detail=f"in-process {self._engine.model_path.name}")

    async def list_models(self) -> list[str]:
        return list(self.served)

    async def aclose(self) -> None:
        self._engine.close()

    def __repr__(self) -> str:
        return f"LlamaCppVendor(name={self.name!r}, model_path={str(self._engine.model_path)!r})"


def _runtime_error(error: dict[str, Any], vendor: str) -> Exception:
    info = ErrorInfo(
        str(error.get("message") or "local runtime error"), error_type=error.get("type")
    )
    status = error.get("code")
    if not isinstance(status, int) or status < 400:
        return VendorServerError(info.message, vendor=vendor)
    return error_for(status, info, vendor=vendor)
