"""Quotas: rate limits and spend budgets, checked before sending and settled after.

Per attempt, the vendor's and the deployment's limits (rpm, tpm, rpd, tpd, max_concurrency)
are reserved together for the worst case (estimated prompt tokens + max_tokens) and settled
with the real usage afterwards; a refusal moves the request to its next candidate. Per request,
budgets (user, gateway key, model group, global) reserve the worst-case cost and settle with
the real cost. Both live in the state backend chosen by ``Config.state_url``, so they hold
across replicas sharing Redis. Nothing here runs when no limit and no budget is configured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from .clock import Clock
from .config import Config
from .limits import Limits
from .routing.model import RoutingDecision
from .settings.routing import Deployment
from .types import Request

if TYPE_CHECKING:
    from .budgets import Budget, BudgetReservation, BudgetTracker
    from .resilience.rate_limit import RateLimiter, Reservation
    from .state.base import StateBackend
    from .vendors.base import Vendor


# Budgets known only at run time (a stored gateway key's and its team's), asked per request:
# must be O(1) and do no I/O.
BudgetSource = Callable[[Request], "Sequence[Budget]"]


class Quotas:
    def __init__(self, config: Config, vendors: Mapping[str, Vendor], clock: Clock) -> None:
        self.config = config
        self.budget_source: BudgetSource | None = None
        self.vendors = vendors
        self.clock = clock
        self._state: StateBackend | None = None
        self._limiter: RateLimiter | None = None
        self._budgets: BudgetTracker | None = None
        self._limits_active: bool | None = None

    @property
    def limits_active(self) -> bool:
        """Whether any vendor or deployment has a limit (cached: asked on every request;
        ``Dispatcher.register`` calls ``forget`` when a vendor arrives)."""
        if self._limits_active is None:
            deployments = (d for g in self.config.model_groups for d in g.deployments)
            self._limits_active = any(not v.limits.unlimited for v in self.vendors.values()) or any(
                not deployment_limits(d).unlimited for d in deployments
            )
        return self._limits_active

    def forget(self) -> None:
        self._limits_active = None

    @property
    def budgets_active(self) -> bool:
        return bool(self.config.budgets) or self.budget_source is not None

    def state(self) -> StateBackend:
        if self._state is None:
            from .state import open_state

            self._state = open_state(self.config.state_url, policy=self.config.state_policy)
        return self._state

    async def probe_state(self) -> str | None:
        """Why the shared state backend cannot answer now (``None``: it answers), asked of the
        backend itself even while a failover serves from memory."""
        from .errors import StateBusy, StateError

        state = self.state()
        primary: StateBackend = getattr(state, "primary", state)  # a FailoverState's backend
        try:
            await primary.get(["probe"], self.clock.wall())
        except StateBusy:
            return None  # it answers, every connection is just in use: no outage
        except StateError as exc:
            return str(exc)
        return None

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            from .resilience.rate_limit import RateLimiter

            self._limiter = RateLimiter(self.state(), self.clock)
        return self._limiter

    def observe(self, vendor: str, headers: Mapping[str, str]) -> None:
        """A vendor's own rate-limit headers update our view of what is left."""
        if self._limiter is not None:
            self._limiter.observe_headers(vendor_scope(vendor), headers)

    def headroom(self, vendor: str) -> list[tuple[str, int, float]]:
        """The vendor's rate-limit headroom as its headers last told (``RateLimiter.headroom``)."""
        return [] if self._limiter is None else self._limiter.headroom(vendor_scope(vendor))

    # --- rate limits, per attempt ------------------------------------------------------------
    async def reserve_limits(self, deployment: Deployment, tokens: int) -> Reservation | None:
        """Reserve ``tokens`` (the worst case) against the vendor's and the deployment's
        limits; raises ``LocalRateLimited`` when one refuses (nothing is sent then)."""
        vendor = self.vendors[deployment.vendor]
        targets = [
            (vendor_scope(deployment.vendor), vendor.limits),
            (f"deployment:{deployment.id}", deployment_limits(deployment)),
        ]
        targets = [(scope, limits) for scope, limits in targets if not limits.unlimited]
        if not targets:
            return None
        from .resilience.rate_limit import Refusal

        found = await self.limiter().reserve_many(targets, tokens)
        if isinstance(found, Refusal):
            raise found.to_error()
        return found

    async def settle_limits(self, reservation: Reservation | None, actual_tokens: int) -> None:
        if reservation is not None:
            await self.limiter().finish(reservation, actual_tokens)

    # --- budgets, per request ------------------------------------------------------------------
    async def reserve_spend(
        self, request: Request, decision: RoutingDecision, worst_usd: Callable[[], Decimal]
    ) -> BudgetReservation | None:
        """Reserve the worst-case cost against every budget that applies; ``worst_usd`` is
        computed only when one does (pricing every candidate is most of the cost)."""
        extra = self.budget_source(request) if self.budget_source is not None else ()
        if not (self.config.budgets or extra):
            return None
        if self._budgets is None:
            from .budgets import BudgetTracker

            self._budgets = BudgetTracker(self.state(), self.clock, self.config.budgets)
        scopes = budget_scopes(request, decision)
        if not (extra or self._budgets.applicable(scopes)):
            return None
        return await self._budgets.reserve(scopes, worst_usd(), extra)

    async def settle_spend(
        self, reservation: BudgetReservation | None, actual_usd: Decimal
    ) -> None:
        if reservation is not None and self._budgets is not None:
            await self._budgets.reconcile(reservation, actual_usd)

    async def aclose(self) -> None:
        if self._state is not None:
            await self._state.close()
            self._state = None


def vendor_scope(vendor: str) -> str:
    return f"vendor:{vendor}"


def deployment_limits(deployment: Deployment) -> Limits:
    return Limits(
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        rpd=deployment.rpd,
        tpd=deployment.tpd,
        max_concurrency=deployment.max_concurrency,
    )


def budget_scopes(request: Request, decision: RoutingDecision) -> Sequence[str]:
    """The budget scopes a request falls under: its user, its gateway key and team (``metadata``
    ``api_key`` and ``team``, set by the gateway), its model group; ``global`` always applies."""
    scopes = []
    if request.user:
        scopes.append(f"user:{request.user}")
    metadata = request.metadata or {}
    key = metadata.get("api_key")
    if key:
        scopes.append(f"key:{key}")
    team = metadata.get("team")
    if team:
        scopes.append(f"team:{team}")
    if decision.group:
        scopes.append(f"group:{decision.group}")
    return scopes
