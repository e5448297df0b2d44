"""OpenTelemetry tracing settings (``Config.tracing``): plain values; the work is in
``observability/tracing.py``, which needs ``pip install 'llmdispatcher[otel]'``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Set in the environment, these turn tracing on for ``llmdispatcher serve`` (standard OTel).
OTLP_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True, slots=True)
class Tracing:
    """One span per request (``chat {model}``, GenAI semantic conventions) and one child per
    try (retries, fallbacks and hedges), exported over OTLP/HTTP.

    Unset fields follow the standard variables: ``endpoint`` ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``service_name`` ``OTEL_SERVICE_NAME`` (else
    ``llmdispatcher``), the sampler ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``
    unless ``sample_ratio`` is set (a parent-based ratio). With neither an endpoint nor the
    variables, spans go to the application's global tracer provider. ``tracer_provider``
    (code only) replaces all of that, e.g. with an SDK provider of the caller's. Prompts and
    answers are recorded only with ``Config.log_content``.
    """

    endpoint: str | None = None
    service_name: str | None = None
    sample_ratio: float | None = None
    tracer_provider: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        ratio = self.sample_ratio
        if ratio is not None and not (isinstance(ratio, int | float) and 0 <= ratio <= 1):
            raise ValueError("tracing.sample_ratio: must be a number between 0 and 1")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("tracing.endpoint: must be an http:// or https:// URL")
