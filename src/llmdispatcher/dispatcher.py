"""The one orchestration path: decide -> (attempt -> retry)* -> fall back, for send and stream.

``Router`` (routing/) decides where a request may go and in which order, with reasons;
``AttemptRunner`` (attempts.py) tries those candidates with retries, budgets, breakers, hedging
and one total deadline. A stream is "opened" when its first text or tool-call piece arrives:
failures before that point are retried and failed over like any other, failures after it raise
``StreamInterrupted`` with the text already delivered, so the caller never sees text twice.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import aclosing
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .admission import Admission
from .attempts import AttemptRunner, OpenedStream, Outcome, open_stream, vendor_fault
from .clock import Clock, SystemClock
from .config import Config
from .errors import ConfigError, NoVendorsRegistered, StreamInterrupted, VendorError
from .observability.events import AttemptFinished, Event, RequestFinished, Subscriber
from .observability.stats import Stats, StatsCollector
from .resilience.circuit_breaker import BreakerBoard, BreakerState
from .resilience.retry_budget import RetryBudgets
from .routing.health import HealthTracker
from .routing.model import Deployment, RoutingDecision
from .routing.router import Router
from .streaming import FinalChunk
from .sync import LoopThread
from .types import Attempt, Request, Response, StreamChunk, Usage
from .vendors.base import Vendor

if TYPE_CHECKING:
    from .observability.ledger import Ledger, LedgerStats
    from .pricing import PriceTable

logger = logging.getLogger("llmdispatcher")


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
        self._health = HealthTracker()
        self._breakers = BreakerBoard(self.config.circuit_breaker, self._clock)
        self._budgets = RetryBudgets(self.config.retry_budget, self._clock)
        self._price_table: PriceTable | None = None
        self._admission = Admission(self.config, self._vendors, self._clock)
        self._routing: Router | None = None
        if self.config.prices:  # a bad override is a configuration error now, not later
            _ = self._prices
        self._subscribers: list[Subscriber] = [self._stats.on_event]
        self._sync = LoopThread()
        self._id_prefix, self._id_counter = os.urandom(4).hex(), itertools.count(1)
        # One-line facts a front end should show its user (e.g. "using the built-in model").
        self.notices: list[str] = []
        for spec in self.config.vendors:
            from .vendors import vendor_class

            self.register(vendor_class(spec.type)(**spec.options))
        for vendor in vendors:
            self.register(vendor)
        self._ledger: Ledger | None = None
        if self.config.ledger_url:
            from .observability.ledger import open_ledger

            self._ledger = open_ledger(
                self.config.ledger_url,
                log_content=self.config.ledger_content,
                secrets=self.secrets,
                clock=self._clock,
            )
            self.subscribe(self._ledger.on_event)
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
        vendor.listen_to_headers(functools.partial(self._admission.observe, vendor.name))
        self._admission.forget()

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
        """This process's statistics since it started (``ledger_stats`` for all of them)."""
        return self._stats.snapshot()

    @property
    def stats_collector(self) -> StatsCollector:
        """The collector behind ``stats()``; its ``export()`` lets processes combine theirs."""
        return self._stats

    async def ledger_stats(self, since: float | None = None) -> LedgerStats:
        """Statistics from the ledger (``Config.ledger_url``): across restarts and replicas,
        grouped by vendor, model and user; ``since`` is an epoch time."""
        if self._ledger is None:
            raise ConfigError("no ledger: set ledger_url (e.g. sqlite:///ledger.db) in the config")
        return await self._ledger.stats(since)

    def breaker_state(self, deployment: str) -> BreakerState:
        """``closed``, ``open`` or ``half_open`` for a deployment id (``vendor/model``) or a
        vendor name (its worst deployment)."""
        keys = [
            k
            for k in self._breakers.keys()  # noqa: SIM118 - a method, not a dict
            if deployment in (k, k.split("/")[0])
        ]
        states = [self._breakers.state(k) for k in keys] or ["closed"]
        order: list[BreakerState] = ["open", "half_open", "closed"]
        return next(state for state in order if state in states)

    def _router(self) -> Router:
        # One router for the dispatcher's life: it reads the (live) vendor registry and the
        # health, breaker and config objects, and holds no per-request state.
        if self._routing is None:
            from .tokens import estimate_prompt_tokens

            self._routing = Router(
                self.config, self._vendors, self._health, self._breakers, estimate_prompt_tokens
            )
        return self._routing

    def _runner(
        self, router: Router, decision: RoutingDecision, stream: bool = False
    ) -> AttemptRunner:
        context = decision.context
        worst = context.prompt_tokens + context.max_tokens if context is not None else 0
        return AttemptRunner(
            self.config,
            self._vendors,
            self._clock,
            self._rng,
            self._emit,
            router,
            self._health,
            self._breakers,
            self._budgets,
            admission=self._admission if self._admission.limits_active else None,
            worst_tokens=worst,
            stream=stream,
            group=router.groups.get(decision.group or ""),
        )

    async def _reserve_budget(self, request: Request, decision: RoutingDecision) -> Any:
        """Refuse (BudgetExceeded) a request whose worst-case cost would cross a budget."""
        if not self._admission.budgets_active:
            return None
        return await self._admission.reserve_budget(request, decision, self._worst_cost(decision))

    def _worst_cost(self, decision: RoutingDecision) -> Decimal:
        """The dearest candidate's cost for the estimated prompt and all of max_tokens (an
        unknown price counts 0: the real cost is settled afterwards)."""
        from .pricing import deployment_cost

        context = decision.context
        if context is None:
            return Decimal(0)
        usage = Usage(
            context.prompt_tokens, context.max_tokens, context.prompt_tokens + context.max_tokens
        )
        costs = [
            deployment_cost(
                self._vendors[c.deployment.vendor].pricing_name or c.deployment.vendor,
                c.deployment.model,
                usage,
                self._prices,
                c.deployment.input_price,
                c.deployment.output_price,
            )
            for c in decision.candidates
        ]
        return max((c for c in costs if c is not None), default=Decimal(0))

    async def _settle_budget(self, reservation: Any, cost: float | None) -> None:
        if reservation is not None:
            await self._admission.settle_budget(reservation, Decimal(str(cost or 0)))

    def plan(self, request: Request, *, stream: bool = False) -> RoutingDecision:
        """The routing decision for ``request`` (candidates in order, with scores, exclusions
        and the rule that matched), without sending anything."""
        unknown = [v for v in self.config.fallback_vendors if v not in self._vendors]
        if unknown:
            raise ConfigError(
                f"fallback_vendors names unregistered vendor(s) "
                f"{', '.join(unknown)}; registered: {', '.join(self._vendors)}"
            )
        return self._router().decide(
            request, stream=stream, now_wall=self._clock.wall(), rng=self._rng
        )

    async def explain(self, request: Request, *, stream: bool = False) -> RoutingDecision:
        """``plan`` for async callers (it may consult shared state, e.g. rate limits)."""
        return self.plan(request, stream=stream)

    def _next_id(self) -> str:
        """A request id unique to this dispatcher's life: a random per-dispatcher prefix and a
        counter (not a ``getrandom`` system call per request)."""
        return f"{self._id_prefix}{next(self._id_counter):08x}"

    # --- send --------------------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        """Send one request and return the complete answer."""
        request_id = self._next_id()
        started = self._clock.now()
        decision: RoutingDecision | None = None
        budget: Any = None
        try:
            decision = self.plan(request)
            budget = await self._reserve_budget(request, decision)
            outcome = await self._runner(self._router(), decision).run(
                request,
                request_id,
                decision,
                lambda vendor, sent: vendor.send(sent),
                accept=self._content_filter_check(decision),
            )
        except BaseException as exc:
            await self._settle_budget(budget, 0)
            self._finish(request_id, request, started, stream=False, error=exc, decision=decision)
            raise
        response: Response = outcome.value
        cost = self._cost(outcome.deployment, response.model, response.usage)
        await self._settle_budget(budget, cost)
        decision.attempts = self._succeed(request_id, outcome, response.usage, None)
        response = replace(
            response,
            latency_s=self._clock.now() - started,
            attempts=tuple(decision.attempts),
            routing=decision,
            cost_usd=cost,
        )
        self._finish(
            request_id,
            request,
            started,
            stream=False,
            response=response,
            decision=decision,
            deployment=outcome.deployment.id,
        )
        return response

    def _content_filter_check(self, decision: RoutingDecision) -> Any:
        """With content-filter fallbacks configured, a filtered answer counts as a failure."""
        group = next((g for g in self.config.model_groups if g.name == decision.group), None)
        if group is None or not group.content_filter_fallbacks:
            return None

        def check(response: Response) -> str | None:
            if response.finish_reason == "content_filter":
                return f"{response.vendor}'s content filter stopped the answer"
            return None

        return check

    # --- stream -------------------------------------------------------------------------------
    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream one answer. Text and tool-call pieces arrive as they come; the last chunk
        carries ``finish_reason``, ``usage``, ``cost_usd`` and ``routing``."""
        request_id = self._next_id()
        started = self._clock.now()
        decision: RoutingDecision | None = None
        budget: Any = None
        try:
            decision = self.plan(request, stream=True)
            budget = await self._reserve_budget(request, decision)
            outcome = await self._runner(self._router(), decision, stream=True).run(
                request, request_id, decision, open_stream
            )
        except BaseException as exc:
            await self._settle_budget(budget, 0)
            self._finish(request_id, request, started, stream=True, error=exc, decision=decision)
            raise
        opened: OpenedStream = outcome.value
        ttft = self._clock.now() - started
        deployment = outcome.deployment
        final = FinalChunk(deployment.vendor, deployment.model)
        error: BaseException | None = None
        cost: float | None = None
        delivered = False  # the final chunk went out: a caller stopping now has lost nothing
        try:
            async with aclosing(opened.chunks):  # type: ignore[type-var]
                for chunk in opened.head:
                    if final.take(chunk):
                        yield final.strip(chunk)
                if not opened.ended:
                    async for chunk in self._rest(opened.chunks, deployment.vendor, final):
                        yield chunk
            decision.attempts = self._succeed(request_id, outcome, final.usage, ttft)
            cost = self._cost(deployment, final.model, final.usage)
            delivered = True
            yield final.chunk(routing=decision, cost_usd=cost)
        except BaseException as exc:
            if not (delivered and isinstance(exc, GeneratorExit | asyncio.CancelledError)):
                error = exc
            raise
        finally:
            self._health.closed(deployment.id)
            tokens = final.usage.total_tokens if final.usage is not None else 0
            await self._admission.settle(opened.reservation, tokens)
            await self._settle_budget(budget, cost)
            if error is None:
                self._breakers.record_success(deployment.id)
            else:
                decision.attempts = self._stream_failed(request_id, outcome, ttft, error)
                self._stream_fault(deployment.id, error)
            response = replace(final.as_response(), cost_usd=cost)
            self._finish(
                request_id,
                request,
                started,
                stream=True,
                error=error,
                response=response,
                ttft=ttft,
                decision=decision,
                deployment=deployment.id,
                usage=final.usage if error is None else None,
            )

    async def _rest(
        self, chunks: AsyncIterator[StreamChunk], vendor: str, final: FinalChunk
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

    # --- bookkeeping --------------------------------------------------------------------------
    def _succeed(
        self, request_id: str, outcome: Outcome, usage: Usage | None, ttft: float | None
    ) -> list[Attempt]:
        deployment = outcome.deployment
        attempt = Attempt(
            deployment.vendor, deployment.model, "ok", None, self._clock.now() - outcome.started
        )
        self._emit(
            AttemptFinished(request_id, attempt, ttft_s=ttft, usage=usage, deployment=deployment.id)
        )
        return [*outcome.attempts, attempt]

    def _stream_fault(self, deployment: str, error: BaseException) -> None:
        """A stream that broke after opening counts against its deployment's health and
        breaker when the vendor was at fault (not when the caller went away)."""
        cause = error.__cause__ if isinstance(error, StreamInterrupted) else error
        if isinstance(cause, VendorError) and vendor_fault(cause):
            self._health.failed_after_open(deployment)
            self._breakers.record_failure(deployment, type(cause).__name__, cause.retry_after)
        else:
            self._breakers.release_probe(deployment)

    def _stream_failed(
        self, request_id: str, outcome: Outcome, ttft: float, error: BaseException
    ) -> list[Attempt]:
        deployment = outcome.deployment
        attempt = Attempt(
            deployment.vendor,
            deployment.model,
            _error_name(error),
            str(error),
            self._clock.now() - outcome.started,
        )
        self._emit(AttemptFinished(request_id, attempt, ttft_s=ttft, deployment=deployment.id))
        return [*outcome.attempts, attempt]

    def _finish(
        self,
        request_id: str,
        request: Request,
        started: float,
        *,
        stream: bool,
        error: BaseException | None = None,
        response: Response | None = None,
        ttft: float | None = None,
        decision: RoutingDecision | None = None,
        deployment: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        attempts = (
            decision.attempts
            if decision is not None and decision.attempts
            else list(getattr(error, "attempts", ()) or ())
        )
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
                cost_usd=response.cost_usd if response else None,
                deployment=deployment,
                group=decision.group if decision else None,
                fallbacks=len({a.vendor + "/" + a.model for a in attempts}) - 1 if attempts else 0,
                price_version=self._prices.version if self._prices_loaded else None,
                api_key_id=(request.metadata or {}).get("api_key"),
                output_text=response.content
                if response is not None and self.config.ledger_content
                else None,
            )
        )

    @property
    def _prices_loaded(self) -> bool:
        return self._price_table is not None

    @property
    def _prices(self) -> PriceTable:
        if self._price_table is None:
            from .pricing import load_table

            self._price_table = load_table(self.config.prices)
        return self._price_table

    def _cost(self, deployment: Deployment, model: str, usage: Usage | None) -> float | None:
        """What the answer cost in USD (Decimal arithmetic, a float at the edge), or None for a
        model the price table does not know (logged once)."""
        if usage is None:
            return None
        from .pricing import deployment_cost

        vendor = self._vendors[deployment.vendor]
        cost = deployment_cost(
            vendor.pricing_name or deployment.vendor,
            model or deployment.model,
            usage,
            self._prices,
            deployment.input_price,
            deployment.output_price,
        )
        return None if cost is None else float(cost)

    # --- lifecycle and the sync facade ---------------------------------------------------------
    async def aclose(self) -> None:
        await self._close_vendors()
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
        await self._admission.aclose()
        if self._ledger is not None:
            await self._ledger.aclose()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_name(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return type(error).__name__
