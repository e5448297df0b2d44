"""The one orchestration path: route -> (retry -> vendor)* -> fallback, for send and stream.

A request gets a plan (the vendors to try, in order), a total deadline, and then, per vendor, up
to ``retry_policy.max_retries + 1`` attempts. Retryable failures wait (backoff or the vendor's
hint) and try again; a non-retryable one moves to the next vendor; a bad request (the caller's
fault, not the vendor's) stops at once. A stream is "opened" when its first text or tool-call
piece arrives: failures before that point are retried and failed over like any other, failures
after it raise ``StreamInterrupted`` with the text already delivered, so the caller never sees
text twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .clock import Clock, SystemClock
from .config import Config
from .errors import (
    ConfigError,
    ContextLengthExceeded,
    InvalidRequestError,
    ModelNotFound,
    NoVendorsRegistered,
    StreamInterrupted,
    UnsupportedRequest,
    VendorError,
    VendorTimeout,
    VendorUnavailable,
)
from .observability.events import (
    AttemptFinished,
    Event,
    FallbackTaken,
    RequestFinished,
    RetryScheduled,
    Subscriber,
)
from .observability.stats import Stats, StatsCollector
from .resilience.deadline import Deadline
from .routing.plan import RoutePlan, plan_route
from .sync import LoopThread
from .types import Attempt, FinishReason, Request, Response, StreamChunk, Usage
from .vendors.base import Vendor

T = TypeVar("T")
logger = logging.getLogger("llmdispatcher")


@dataclass(slots=True)
class _Outcome:
    """What the attempt loop hands back: the winning vendor's result and the tries so far."""

    value: Any
    vendor: str
    started: float
    attempts: list[Attempt]


@dataclass(slots=True)
class _OpenedStream:
    """A vendor stream that has produced its first text or tool-call piece (or ended)."""

    chunks: AsyncIterator[StreamChunk]
    head: list[StreamChunk] = field(default_factory=list)
    ended: bool = False


class Dispatcher:
    """Sends chat requests to the right vendor, retrying and falling back as configured.

    ``clock`` and ``rng`` are injectable so that backoff and deadlines are testable without
    real sleeps.
    """

    def __init__(
        self,
        config: Config | None = None,
        vendors: Iterable[Vendor] = (),
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or Config()
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._vendors: dict[str, Vendor] = {}
        self._stats = StatsCollector()
        self._subscribers: list[Subscriber] = [self._stats.on_event]
        self._sync = LoopThread()
        # One-line facts a front end should show its user (e.g. "using the built-in model").
        self.notices: list[str] = []
        for spec in self.config.vendors:
            from .vendors import vendor_class

            self.register(vendor_class(spec.type)(**spec.options))
        for vendor in vendors:
            self.register(vendor)
        if self.config.enable_logging:
            from .observability.logging import EventLogger, enable_stderr_logging

            enable_stderr_logging()
            self.subscribe(EventLogger(self.secrets, log_content=self.config.log_content).on_event)

    @classmethod
    def from_env(cls, config: Config | None = None, **kwargs: Any) -> Dispatcher:
        """A dispatcher with every vendor whose key (or host) is set in the environment
        (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``, ``OLLAMA_HOST``, ...).

        With none set, the built-in local model (SmolLM2, in-process, model names ``local`` and
        ``smollm2``) when the ``local`` extra is installed; else ``NoVendorsRegistered`` saying
        how to configure one."""
        from . import local_models
        from .vendors import vendors_from_env

        vendors = vendors_from_env()
        if not vendors:
            default = local_models.embedded_default()
            if default is None:
                raise NoVendorsRegistered(
                    local_models.NOTHING_CONFIGURED + local_models.LOCAL_INSTALL_HINT
                )
            logger.info(local_models.EMBEDDED_DEFAULT_NOTICE)
            dispatcher = cls(config, vendors=[default], **kwargs)
            dispatcher.notices.append(local_models.EMBEDDED_DEFAULT_NOTICE)
            return dispatcher
        return cls(config, vendors=vendors, **kwargs)

    # --- registry and events ---------------------------------------------------------------
    def register(self, vendor: Vendor) -> None:
        if vendor.name in self._vendors:
            raise ConfigError(
                f"a vendor named {vendor.name!r} is already registered; "
                "give the second one another name= "
            )
        self._vendors[vendor.name] = vendor

    @property
    def vendors(self) -> dict[str, Vendor]:
        return dict(self._vendors)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(event)`` for every dispatcher event (see observability.events)."""
        self._subscribers.append(subscriber)

    def _emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for v in self._vendors.values() for s in v.secrets())

    def stats(self) -> Stats:
        return self._stats.snapshot()

    def plan(self, request: Request) -> RoutePlan:
        """The vendors this request would try, in order, without sending anything."""
        config = self.config
        unknown = [v for v in config.fallback_vendors if v not in self._vendors]
        if unknown:
            raise ConfigError(
                f"fallback_vendors names unregistered vendor(s) "
                f"{', '.join(unknown)}; registered: {', '.join(self._vendors)}"
            )
        return plan_route(
            request,
            list(self._vendors),
            config.routing_rules,
            config.default_vendor,
            config.fallback_vendors,
        )

    # --- send --------------------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        """Send one request and return the complete answer."""
        request_id = os.urandom(8).hex()
        started = self._clock.now()
        outcome: _Outcome | None = None
        try:
            outcome = await self._attempt_loop(
                request, request_id, lambda vendor: vendor.send(request)
            )
        except BaseException as exc:
            self._finish(request_id, request, None, started, None, exc, stream=False)
            raise
        response: Response = outcome.value
        attempts = self._succeed(request_id, request, outcome, None)
        response = replace(
            response, latency_s=self._clock.now() - started, attempts=tuple(attempts)
        )
        self._finish(
            request_id, request, response, started, None, None, stream=False, attempts=attempts
        )
        return response

    # --- stream -------------------------------------------------------------------------------
    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream one answer. Text and tool-call pieces arrive as they come; the last chunk
        carries ``finish_reason`` and ``usage``."""
        request_id = os.urandom(8).hex()
        started = self._clock.now()
        try:
            outcome = await self._attempt_loop(
                request, request_id, lambda vendor: self._open_stream(vendor, request)
            )
        except BaseException as exc:
            self._finish(request_id, request, None, started, None, exc, stream=True)
            raise
        opened: _OpenedStream = outcome.value
        ttft = self._clock.now() - started
        final = _FinalChunk(outcome.vendor, request.model)
        error: BaseException | None = None
        try:
            async with aclosing(opened.chunks):  # type: ignore[type-var]
                for chunk in opened.head:
                    if final.take(chunk):
                        yield final.strip(chunk)
                if not opened.ended:
                    async for chunk in self._rest(opened.chunks, outcome.vendor, final):
                        yield chunk
            yield final.chunk()
        except BaseException as exc:
            error = exc
            raise
        finally:
            attempts = self._stream_attempt(request_id, request, outcome, ttft, error)
            usage = final.usage if error is None else None
            self._finish(
                request_id,
                request,
                final.as_response(),
                started,
                ttft,
                error,
                stream=True,
                attempts=attempts,
                usage=usage,
            )

    async def _open_stream(self, vendor: Vendor, request: Request) -> _OpenedStream:
        chunks = vendor.stream(request)
        opened = _OpenedStream(chunks)
        try:
            async for chunk in chunks:
                opened.head.append(chunk)
                if chunk.delta or chunk.tool_call_deltas:
                    return opened
        except BaseException:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        opened.ended = True
        return opened

    async def _rest(
        self, chunks: AsyncIterator[StreamChunk], vendor: str, final: _FinalChunk
    ) -> AsyncIterator[StreamChunk]:
        try:
            async for chunk in chunks:
                if final.take(chunk):
                    yield final.strip(chunk)
        except VendorError as exc:
            raise StreamInterrupted(
                f"the stream failed after output reached the caller: {exc}",
                vendor=vendor,
                partial_text=final.text,
                status=exc.status,
            ) from exc

    def _stream_attempt(
        self,
        request_id: str,
        request: Request,
        outcome: _Outcome,
        ttft: float,
        error: BaseException | None,
    ) -> list[Attempt]:
        status = "ok" if error is None else type(error).__name__
        attempt = Attempt(
            outcome.vendor,
            request.model,
            status,
            None if error is None else str(error),
            self._clock.now() - outcome.started,
        )
        self._emit(AttemptFinished(request_id, attempt, ttft_s=ttft))
        return [*outcome.attempts, attempt]

    # --- the attempt loop ---------------------------------------------------------------------
    async def _attempt_loop(
        self, request: Request, request_id: str, attempt: Callable[[Vendor], Awaitable[T]]
    ) -> _Outcome:
        plan = self.plan(request)
        policy = self.config.retry_policy
        deadline = Deadline.after(self._clock, request.timeout or self.config.timeout)
        attempts: list[Attempt] = []
        error: VendorError | None = None
        for position, name in enumerate(plan.vendors):
            vendor = self._vendors[name]
            if error is not None:
                self._emit(
                    FallbackTaken(
                        request_id, plan.vendors[position - 1], name, type(error).__name__
                    )
                )
            has_fallback = position < len(plan.vendors) - 1
            for retry in range(policy.max_retries + 1):
                started = self._clock.now()
                try:
                    vendor.check(request)
                    async with asyncio.timeout(deadline.remaining()):
                        value = await attempt(vendor)
                except TimeoutError:
                    error = VendorTimeout(
                        f"the request's total deadline of {deadline.total_s:g}s ran out",
                        vendor=name,
                        retryable=False,
                    )
                except VendorError as exc:
                    error = exc
                else:
                    return _Outcome(value, name, started, attempts)
                attempts.append(self._failed_attempt(request_id, name, request, error, started))
                if _caller_fault(error) or deadline.expired:
                    raise _with_attempts(error, attempts)
                if not error.retryable or retry == policy.max_retries:
                    break
                hint = error.retry_after
                if hint is not None and hint > policy.max_delay and has_fallback:
                    break  # the vendor asks for a long pause: another vendor answers sooner
                delay = policy.delay(retry, hint, self._rng)
                if delay >= deadline.remaining():
                    break
                self._emit(RetryScheduled(request_id, name, delay, type(error).__name__))
                await self._clock.sleep(delay)
        assert error is not None
        if not error.retryable:
            raise _with_attempts(error, attempts)
        raise VendorUnavailable(attempts, error) from error

    def _failed_attempt(
        self, request_id: str, vendor: str, request: Request, error: VendorError, started: float
    ) -> Attempt:
        attempt = Attempt(
            vendor, request.model, type(error).__name__, str(error), self._clock.now() - started
        )
        self._emit(AttemptFinished(request_id, attempt))
        return attempt

    def _succeed(
        self, request_id: str, request: Request, outcome: _Outcome, ttft: float | None
    ) -> list[Attempt]:
        attempt = Attempt(
            outcome.vendor, request.model, "ok", None, self._clock.now() - outcome.started
        )
        self._emit(AttemptFinished(request_id, attempt, ttft_s=ttft))
        return [*outcome.attempts, attempt]

    def _finish(
        self,
        request_id: str,
        request: Request,
        response: Response | None,
        started: float,
        ttft: float | None,
        error: BaseException | None,
        *,
        stream: bool,
        attempts: list[Attempt] | None = None,
        usage: Usage | None = None,
    ) -> None:
        if attempts is None:
            attempts = list(getattr(error, "attempts", ()) or ())
        vendor = response.vendor if response else (attempts[-1].vendor if attempts else None)
        self._emit(
            RequestFinished(
                request_id=request_id,
                request=request,
                vendor=vendor,
                model=response.model if response else None,
                stream=stream,
                latency_s=self._clock.now() - started,
                ttft_s=ttft,
                usage=usage or (response.usage if response and error is None else None),
                error=None if error is None else _error_name(error),
                attempts=tuple(attempts),
            )
        )

    # --- lifecycle and the sync facade ---------------------------------------------------------
    async def aclose(self) -> None:
        for vendor in self._vendors.values():
            await vendor.aclose()
        self._sync.close()

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def send_sync(self, request: Request) -> Response:
        """``send`` for scripts (not for use inside a running event loop)."""
        return self._sync.run(self.send(request))

    def stream_sync(self, request: Request) -> Iterator[StreamChunk]:
        """``stream`` for scripts: a plain iterator of chunks."""
        return self._sync.iterate(self.stream(request))

    def close(self) -> None:
        """Close connections from sync code."""
        if self._sync.loop is not None:
            self._sync.run(self._close_vendors())
        self._sync.close()

    async def _close_vendors(self) -> None:
        for vendor in self._vendors.values():
            await vendor.aclose()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FinalChunk:
    """Gathers finish reason, usage and text of a stream; builds the one final chunk."""

    def __init__(self, vendor: str, model: str) -> None:
        self.vendor, self.model = vendor, model
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.saw_tools = False
        self._text: list[str] = []

    def take(self, chunk: StreamChunk) -> bool:
        """Record a chunk; True when it carries text or tool pieces to pass on now."""
        self.finish = chunk.finish_reason or self.finish
        self.usage = chunk.usage or self.usage
        self.model = chunk.model or self.model
        if chunk.delta:
            self._text.append(chunk.delta)
        self.saw_tools = self.saw_tools or bool(chunk.tool_call_deltas)
        return bool(chunk.delta or chunk.tool_call_deltas)

    def strip(self, chunk: StreamChunk) -> StreamChunk:
        if chunk.finish_reason is None and chunk.usage is None and chunk.vendor == self.vendor:
            return chunk
        return StreamChunk(
            delta=chunk.delta,
            tool_call_deltas=chunk.tool_call_deltas,
            vendor=self.vendor,
            model=self.model,
        )

    @property
    def text(self) -> str:
        return "".join(self._text)

    def chunk(self) -> StreamChunk:
        finish = self.finish or ("tool_calls" if self.saw_tools else "stop")
        return StreamChunk(
            finish_reason=finish, usage=self.usage or Usage(), vendor=self.vendor, model=self.model
        )

    def as_response(self) -> Response:
        return Response(
            content=self.text,
            vendor=self.vendor,
            model=self.model,
            finish_reason=self.finish,
            usage=self.usage or Usage(),
        )


def _caller_fault(error: VendorError) -> bool:
    """A malformed request fails the same way everywhere: do not spend fallbacks on it.
    (A model one vendor lacks, a prompt too long for one window, or a capability one vendor
    lacks may suit the next.)"""
    return isinstance(error, InvalidRequestError) and not isinstance(
        error, ContextLengthExceeded | ModelNotFound | UnsupportedRequest
    )


def _with_attempts(error: VendorError, attempts: list[Attempt]) -> VendorError:
    error.attempts = tuple(attempts)
    return error


def _error_name(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return type(error).__name__
