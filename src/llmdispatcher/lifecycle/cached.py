"""The response cache around one request (``Config.cache``): a hit is answered here, from the
stored entry, without routing to a vendor, reserving rate limits or spend budgets, or paying;
a miss goes upstream (``Dispatcher._send`` / ``_stream``) and its complete answer is offered
to the cache. A hit is still one finished request: ``RequestFinished`` with ``cache="hit"``,
no usage and no cost, and the tokens and cost it saved.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from ..cache.entry import Entry
from ..cache.response_cache import ResponseCache
from ..routing.model import RoutingDecision
from ..types import Request, Response, StreamChunk
from .accounting import Accounting, Ticket

Plan = Callable[[Request, bool], RoutingDecision]


class CachedPath:
    def __init__(self, cache: ResponseCache, plan: Plan, accounting: Accounting) -> None:
        self.cache, self._plan, self._accounting = cache, plan, accounting
        self._clock = accounting.s.clock

    def _model(self, ticket: Ticket) -> str:
        """What the key names as the model: the routed group, else the model asked for. A
        request that cannot be routed is keyed by its model: upstream reports the error."""
        try:
            ticket.decision = self._plan(ticket.request, ticket.stream)
        except Exception:
            return ticket.request.model
        return ticket.decision.group or ticket.request.model

    async def send(
        self, ticket: Ticket, upstream: Callable[[Ticket], Awaitable[Response]]
    ) -> Response:
        model = self._model(ticket)
        async with self.cache.flight(ticket.request_id, ticket.request, model) as flight:
            if flight.entry is not None:
                return self._hit(ticket, flight.entry)
            ticket.cache = flight.outcome
            response = await upstream(ticket)
            flight.offer(Entry.of(response, ticket.deployment.id if ticket.deployment else None))
            return response

    async def stream(
        self, ticket: Ticket, upstream: Callable[[Ticket], AsyncGenerator[StreamChunk, None]]
    ) -> AsyncGenerator[StreamChunk, None]:
        model = self._model(ticket)
        async with self.cache.flight(ticket.request_id, ticket.request, model) as flight:
            if flight.entry is not None:
                async with aclosing(self._replay(ticket, flight.entry)) as replay:
                    async for chunk in replay:
                        yield chunk
                return
            ticket.cache = flight.outcome
            last = None
            # aclosing: a caller that stops early closes the vendor's stream now, not at GC.
            async with aclosing(upstream(ticket)) as chunks:
                async for chunk in chunks:
                    last = chunk
                    yield chunk
            # Only a stream that ran to its final chunk on one deployment, its text kept whole,
            # is an answer to keep.
            if (
                last is not None
                and not last.resumed_from
                and ticket.response is not None
                and not ticket.cut
            ):
                deployment = ticket.deployment.id if ticket.deployment else None
                flight.offer(Entry.of(ticket.response, deployment))

    def _hit(self, ticket: Ticket, entry: Entry) -> Response:
        ticket.cache, ticket.saved_cost_usd = "hit", entry.cost_usd
        ticket.response = entry.response(
            latency_s=self._clock.now() - ticket.started, routing=ticket.decision
        )
        self._accounting.finish(ticket)
        return ticket.response

    async def _replay(self, ticket: Ticket, entry: Entry) -> AsyncGenerator[StreamChunk, None]:
        ticket.cache, ticket.saved_cost_usd = "hit", entry.cost_usd
        ticket.response = entry.response(routing=ticket.decision)
        ticket.ttft_s = self._clock.now() - ticket.started
        error: BaseException | None = None
        try:
            for chunk in entry.chunks(ticket.decision):
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._accounting.finish(ticket, error)
