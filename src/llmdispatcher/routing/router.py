"""One routing decision per request: target, then filtering, then ranking.

1. **Target**: ``request.vendor`` (exactly that vendor) > the best matching rule (a vendor, a
   deployment, a model group, and/or a strategy) > the model group named like the requested
   model > ``default_vendor`` > a vendor that claims the model (``Vendor.serves``: ``claude-*``
   goes to Anthropic) > the first registered vendor; then ``fallback_vendors`` (or the group's
   ``fallbacks`` chain).
2. **Filtering**: a deployment that cannot serve the request is excluded with its reason:
   a missing capability (tools, images, JSON), a context window too small for the estimated
   prompt + max_tokens (the group's ``context_window_fallbacks`` are then added), an open
   circuit breaker.
3. **Ranking**: the strategy (the rule's, else the group's, else ``priority``) orders what is
   left, with a score and a reason for each.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..config import Config
from ..errors import ConfigError, ContextLengthExceeded, NoVendorsRegistered, VendorError
from ..resilience.circuit_breaker import BreakerBoard
from ..settings.routing import Deployment, ModelGroup
from ..settings.rules import RequestFacts, RoutingRule, first_match
from ..types import Request
from ..vendors.base import Vendor
from .health import HealthTracker
from .model import Candidate, RankContext, RoutingDecision, Strategy
from .strategies import estimate_cost_usd, get_strategy

if TYPE_CHECKING:
    from ..pricing.table import PriceTable

V = TypeVar("V")
DEFAULT_MAX_TOKENS = 1024  # what a request without max_tokens is assumed to produce


@dataclass(frozen=True, slots=True)
class _Target:
    deployments: tuple[Deployment, ...]
    strategy: str
    group: ModelGroup | None
    rule: RoutingRule | None
    reason: str
    fallbacks: bool  # whether fallback_vendors / group fallbacks apply


class Router:
    def __init__(
        self,
        config: Config,
        vendors: Mapping[str, Vendor],
        health: HealthTracker,
        breakers: BreakerBoard,
        prompt_tokens: Callable[[Request], int],
        prices: Callable[[], PriceTable] | None = None,
    ) -> None:
        self.config = config
        self._prices = prices
        self.vendors = vendors
        self.health = health
        self.breakers = breakers
        self._prompt_tokens = prompt_tokens
        self.groups = {g.name: g for g in config.model_groups}
        # Strategies hold no state (randomness and observations come in the RankContext):
        # one instance per name serves every request.
        self._strategies: dict[str, Strategy] = {}

    def decide(
        self, request: Request, *, stream: bool, now_wall: float, rng: object
    ) -> RoutingDecision:
        if not self.vendors:
            raise NoVendorsRegistered()
        facts = RequestFacts(
            prompt_tokens=self._prompt_tokens(request),
            chars=sum(len(m.text) for m in request.message_list),
            stream=stream,
            now_wall=now_wall,
        )
        target = self._target(request, facts)
        decision = RoutingDecision(
            rule=target.rule,
            strategy=target.strategy,
            group=target.group.name if target.group else None,
            candidates=[],
            reason=target.reason,
        )
        context = self._context(request, facts, target, rng)
        decision.context = context
        decision.candidates = self._ranked(target.deployments, target.strategy, context, decision)
        if target.fallbacks:
            decision.candidates += self._fallbacks(request, target, context, decision)
        if (
            decision.breaker_blocked
            and len(decision.breaker_blocked) == len(decision.excluded)
            and all(self.breakers.paused_for(c.deployment.id) for c in decision.candidates)
        ):
            decision.candidates.append(self._probe(decision.breaker_blocked))
        return decision

    def _probe(self, blocked: Sequence[Deployment]) -> Candidate:
        """Every candidate's breaker is open, or every one left is paused by its vendor's 429:
        rather than fail the request, send it to the deployment whose breaker would close
        first, as its half-open probe (after the paused ones, in case a pause ends first).
        Without this, a vendor's 1 s Retry-After on the one deployment still up turned into a
        429 for every request meanwhile (the soak: 12,000 of 30,000)."""
        soonest = min(blocked, key=lambda d: self.breakers.open_until(d.id) or 0.0)
        return Candidate(soonest, detail="every breaker is open: the half-open probe", probe=True)

    # --- 1. target ---------------------------------------------------------------------
    def _target(self, request: Request, facts: RequestFacts) -> _Target:
        model = request.model
        if request.vendor:
            return _Target(
                (self._deployment(request.vendor, model, "request.vendor"),),
                "override",
                None,
                None,
                "request.vendor override",
                False,
            )
        rule = first_match(self.config.routing_rules, request, facts)
        if rule is not None:
            return self._rule_target(rule, request, facts)
        return self._default_target(request)

    def _rule_target(self, rule: RoutingRule, request: Request, facts: RequestFacts) -> _Target:
        reason = f"rule {rule.name or rule.priority}"
        if rule.vendor:
            deployment = self._deployment(rule.vendor, request.model, "routing rule")
            return _Target((deployment,), rule.strategy or "priority", None, rule, reason, True)
        if rule.deployment:
            group, deployment = self._find_deployment(rule.deployment)
            return _Target((deployment,), rule.strategy or "priority", group, rule, reason, True)
        if rule.group:
            group = self._group(rule.group, "routing rule")
            return _Target(
                group.deployments, rule.strategy or group.strategy, group, rule, reason, True
            )
        base = self._default_target(request)  # a strategy-only rule re-ranks the default
        return _Target(
            base.deployments,
            rule.strategy or base.strategy,
            base.group,
            rule,
            f"{reason} (strategy over {base.reason})",
            True,
        )

    def _default_target(self, request: Request) -> _Target:
        model = request.model
        group = self.groups.get(model)
        if group is not None:
            return _Target(
                group.deployments, group.strategy, group, None, f"model group {group.name!r}", True
            )
        name = self.config.default_vendor
        reason = "default_vendor"
        if not name:
            vendors = self.vendors.items()
            name = next((v for v, vendor in vendors if vendor.serves(model)), "")
            reason = f"vendor serves {model!r}"
            if not name:
                takers = (v for v, vendor in vendors if vendor.accepts_kind(request.kind))
                name, reason = next(takers, next(iter(self.vendors))), "first registered vendor"
        return _Target(
            (self._deployment(name, model, reason),), "priority", None, None, reason, True
        )

    def _deployment(self, vendor: str, model: str, source: str) -> Deployment:
        if vendor not in self.vendors:
            raise ConfigError(
                f"vendor {vendor!r} (from {source}) is not registered; "
                f"registered: {', '.join(self.vendors)}"
            )
        return _plain_deployment(vendor, model)

    def _group(self, name: str, source: str) -> ModelGroup:
        group = self.groups.get(name)
        if group is None:
            raise ConfigError(
                f"model group {name!r} (from {source}) does not exist; "
                f"groups: {', '.join(self.groups) or 'none'}"
            )
        return group

    def _find_deployment(self, deployment_id: str) -> tuple[ModelGroup | None, Deployment]:
        for group in self.groups.values():
            for deployment in group.deployments:
                if deployment.id == deployment_id:
                    return group, deployment
        raise ConfigError(
            f"deployment {deployment_id!r} (from a routing rule) is in no model group"
        )

    # --- 2. filtering and 3. ranking ------------------------------------------------------
    def _context(
        self, request: Request, facts: RequestFacts, target: _Target, rng: object
    ) -> RankContext:
        # An embedding produces no tokens: limits and budgets reserve its input alone.
        max_tokens = 0 if request.kind == "embedding" else request.max_tokens or DEFAULT_MAX_TOKENS
        deployments = (*target.deployments, *self._all_fallback_deployments(target))
        by_id = {d.id: d for d in deployments}  # read-only: both lazy maps share it
        return RankContext(
            request=request,
            prompt_tokens=facts.prompt_tokens,
            max_tokens=max_tokens,
            stream=facts.stream,
            health=_Lazy(by_id, lambda d: self.health.view(d.id)),
            cost_per_request=_Lazy(
                by_id, lambda d: self._estimate_cost(d, facts.prompt_tokens, max_tokens)
            ),
            rng=rng if isinstance(rng, random.Random) else random.Random(),
            group=target.group,
        )

    def _estimate_cost(self, deployment: Deployment, prompt: int, answer: int) -> float | None:
        """USD for ``prompt`` tokens in and ``answer`` out: the deployment's own prices, else
        the price table's row for its vendor and model (None when neither knows)."""
        own = estimate_cost_usd(deployment, prompt, answer)
        if own is not None or self._prices is None:
            return own
        vendor = self.vendors.get(deployment.vendor)
        section = (vendor.pricing_name if vendor is not None else "") or deployment.vendor
        price = self._prices().lookup(section, deployment.model)
        if price is None:
            return None
        return float(prompt * price.input + answer * price.output) / 1_000_000

    def _ranked(
        self,
        deployments: Sequence[Deployment],
        strategy: str,
        context: RankContext,
        decision: RoutingDecision,
    ) -> list[Candidate]:
        usable = []
        for deployment in deployments:
            refusal = self.refusal(deployment, context)
            if refusal is None:
                usable.append(deployment)
            else:
                self._exclude(deployment, refusal, decision)
        if not usable:
            return []
        return self._strategy(strategy).rank(usable, context)

    def _strategy(self, name: str) -> Strategy:
        found = self._strategies.get(name)
        if found is None:
            found = get_strategy("priority" if name == "override" else name)
            self._strategies[name] = found
        return found

    def refusal(self, deployment: Deployment, context: RankContext) -> VendorError | str | None:
        """Why ``deployment`` cannot take this request now (the vendor's own error when it
        refused the request itself), or None."""
        vendor = self.vendors.get(deployment.vendor)
        if vendor is None:
            return f"vendor {deployment.vendor!r} is not registered"
        try:
            vendor.check(
                context.request
                if deployment.model == context.request.model
                else context.request.with_model(deployment.model)
            )
        except VendorError as exc:
            return exc
        window = deployment.context_window or vendor.capabilities.max_context
        if context.request.kind == "embedding":
            window = None  # a chat window; embedding models bound each input, and say so
        needed = context.prompt_tokens + context.max_tokens
        if window is not None and needed > window:
            return ContextLengthExceeded(
                f"context window too small for {deployment.id} ({needed} tokens needed for the "
                f"estimated prompt + max_tokens > {window})",
                vendor=deployment.vendor,
            )
        return self.breakers.blocked(deployment.id)

    def _exclude(
        self, deployment: Deployment, refusal: VendorError | str, decision: RoutingDecision
    ) -> None:
        if deployment.id in decision.excluded:
            return
        if isinstance(refusal, VendorError):
            decision.excluded[deployment.id] = refusal.message
            decision.refusals[deployment.id] = refusal
        else:
            decision.excluded[deployment.id] = refusal
            if self.breakers.blocked(deployment.id) == refusal:
                decision.breaker_blocked.append(deployment)

    def _fallbacks(
        self, request: Request, target: _Target, context: RankContext, decision: RoutingDecision
    ) -> list[Candidate]:
        seen = {c.deployment.id for c in decision.candidates} | set(decision.excluded)
        extra: list[Candidate] = []
        groups = self._fallback_groups(target, decision)
        for group in groups:
            for candidate in self._ranked(group.deployments, group.strategy, context, decision):
                if candidate.deployment.id not in seen:
                    seen.add(candidate.deployment.id)
                    extra.append(candidate)
        if target.group is None:
            for name in self.config.fallback_vendors:
                deployment = self._deployment(name, request.model, "fallback_vendors")
                if deployment.id not in seen:
                    seen.add(deployment.id)
                    extra += self._ranked([deployment], "priority", context, decision)
        return extra

    def _fallback_groups(self, target: _Target, decision: RoutingDecision) -> list[ModelGroup]:
        """The fallback chain, breadth first, each group once; context-window fallbacks first
        when the target's own deployments were excluded for their window."""
        if target.group is None:
            return []
        too_small = any(
            "context window" in decision.excluded.get(d.id, "") for d in target.deployments
        )
        names = [
            *(target.group.context_window_fallbacks if too_small else ()),
            *target.group.fallbacks,
        ]
        chain: list[ModelGroup] = []
        while names:
            group = self._group(names.pop(0), f"fallbacks of {target.group.name!r}")
            if group is not target.group and group not in chain:
                chain.append(group)
                names.extend(group.fallbacks)
        return chain

    def _all_fallback_deployments(self, target: _Target) -> list[Deployment]:
        if target.group is None:
            return []
        found: list[Deployment] = []
        for name in (
            *target.group.fallbacks,
            *target.group.context_window_fallbacks,
            *target.group.content_filter_fallbacks,
        ):
            group = self.groups.get(name)
            if group is not None:
                found += group.deployments
        return found

    def late_fallbacks(self, decision: RoutingDecision, kind: str) -> list[Candidate]:
        """Candidates of the group's ``context_window_fallbacks`` (kind ``context``) or
        ``content_filter_fallbacks``, for failures that only show after sending."""
        owner = self.groups.get(decision.group or "")
        if owner is None or decision.context is None:
            return []
        names = (
            owner.context_window_fallbacks if kind == "context" else owner.content_filter_fallbacks
        )
        found: list[Candidate] = []
        for name in names:
            fallback = self._group(name, f"{kind} fallbacks of {owner.name!r}")
            found += self._ranked(
                fallback.deployments, fallback.strategy, decision.context, decision
            )
        return found


class _Lazy(Mapping[str, V]):
    """Per-deployment values computed on first access: only the strategies that look at
    health or cost pay for computing them (most requests use ``priority``)."""

    def __init__(
        self, deployments: dict[str, Deployment], compute: Callable[[Deployment], V]
    ) -> None:
        self._deployments = deployments
        self._compute = compute
        self._done: dict[str, V] = {}

    def __getitem__(self, key: str) -> V:
        if key not in self._done:
            self._done[key] = self._compute(self._deployments[key])
        return self._done[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._deployments)

    def __len__(self) -> int:
        return len(self._deployments)


@functools.lru_cache(maxsize=1024)
def _plain_deployment(vendor: str, model: str) -> Deployment:
    """``Deployment(vendor, model)``, built once: a frozen value, asked for on every request
    (its checked, frozen ``__init__`` costs more than the lookup)."""
    return Deployment(vendor, model)
