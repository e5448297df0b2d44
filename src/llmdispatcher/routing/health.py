"""What the dispatcher has seen of each deployment: in-flight requests, latency, errors.

Latency and time to first token are exponentially weighted moving averages (recent behaviour
dominates, so a recovered deployment wins traffic back); percentiles come from the last
``WINDOW`` samples; the error rate is over the last ``WINDOW`` outcomes.

Deployment ids can carry a client's model name (``openai/<model>`` for a model no group names),
so the map is bounded: past ``MAX_DEPLOYMENTS`` entries the least recently used idle one (no
request in flight) is dropped. A dropped deployment is simply unobserved again.

Replicas (``routing.shared_health``): ``local_views`` is what this process publishes, and
``remote`` holds the other replicas' latest views. ``view`` then merges them with the local one,
each weighted by its samples: EWMAs, percentiles and the error rate are sample-weighted means
(a percentile of the union is not recoverable from per-replica percentiles; this is close when
the replicas see similar traffic), ``samples`` the sum, ``in_flight`` this process's own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..observability.stats import percentile
from .model import HealthView

WINDOW = 200
MAX_DEPLOYMENTS = 1024
ALPHA = 0.3  # EWMA weight of the newest sample


@dataclass(slots=True)
class _Deployment:
    in_flight: int = 0
    latency: float | None = None
    ttft: float | None = None
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else (1 - ALPHA) * old + ALPHA * sample


class HealthTracker:
    def __init__(self, max_deployments: int = MAX_DEPLOYMENTS) -> None:
        self._seen: OrderedDict[str, _Deployment] = OrderedDict()
        self._max = max_deployments
        self.remote: dict[str, list[HealthView]] = {}  # deployment id -> other replicas' views

    def __len__(self) -> int:
        return len(self._seen)

    def ids(self) -> list[str]:
        """The deployments seen (and not yet forgotten), least recently used first."""
        return list(self._seen)

    def _get(self, deployment_id: str) -> _Deployment:
        found = self._seen.get(deployment_id)
        if found is None:
            found = self._seen[deployment_id] = _Deployment()
            if len(self._seen) > self._max:
                self._drop_idle(keep=deployment_id)
        else:
            self._seen.move_to_end(deployment_id)
        return found

    def _drop_idle(self, keep: str) -> None:
        """Drop the least recently used entry with nothing in flight (if every one is busy,
        the map stays over the bound until they finish: in-flight work is bounded anyway)."""
        for deployment_id, seen in self._seen.items():
            if seen.in_flight == 0 and deployment_id != keep:
                del self._seen[deployment_id]
                return

    def started(self, deployment_id: str) -> None:
        self._get(deployment_id).in_flight += 1

    def finished(
        self,
        deployment_id: str,
        *,
        ok: bool,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        counts: bool = True,
        still_open: bool = False,
    ) -> None:
        """``counts``: whether the outcome says something about the deployment's health
        (a caller's bad request or a cancellation does not). ``still_open``: a stream that
        is still being read stays in flight until ``closed``."""
        seen = self._get(deployment_id)
        if not still_open:
            seen.in_flight = max(0, seen.in_flight - 1)
        if counts:
            seen.outcomes.append(ok)
        if ok and latency_s is not None and ttft_s is None:
            seen.latency = _ewma(seen.latency, latency_s)
            seen.latencies.append(latency_s)
        if ok and ttft_s is not None:
            seen.ttft = _ewma(seen.ttft, ttft_s)
            seen.ttfts.append(ttft_s)

    def failed_after_open(self, deployment_id: str) -> None:
        """A stream that had opened (and counted as a success) broke later: a failure too."""
        self._get(deployment_id).outcomes.append(False)

    def closed(self, deployment_id: str) -> None:
        """A stream that was left in flight by ``finished(still_open=True)`` has ended."""
        seen = self._seen.get(deployment_id)
        if seen is not None:
            seen.in_flight = max(0, seen.in_flight - 1)

    def view(self, deployment_id: str) -> HealthView:
        local = self._local_view(deployment_id)
        others = self.remote.get(deployment_id)
        return local if not others else merge_views(local, others)

    def local_views(self) -> dict[str, HealthView]:
        """This process's view of every deployment it has outcomes for."""
        views = {d: self._local_view(d) for d in list(self._seen)}
        return {d: view for d, view in views.items() if view.samples}

    def _local_view(self, deployment_id: str) -> HealthView:
        seen = self._seen.get(deployment_id)
        if seen is None:
            return HealthView()
        ordered = sorted(seen.ttfts)
        latencies = sorted(seen.latencies)
        failures = sum(1 for ok in seen.outcomes if not ok)
        return HealthView(
            in_flight=seen.in_flight,
            latency_ewma_s=seen.latency,
            ttft_ewma_s=seen.ttft,
            ttft_p90_s=percentile(ordered, 90),
            ttft_p95_s=percentile(ordered, 95),
            latency_p90_s=percentile(latencies, 90),
            error_rate=failures / len(seen.outcomes) if seen.outcomes else 0.0,
            samples=len(seen.outcomes),
        )


def merge_views(local: HealthView, others: list[HealthView]) -> HealthView:
    """One view of several replicas' (see the module docstring)."""
    views = [local, *others]
    return HealthView(
        in_flight=local.in_flight,
        latency_ewma_s=_weighted(views, "latency_ewma_s"),
        ttft_ewma_s=_weighted(views, "ttft_ewma_s"),
        ttft_p90_s=_weighted(views, "ttft_p90_s"),
        ttft_p95_s=_weighted(views, "ttft_p95_s"),
        latency_p90_s=_weighted(views, "latency_p90_s"),
        error_rate=_weighted(views, "error_rate") or 0.0,
        samples=sum(v.samples for v in views),
    )


def _weighted(views: list[HealthView], name: str) -> float | None:
    pairs: list[tuple[float | None, int]] = [(getattr(v, name), v.samples) for v in views]
    known = [(value, weight) for value, weight in pairs if value is not None and weight > 0]
    if not known:
        return None
    return sum(value * weight for value, weight in known) / sum(w for _, w in known)
