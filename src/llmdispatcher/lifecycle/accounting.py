"""Per request: spend budgets reserved before sending and settled after, the answer's cost
(Decimal arithmetic, a float at the edge), and the one ``RequestFinished`` event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..observability.events import RequestFinished
from ..routing.model import RoutingDecision
from ..settings.routing import Deployment
from ..types import Request, Response, Usage
from .scope import Services

if TYPE_CHECKING:
    from ..budgets import BudgetReservation
    from ..pricing import PriceTable
    from .relay import Leg


@dataclass(slots=True)
class Ticket:
    """What is known of one request as it goes: filled in step by step, reported once."""

    request_id: str
    request: Request
    started: float
    stream: bool
    decision: RoutingDecision | None = None
    spend: BudgetReservation | None = None
    deployment: Deployment | None = None
    ttft_s: float | None = None
    response: Response | None = field(default=None, repr=False)
    cut: bool = False  # a stream whose text was too long to keep whole (streaming.py)
    cache: str | None = None  # with Config.cache: hit | miss | bypass (lifecycle/cached.py)
    saved_cost_usd: float | None = None  # a hit: what the first answer cost
    span: Any = field(default=None, repr=False)  # with tracing on: the request's span
    trace_id: str | None = None  # ... and its trace id (hex)


class Accounting:
    def __init__(self, services: Services) -> None:
        self.s = services
        self._price_table: PriceTable | None = None
        if services.config.prices:  # a bad override is a configuration error now, not later
            _ = self.prices

    @property
    def prices(self) -> PriceTable:
        if self._price_table is None:
            from ..pricing import load_table

            self._price_table = load_table(self.s.config.prices)
        return self._price_table

    # --- spend budgets ------------------------------------------------------------------
    async def reserve_spend(self, ticket: Ticket, decision: RoutingDecision) -> None:
        """Refuse (BudgetExceeded) a request whose worst-case cost would cross a budget."""
        quotas = self.s.quotas
        if quotas.budgets_active:
            ticket.spend = await quotas.reserve_spend(
                ticket.request, decision, lambda: self._worst_cost(decision)
            )

    async def settle_spend(self, ticket: Ticket, cost: float | None) -> None:
        reservation, ticket.spend = ticket.spend, None
        if reservation is not None:
            await self.s.quotas.settle_spend(reservation, Decimal(str(cost or 0)))

    def _worst_cost(self, decision: RoutingDecision) -> Decimal:
        """The dearest candidate's cost for the estimated prompt and all of max_tokens (an
        unknown price counts 0: the real cost is settled afterwards)."""
        context = decision.context
        if context is None:
            return Decimal(0)
        total = context.prompt_tokens + context.max_tokens
        usage = Usage(context.prompt_tokens, context.max_tokens, total)
        costs = (self._cost(c.deployment, c.deployment.model, usage) for c in decision.candidates)
        return max((c for c in costs if c is not None), default=Decimal(0))

    # --- cost -------------------------------------------------------------------------------
    def cost(self, deployment: Deployment, model: str, usage: Usage | None) -> float | None:
        """What the answer cost in USD, or None for a model the price table does not know."""
        if usage is None:
            return None
        cost = self._cost(deployment, model or deployment.model, usage)
        return None if cost is None else float(cost)

    def legs_cost(self, legs: Sequence[Leg]) -> float | None:
        """A stream's cost: every leg's that reported usage (one leg, unless resumed)."""
        costs = [self.cost(leg.deployment, leg.model, leg.usage) for leg in legs]
        known = [c for c in costs if c is not None]
        return sum(known) if known else None

    def _cost(self, deployment: Deployment, model: str, usage: Usage) -> Decimal | None:
        from ..pricing import deployment_cost

        vendor = self.s.vendors[deployment.vendor]
        return deployment_cost(
            vendor.pricing_name or deployment.vendor,
            model,
            usage,
            self.prices,
            deployment.input_price,
            deployment.output_price,
        )

    # --- the end ------------------------------------------------------------------------------
    def finish(self, ticket: Ticket, error: BaseException | None = None) -> None:
        """Emit the request's one ``RequestFinished`` event."""
        decision, response = ticket.decision, ticket.response
        hit = ticket.cache == "hit"
        attempts = tuple(
            decision.attempts if decision is not None and decision.attempts else ()
        ) or tuple(getattr(error, "attempts", ()) or ())
        vendor = response.vendor if response else (attempts[-1].vendor if attempts else None)
        event = RequestFinished(
            request_id=ticket.request_id,
            request=ticket.request,
            vendor=vendor,
            model=response.model if response else None,
            stream=ticket.stream,
            latency_s=self.s.clock.now() - ticket.started,
            ttft_s=ticket.ttft_s,
            usage=response.usage if response is not None and error is None and not hit else None,
            error=None if error is None else error_name(error),
            attempts=attempts,
            cost_usd=response.cost_usd if response else None,
            deployment=ticket.deployment.id if ticket.deployment else None,
            group=decision.group if decision else None,
            fallbacks=len({a.vendor + "/" + a.model for a in attempts}) - 1 if attempts else 0,
            price_version=self._price_table.version if self._price_table else None,
            api_key_id=(ticket.request.metadata or {}).get("api_key"),
            output_text=response.content
            if response is not None and self.s.config.ledger_content
            else None,
            finish_reason=response.finish_reason if response is not None else None,
            tool_calls=response.tool_calls if response is not None else (),
            cache=ticket.cache,
            saved_usage=response.usage if hit and response is not None else None,
            saved_cost_usd=ticket.saved_cost_usd,
            trace_id=ticket.trace_id,
            routing=decision,
        )
        self.s.emit(event)
        if self.s.tracer is not None:
            self.s.tracer.request_finished(ticket, event)


def error_name(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return type(error).__name__
