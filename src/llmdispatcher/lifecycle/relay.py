"""Relaying a stream that has won to the caller, leg by leg.

A stream's first leg is the try that won. When it breaks after its first piece, the caller
has text, so the request cannot simply be retried elsewhere (the caller would see the text
twice). ``on_stream_break`` (per model group, or ``Config.on_stream_break``) decides:

* ``error`` (the default): raise ``StreamInterrupted`` with the text delivered so far. The
  caller knows exactly what it got.
* ``resume``: continue on the next candidate, sending the text so far as an assistant message
  (a prefill: Anthropic, Mistral and llama.cpp continue it; other vendors may start a new
  sentence or repeat a few words), and relay that leg's pieces after the first's. The final
  chunk lists the deployments that broke in ``resumed_from``. The trade-off: one complete
  answer instead of an error, at the price of a seam the model may not make invisible, and
  of paying for the prompt twice. A stream that already sent tool-call pieces is never resumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from ..errors import DispatcherError, StreamInterrupted, VendorError
from ..resilience.deadline import Deadline
from ..resilience.retry import vendor_fault
from ..settings.routing import Deployment
from ..streaming import FinalChunk
from ..types import Message, StreamChunk, Usage
from .kinds import StartedStream, StreamKind
from .runner import Runner, Won
from .scope import Trip


@dataclass(slots=True)
class Leg:
    """One deployment's part of the answer, and the usage it reported."""

    deployment: Deployment
    usage: Usage | None = None
    model: str = ""  # as the vendor named it in its chunks (priced by that name)


class StreamRelay:
    def __init__(
        self, runner: Runner, kind: StreamKind, trip: Trip, won: Won[StartedStream]
    ) -> None:
        self.runner, self.kind, self.trip, self.won = runner, kind, trip, won
        self.final = FinalChunk(won.deployment.vendor, won.deployment.model)
        self.legs: list[Leg] = []

    @property
    def resumed_from(self) -> tuple[str, ...]:
        return tuple(leg.deployment.id for leg in self.legs[:-1])

    @property
    def usage(self) -> Usage | None:
        """The answer's usage: every leg's, added up."""
        found = [leg.usage for leg in self.legs if leg.usage is not None]
        if len(found) < 2:
            return found[0] if found else None
        return Usage(*(sum(getattr(u, f) for u in found) for f in Usage.__dataclass_fields__))

    async def chunks(self) -> AsyncIterator[StreamChunk]:
        """The pieces as the caller sees them; each leg's scope closes when its leg ends."""
        won = self.won
        while True:
            leg = Leg(won.deployment)
            self.legs.append(leg)
            try:
                async with won.scope.closing():
                    try:
                        async for chunk in self._leg(won.value, leg):
                            yield chunk
                    finally:
                        await won.value.aclose()  # hang up (a no-op once it ended)
                        won.scope.usage = leg.usage
                return
            except StreamInterrupted as broke:
                won = await self._resume(broke, won.deployment)
                self.final.vendor = won.deployment.vendor

    async def _leg(self, started: StartedStream, leg: Leg) -> AsyncIterator[StreamChunk]:
        """A vendor error now is too late to fail over (text has reached the caller), so it
        becomes ``StreamInterrupted``. The leg's usage and model are what it last reported."""
        final = self.final
        fold, strip = final.fold, final.strip
        fold.usage = None  # this leg's own, from here
        try:
            for chunk in started.head:
                if fold.add(chunk):
                    yield strip(chunk)
            if not started.ended:
                async for chunk in started.chunks:
                    if fold.add(chunk):
                        yield strip(chunk)
        except VendorError as exc:
            raise StreamInterrupted(
                f"the stream failed after output reached the caller: {exc}",
                vendor=final.vendor,
                partial_text=final.text,
                status=exc.status,
            ) from exc
        finally:
            leg.usage, leg.model = fold.usage, fold.model

    async def _resume(self, broke: StreamInterrupted, where: Deployment) -> Won[StartedStream]:
        """The next candidate's stream, continuing the text so far; or ``broke`` re-raised."""
        trip = self.trip
        ids = [c.deployment.id for c in trip.decision.candidates]
        rest = trip.decision.candidates[ids.index(where.id) + 1 :] if where.id in ids else []
        if not (rest and self._resumes(broke)):
            raise broke
        request = trip.request
        prefix = Message(role="assistant", content=self.final.text)
        leg_trip = Trip(
            replace(request, messages=[*request.message_list, prefix]),
            trip.request_id,
            replace(trip.decision, candidates=list(rest)),  # the same list of attempts
            Deadline.after(self.runner.s.clock, request.timeout or self.runner.s.config.timeout),
            stream=True,
            worst_tokens=trip.worst_tokens,
        )
        try:
            return await self.runner.run(self.kind, leg_trip)
        except DispatcherError:
            raise broke from None  # no candidate could continue: the break stands

    def _resumes(self, broke: StreamInterrupted) -> bool:
        config = self.runner.s.config
        group = self.runner.router.groups.get(self.trip.decision.group or "")
        policy = (group.on_stream_break if group is not None else None) or config.on_stream_break
        return (
            policy == "resume"
            and broke.__cause__ is not None
            and vendor_fault(broke.__cause__)
            and not self.final.fold.has_tool_calls
            and not self.final.fold.cut  # the prefix would be incomplete
        )
