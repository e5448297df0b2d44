"""A vendor that behaves as the ledger saw a deployment behave, in simulated time.

It stands in for the vendor of the same name in the config being tried, behind the real
dispatcher: routing, retries, breakers, limits, budgets and hedging all run as they would live.
Each try draws an outcome for its deployment at the current simulated wall time (``ok`` or an
error class, see ``observed.py``) and a duration, sleeps that long on the virtual clock, and
answers with the recorded request's token counts (so cost comes from the price table exactly as
it would). A deployment with no record at all is not guessed: the try fails and the deployment
is listed, and the replay refuses to report.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

from .. import errors
from ..limits import Limits
from ..types import Request, Response, StreamChunk, Usage
from ..vendors.base import Vendor
from .ledger_rows import LedgerRow
from .observed import Behaviour, Observations

ROW_TAG = "llmdispatcher_replay_row"  # request metadata: which recorded request this is

_STATUS = {
    "RateLimitError": 429, "AuthenticationError": 401, "InvalidRequestError": 400,
    "ContextLengthExceeded": 400, "ModelNotFound": 404, "VendorTimeout": None,
    "VendorConnectionError": None,
}  # fmt: skip


class Unobserved(errors.VendorServerError):
    """The deployment has no record in the ledger: nothing to draw from."""


def _error(name: str, vendor: str) -> errors.VendorError:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.VendorError)):
        cls = errors.VendorServerError
    return cls(f"simulated {name} (as recorded)", vendor=vendor, status=_STATUS.get(name, 500))


class Ledgered:
    """What the simulated vendors share: the observations, the in-flight recorded requests
    (by tag), the run's random source, and what they had to make up."""

    def __init__(self, observations: Observations, rng: random.Random) -> None:
        self.observations = observations
        self.rng = rng
        self.wall_offset = 0.0  # the loop's time plus this is the simulated wall time
        self.rows: dict[str, LedgerRow] = {}  # by ROW_TAG, while in flight
        self.unobserved: Counter[str] = Counter()  # tries on deployments with no record
        self.elsewhere = 0  # tries on a deployment the recorded request never reached
        self.thin = 0  # tries whose time had too few recorded tries: the whole record used


class SimulatedVendor(Vendor):
    def __init__(
        self, name: str, pricing_name: str, shared: Ledgered, limits: Limits | None = None
    ) -> None:
        self.name = name
        self.pricing_name = pricing_name
        self.limits = limits or Limits()  # the proposed vendor's own rpm/tpm, replayed too
        self._shared = shared
        self._deployments: dict[str, tuple[str, Behaviour | None]] = {}  # by model

    def _deployment(self, model: str) -> tuple[str, Behaviour | None]:
        """``vendor/model`` and its record (or None), looked up once per model."""
        found = self._deployments.get(model)
        if found is None:
            key = f"{self.name}/{model}"
            behaviour = self._shared.observations.deployment(key)
            if behaviour is not None and not behaviour.outcomes:
                behaviour = None
            found = self._deployments[model] = (key, behaviour)
        return found

    def _draw(self, request: Request) -> tuple[LedgerRow, Behaviour, str, float]:
        """The recorded request, the deployment's record, and this try's outcome and
        duration."""
        shared = self._shared
        row = shared.rows[(request.metadata or {})[ROW_TAG]]
        key, behaviour = self._deployment(request.model)
        if behaviour is None:
            shared.unobserved[key] += 1
            raise Unobserved(f"{key}: no try on it in the ledger", vendor=self.name)
        if key not in row.reached:
            shared.elsewhere += 1
        wall = asyncio.get_running_loop().time() + shared.wall_offset
        rng = shared.rng
        outcome, local = behaviour.outcome_at(wall, rng)
        if not local:
            shared.thin += 1
        return row, behaviour, outcome, behaviour.seconds_for(outcome, rng)

    async def send(self, request: Request) -> Response:
        row, _, outcome, seconds = self._draw(request)
        await asyncio.sleep(seconds)
        if outcome != "ok":
            raise _error(outcome, self.name)
        return Response(content="", vendor=self.name, model=request.model,
                        finish_reason="stop", usage=_usage(row))  # fmt: skip

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        row, behaviour, outcome, seconds = self._draw(request)
        if outcome != "ok":
            await asyncio.sleep(seconds)
            raise _error(outcome, self.name)
        first_token = behaviour.first_token_after(seconds, self._shared.rng)
        await asyncio.sleep(first_token)
        yield StreamChunk(delta=" ")
        await asyncio.sleep(seconds - first_token)
        yield StreamChunk(finish_reason="stop", usage=_usage(row))


def _usage(row: LedgerRow) -> Usage:
    return Usage(
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.prompt_tokens + row.completion_tokens,
        cached_tokens=row.cached_tokens,
        reasoning_tokens=row.reasoning_tokens,
    )
