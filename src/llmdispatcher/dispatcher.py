"""The dispatcher: a thin facade over the request lifecycle (``lifecycle/``).

It owns the registry of vendors, the config and what every request shares (health, breakers,
retry budgets, quotas, subscribers), and offers ``send``/``stream``/``embed``/``explain``/
``stats`` with sync wrappers. The path of one request: ``Router`` decides where it may go and
in which order; ``Runner`` tries those candidates, one ``AttemptScope`` per try;
``Accounting`` settles the spend and reports the request once. A stream wins at its first text
or tool-call piece: failures before it are retried and failed over, failures after it raise
``StreamInterrupted`` with the text already delivered, so the caller never sees text twice.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from .clock import Clock, SystemClock
from .config import Config
from .errors import ConfigError, NoVendorsRegistered
from .home import recording_off
from .lifecycle.accounting import Accounting, Ticket
from .lifecycle.kinds import AttemptKind, EmbedKind, SendKind, StreamKind
from .lifecycle.relay import StreamRelay
from .lifecycle.runner import Runner, Won
from .lifecycle.scope import Services, Trip
from .observability.events import Event, Subscriber
from .observability.stats import Stats, StatsCollector
from .quotas import BudgetSource, Quotas
from .resilience.circuit_breaker import BreakerBoard, BreakerState
from .resilience.deadline import Deadline
from .resilience.retry_budget import RetryBudgets
from .routing.health import HealthTracker
from .routing.model import RoutingDecision
from .routing.router import Router
from .settings.routing import Deployment
from .sync import LoopThread
from .types import Request, Response, StreamChunk, Usage
from .vendors.base import Vendor

if TYPE_CHECKING:
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .lifecycle.cached import CachedPath
    from .observability.ledger import Ledger, LedgerStats
    from .observability.tracing import RequestTracer
    from .routing.shared_health import SharedHealth
    from .status import DeploymentStatus, Headroom

logger = logging.getLogger("llmdispatcher")
T = TypeVar("T")


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
        self.config = config = config or Config()
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._vendors: dict[str, Vendor] = {}
        self._stats = StatsCollector()
        self._subscribers: list[Subscriber] = [self._stats.on_event]
        self._tracer = self._open_tracer()
        self._services = Services(
            config,
            self._vendors,
            self._clock,
            self._rng,
            self._emit,
            HealthTracker(),
            BreakerBoard(config.circuit_breaker, self._clock),
            RetryBudgets(config.retry_budget, self._clock),
            Quotas(config, self._vendors, self._clock),
            self._tracer,
        )
        self._accounting = Accounting(self._services)
        self._send_kind, self._stream_kind = SendKind(config), StreamKind()
        self._sync = LoopThread()
        self._id_prefix, self._id_counter = os.urandom(4).hex(), itertools.count(1)
        # One-line facts a front end should show its user (e.g. "using the built-in model").
        self.notices: list[str] = []
        for vendor in (*self._configured_vendors(), *vendors):
            self.register(vendor)
        self._ledger = self._open_ledger()
        self._cache = self._open_cache()
        self._shared_health = self._share_health()
        if config.enable_logging:
            from .observability.logging import EventLogger, enable_stderr_logging

            enable_stderr_logging()
            self.subscribe(EventLogger(self.secrets, log_content=config.log_content).on_event)

    def _configured_vendors(self) -> list[Vendor]:
        """The vendors the config file describes (``vendors:``)."""
        if not self.config.vendors:
            return []
        from .vendors import vendor_class

        return [vendor_class(spec.type)(**spec.options) for spec in self.config.vendors]

    def _open_ledger(self) -> Ledger | None:
        """The ledger subscribes to the events; records it cannot write yet wait in memory,
        then in a bounded spill file (``ledger_spill_dir``, ``ledger_max_spill_mb``)."""
        config, url = self.config, self.config.ledger_url
        if not url or recording_off(url):
            return None
        from .observability.ledger import open_ledger

        ledger = open_ledger(
            url,
            log_content=config.ledger_content,
            secrets=self.secrets,
            clock=self._clock,
            spill_dir=config.ledger_spill_dir,
            max_spill_bytes=config.ledger_max_spill_mb * 2**20,
        )
        self.subscribe(ledger.on_event)
        return ledger

    def _open_tracer(self) -> RequestTracer | None:
        """OpenTelemetry spans (``Config.tracing``); None, and nothing imported, when off."""
        if self.config.tracing is None:
            return None
        try:
            from .observability.tracing import RequestTracer
        except ImportError as exc:
            raise ConfigError(
                "tracing needs OpenTelemetry: pip install 'llmdispatcher[otel]'"
            ) from exc
        tracer = RequestTracer(self.config.tracing, log_content=self.config.log_content)
        self._subscribers.append(tracer.on_event)
        return tracer

    @property
    def tracing(self) -> bool:
        """Whether this dispatcher records OpenTelemetry spans."""
        return self._tracer is not None

    def _open_cache(self) -> CachedPath | None:
        """The response cache (``Config.cache``); None, and nothing imported, when off."""
        settings = self.config.cache
        if settings is None:
            return None
        from .cache.response_cache import ResponseCache
        from .lifecycle.cached import CachedPath

        cache = ResponseCache(settings, self._clock, self._emit, embed=self._prompt_embedder())
        return CachedPath(cache, lambda r, s: self.plan(r, stream=s), self._accounting)

    def _prompt_embedder(self) -> Callable[[str], Awaitable[Sequence[float]]] | None:
        """For ``Cache.semantic``: one prompt's vector, through this dispatcher's own
        embedding path (routed, limited and recorded like any embedding request)."""
        semantic = self.config.cache.semantic if self.config.cache is not None else None
        if semantic is None:
            return None
        from .embeddings import EmbeddingRequest

        async def embed(text: str) -> Sequence[float]:
            answer = await self.embed(EmbeddingRequest(model=semantic.model, input=text))
            return answer.vectors[0]

        return embed

    def _share_health(self) -> SharedHealth | None:
        """With Redis as the state backend, breakers and health are shared by the replicas
        (``routing.shared_health``)."""
        if not self.config.state_url.lower().startswith(("redis:", "rediss:")):
            return None
        from .routing.shared_health import SharedHealth

        s = self._services
        return SharedHealth(self.config.state_url, s.breakers, s.health, self._clock)

    def start_sharing(self) -> None:
        """Start sharing breakers and health with the other replicas now, on the running loop
        (the first request does it otherwise; the gateway calls this as it starts)."""
        if self._shared_health is not None:
            self._shared_health.start()

    async def check_dependencies(self) -> dict[str, str | None]:
        """Each shared backend in use and what is wrong with it now (``None``: nothing):
        ``state`` (one read, bounded by ``state_timeout_s``), ``ledger`` (whether its writes
        fail), ``shared_health`` (whether the replicas' channel is connected)."""
        found: dict[str, str | None] = {}
        if not self.config.state_url.lower().startswith("memory:"):
            found["state"] = await self._services.quotas.probe_state()
        if self._ledger is not None:
            found["ledger"] = self._ledger.write_error()
        if self._shared_health is not None:
            connected = self._shared_health.connected
            found["shared_health"] = None if connected else "not connected to Redis"
        return found

    @classmethod
    def from_env(cls, config: Config | None = None, **kwargs: Any) -> Dispatcher:
        """A dispatcher with every vendor whose key (or host) is set in the environment
        (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``, ``OLLAMA_HOST``, ...).

        With none set, the built-in local model (SmolLM2, in-process, model names ``local`` and
        ``smollm2``) when the ``local`` extra is installed, and beside it the built-in embedding
        model (``local-embed``) when the ``local-embed`` extra is; else ``NoVendorsRegistered``
        saying how to configure one."""
        from . import local_models
        from .vendors import vendors_from_env

        vendors = vendors_from_env()
        if not vendors:
            default = local_models.embedded_default()
            if default is None:
                raise NoVendorsRegistered(
                    local_models.NOTHING_CONFIGURED + local_models.LOCAL_INSTALL_HINT
                )
            embedder = local_models.embedded_embedder()
            notice = local_models.EMBEDDED_DEFAULT_NOTICE + (
                local_models.EMBEDDED_EMBEDDINGS_NOTICE if embedder is not None else ""
            )
            logger.info(notice)
            defaults = [default] if embedder is None else [default, embedder]
            dispatcher = cls(config, vendors=defaults, **kwargs)
            dispatcher.notices.append(notice)
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
        vendor.listen_to_headers(functools.partial(self._services.quotas.observe, vendor.name))
        self._services.quotas.forget()

    def set_budget_source(self, source: BudgetSource | None) -> None:
        """Budgets known only at run time (the gateway's stored keys and teams), asked per
        request, besides ``Config.budgets``."""
        self._services.quotas.budget_source = source

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
        breakers = self._services.breakers
        keys = [
            k
            for k in breakers.keys()  # noqa: SIM118 - a method, not a dict
            if deployment in (k, k.split("/")[0])
        ]
        states = [breakers.state(k) for k in keys] or ["closed"]
        order: list[BreakerState] = ["open", "half_open", "closed"]
        return next(state for state in order if state in states)

    def deployment_statuses(self) -> list[DeploymentStatus]:
        """Each deployment's breaker and observed health now (``status.py``)."""
        from .status import deployment_statuses

        return deployment_statuses(self._services)

    def rate_limit_headroom(self, vendor: str) -> list[Headroom]:
        """What ``vendor``'s rate-limit headers last said is left."""
        from .status import headroom

        return headroom(self._services, vendor)

    @property
    def ledger(self) -> Ledger | None:
        """The request ledger (``Config.ledger_url``), None when recording is off."""
        return self._ledger

    @functools.cached_property
    def _router(self) -> Router:
        # One router for the dispatcher's life: it reads the (live) vendor registry and the
        # health, breaker and config objects, and holds no per-request state.
        from .tokens import estimate_prompt_tokens

        s = self._services
        return Router(s.config, self._vendors, s.health, s.breakers, estimate_prompt_tokens,
                      lambda: self._accounting.prices)  # fmt: skip

    @functools.cached_property
    def _runner(self) -> Runner:
        return Runner(self._services, self._router)

    def plan(self, request: Request, *, stream: bool = False) -> RoutingDecision:
        """The routing decision for ``request`` (candidates in order, with scores, exclusions
        and the rule that matched), without sending anything."""
        unknown = [v for v in self.config.fallback_vendors if v not in self._vendors]
        if unknown:
            raise ConfigError(
                f"fallback_vendors names unregistered vendor(s) "
                f"{', '.join(unknown)}; registered: {', '.join(self._vendors)}"
            )
        return self._router.decide(
            request, stream=stream, now_wall=self._clock.wall(), rng=self._rng
        )

    async def explain(self, request: Request, *, stream: bool = False) -> RoutingDecision:
        """``plan`` for async callers (it may consult shared state, e.g. rate limits)."""
        return self.plan(request, stream=stream)

    def _ticket(self, request: Request, *, stream: bool) -> Ticket:
        """A request id unique to this dispatcher's life: a random per-dispatcher prefix and a
        counter (not a ``getrandom`` system call per request)."""
        request_id = f"{self._id_prefix}{next(self._id_counter):08x}"
        ticket = Ticket(request_id, request, self._clock.now(), stream)
        if self._tracer is not None:
            self._tracer.request_started(ticket)
        return ticket

    async def _depart(self, ticket: Ticket) -> Trip:
        """Route, reserve the spend budgets, and set the request's one deadline."""
        request = ticket.request
        decision = ticket.decision = ticket.decision or self.plan(request, stream=ticket.stream)
        if self._shared_health is not None:
            self._shared_health.start()
        await self._accounting.reserve_spend(ticket, decision)
        context = decision.context
        return Trip(
            request,
            ticket.request_id,
            decision,
            Deadline.after(self._clock, request.timeout or self.config.timeout),
            ticket.stream,
            context.prompt_tokens + context.max_tokens if context is not None else 0,
            span=ticket.span,
        )

    # --- send --------------------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        """Send one request and return the complete answer."""
        ticket = self._ticket(request, stream=False)
        if self._cache is not None:
            return await self._cache.send(ticket, self._send)
        return await self._send(ticket)

    async def _send(self, ticket: Ticket) -> Response:
        trip, won = await self._run_whole(self._send_kind, ticket)
        response = won.value
        cost = self._accounting.cost(won.deployment, response.model, response.usage)
        ticket.response = replace(
            response,
            latency_s=self._clock.now() - ticket.started,
            attempts=tuple(trip.attempts),
            routing=trip.decision,
            cost_usd=cost,
            cache=ticket.cache,
        )
        await self._finish_whole(ticket, won.deployment, cost)
        return ticket.response

    async def _run_whole(self, kind: AttemptKind[T], ticket: Ticket) -> tuple[Trip, Won[T]]:
        """Route and run a request whose answer comes whole (a send, an embedding)."""
        try:
            trip = await self._depart(ticket)
            won = await self._runner.run(kind, trip)
            await won.scope.close(None)  # the try is over: its scope records it
        except BaseException as exc:
            await self._accounting.settle_spend(ticket, 0)
            self._accounting.finish(ticket, exc)
            raise
        return trip, won

    async def _finish_whole(
        self, ticket: Ticket, deployment: Deployment, cost: float | None
    ) -> None:
        await self._accounting.settle_spend(ticket, cost)
        ticket.deployment = deployment
        self._accounting.finish(ticket)

    # --- embed -------------------------------------------------------------------------------
    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Vectors for every input of ``request``, in input order. Routed, limited, retried,
        failed over, priced and recorded like a chat request (request type ``embedding``);
        long input lists go in batches of each vendor's limit."""
        from .embeddings import EmbeddingResponse

        ticket = self._ticket(request.routing_request(), stream=False)
        trip, won = await self._run_whole(EmbedKind(request), ticket)
        found, vendor = won.value, won.deployment.vendor
        cost = self._accounting.cost(won.deployment, found.model, found.usage)
        answer = EmbeddingResponse(
            vectors=found.vectors,
            model=found.model,
            vendor=vendor,
            usage=found.usage or Usage(),
            cost_usd=cost,
            latency_s=self._clock.now() - ticket.started,
            attempts=tuple(trip.attempts),
            routing=trip.decision,
        )
        # What the ledger, stats and metrics read of any answer: no text, the input tokens.
        ticket.response = Response("", vendor, found.model, None, answer.usage, cost_usd=cost)
        await self._finish_whole(ticket, won.deployment, cost)
        return answer

    # --- stream -------------------------------------------------------------------------------
    def stream(self, request: Request) -> AsyncGenerator[StreamChunk, None]:
        """Stream one answer. Text and tool-call pieces arrive as they come; the last chunk
        carries ``finish_reason``, ``usage``, ``cost_usd`` and ``routing``."""
        ticket = self._ticket(request, stream=True)
        if self._cache is not None:
            return self._cache.stream(ticket, self._stream)
        return self._stream(ticket)

    async def _stream(self, ticket: Ticket) -> AsyncGenerator[StreamChunk, None]:
        try:
            trip = await self._depart(ticket)
            won = await self._runner.run(self._stream_kind, trip)
        except BaseException as exc:
            await self._accounting.settle_spend(ticket, 0)
            self._accounting.finish(ticket, exc)
            raise
        ticket.ttft_s = self._clock.now() - ticket.started
        relay = StreamRelay(self._runner, self._stream_kind, trip, won)
        error: BaseException | None = None
        delivered = False  # the final chunk went out: a caller stopping now has lost nothing
        try:
            async for chunk in relay.chunks():
                yield chunk
            cost, usage = self._accounting.legs_cost(relay.legs), relay.usage
            ticket.response = relay.final.as_response(cost_usd=cost, usage=usage)
            ticket.cut = relay.final.fold.cut
            await self._accounting.settle_spend(ticket, cost)
            delivered = True
            yield relay.final.chunk(trip.decision, cost, usage, relay.resumed_from)
        except BaseException as exc:
            if not (delivered and isinstance(exc, GeneratorExit | asyncio.CancelledError)):
                error = exc
            raise
        finally:
            ticket.deployment = relay.legs[-1].deployment if relay.legs else won.deployment
            if ticket.response is None:
                ticket.response = relay.final.as_response(complete=False)
            await self._accounting.settle_spend(ticket, None)
            self._accounting.finish(ticket, error)

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

    def embed_sync(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """``embed`` for scripts (not for use inside a running event loop)."""
        return self._sync.run(self.embed(request))

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
        await self._services.quotas.aclose()
        if self._shared_health is not None:
            await self._shared_health.aclose()
        if self._ledger is not None:
            await self._ledger.aclose()
        if self._cache is not None:
            await self._cache.cache.aclose()
        if self._tracer is not None:  # flushes spans over the network: off the event loop
            await asyncio.to_thread(self._tracer.shutdown)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
