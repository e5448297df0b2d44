"""OpenTelemetry traces (``Config.tracing``; ``pip install 'llmdispatcher[otel]'``).

Imported only when tracing is configured: with it off, nothing of OpenTelemetry is loaded and
the request path pays one ``None`` check per request and per try.

Spans, after the GenAI semantic conventions::

    chat {model}                   one per request (kind CLIENT; ``embeddings {model}`` for
                                   an embedding request), from the dispatcher's start
    ├── chat {deployment model}    one per try: retries, fallbacks, both sides of a hedge
    └── chat {deployment model}

The request span carries the request parameters, the routing decision (rule, strategy,
group, chosen deployment), the answer's model, finish reasons, token usage, cost and cache
outcome, and ``error.type`` on failure; a try span its vendor (``gen_ai.system``), model,
status and usage. A try's span context goes out on the vendor request as ``traceparent`` /
``tracestate`` (``vendors/transport.py``). At the gateway a client's ``traceparent`` becomes
the request span's parent (``remote_parent``). Prompts and answers are recorded only when
``Config.log_content`` is on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..settings.tracing import OTLP_ENV, Tracing
from ..vendors.transport import TRY_TRACE, TryTrace
from .events import AttemptFinished, Event, RequestFinished

if TYPE_CHECKING:
    from ..lifecycle.accounting import Ticket
    from ..lifecycle.scope import Trip
    from ..settings.routing import Deployment

W3C = TraceContextTextMapPropagator()


class RequestTracer:
    """Starts and ends the spans; ``Services.tracer`` when tracing is on. ``on_event`` (a
    dispatcher subscriber) ends try spans as their ``AttemptFinished`` arrives."""

    def __init__(self, settings: Tracing, *, log_content: bool = False) -> None:
        self._own = None
        provider = settings.tracer_provider
        if provider is None and (settings.endpoint or any(os.environ.get(v) for v in OTLP_ENV)):
            provider = self._own = own_provider(settings)
        provider = provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("llmdispatcher")
        self._content = log_content
        # Try spans by (request id, deployment id), oldest first: a retry waits behind its try.
        self._tries: dict[tuple[str, str], list[tuple[trace.Span, TryTrace]]] = {}

    # --- the request ---------------------------------------------------------------------
    def request_started(self, ticket: Ticket) -> None:
        request = ticket.request
        operation = _operation(request.kind)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": request.model,
        }
        for name, value in (
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.top_p", request.top_p),
        ):
            if value is not None:
                attributes[name] = value
        if self._content:
            messages = [{"role": m.role, "content": m.text} for m in request.message_list]
            attributes["gen_ai.input.messages"] = orjson.dumps(messages).decode()
        span = self._tracer.start_span(
            f"{operation} {request.model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        ticket.span = span
        found = span.get_span_context()
        if found.is_valid:  # not under a no-op provider (the application set none up)
            ticket.trace_id = format(found.trace_id, "032x")

    def request_finished(self, ticket: Ticket, event: RequestFinished) -> None:
        span = ticket.span
        if not isinstance(span, trace.Span):
            return
        span.set_attributes(_finished_attributes(event))
        decision = ticket.decision
        if decision is not None:
            span.set_attribute("llmdispatcher.routing.strategy", decision.strategy)
            if decision.rule is not None:
                rule = decision.rule
                span.set_attribute("llmdispatcher.routing.rule", rule.name or _rule_target(rule))
        if self._content and ticket.response is not None:
            answer = [{"role": "assistant", "content": ticket.response.content}]
            span.set_attribute("gen_ai.output.messages", orjson.dumps(answer).decode())
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, event.error))
        span.end()

    # --- the tries ------------------------------------------------------------------------
    def attempt_started(self, trip: Trip, deployment: Deployment) -> None:
        parent = trip.span if isinstance(trip.span, trace.Span) else None
        operation = _operation(trip.request.kind)
        span = self._tracer.start_span(
            f"{operation} {deployment.model}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.system": deployment.vendor,
                "gen_ai.request.model": deployment.model,
                "llmdispatcher.deployment": deployment.id,
            },
        )
        headers: dict[str, str] = {}
        W3C.inject(headers, context=trace.set_span_in_context(span))
        current = TryTrace(headers)
        TRY_TRACE.set(current)  # read by the vendor's HTTP request in this task
        self._tries.setdefault((trip.request_id, deployment.id), []).append((span, current))

    def on_event(self, event: Event) -> None:
        if not isinstance(event, AttemptFinished) or event.deployment is None:
            return
        key = (event.request_id, event.deployment)
        tries = self._tries.get(key)
        if not tries:
            return
        span, current = tries.pop(0)
        if not tries:
            del self._tries[key]
        current.live = False
        attempt = event.attempt
        span.set_attribute("llmdispatcher.attempt.status", attempt.status)
        if event.usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", event.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", event.usage.completion_tokens)
        if attempt.status not in ("ok", "cancelled"):
            span.set_attribute("error.type", attempt.status)
            span.set_status(Status(StatusCode.ERROR, attempt.error or attempt.status))
        span.end()

    def shutdown(self) -> None:
        """Flush and stop our own exporter (an application's provider is its own to stop)."""
        if self._own is not None:
            self._own.shutdown()


def _operation(kind: str) -> str:
    """The GenAI operation name: ``chat``, or ``embeddings`` for an embedding request."""
    return "embeddings" if kind == "embedding" else "chat"


def _finished_attributes(event: RequestFinished) -> dict[str, Any]:
    found: dict[str, Any] = {"llmdispatcher.attempts": len(event.attempts)}
    optional: dict[str, Any] = {
        "gen_ai.system": event.vendor,
        "gen_ai.response.model": event.model,
        "llmdispatcher.routing.group": event.group,
        "llmdispatcher.routing.deployment": event.deployment,
        "llmdispatcher.cost_usd": event.cost_usd,
        "llmdispatcher.cache": event.cache,
        "error.type": event.error,
    }
    found.update({k: v for k, v in optional.items() if v is not None})
    if event.finish_reason is not None:
        found["gen_ai.response.finish_reasons"] = (event.finish_reason,)
    usage = event.usage or event.saved_usage
    if usage is not None:
        found["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        found["gen_ai.usage.output_tokens"] = usage.completion_tokens
    return found


def _rule_target(rule: Any) -> str:
    return str(rule.group or rule.deployment or rule.vendor or rule.strategy)


def own_provider(settings: Tracing) -> Any:
    """An SDK tracer provider exporting over OTLP/HTTP in batches, with the service name and
    sampler from the settings or the standard variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or "llmdispatcher"
    options: dict[str, Any] = {"resource": Resource.create({SERVICE_NAME: name})}
    if settings.sample_ratio is not None:
        options["sampler"] = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    provider = TracerProvider(**options)
    endpoint = settings.endpoint
    if endpoint is not None and urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # a collector's base URL, as the env's
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def remote_parent(headers: Mapping[str, str]) -> object | None:
    """Make a client's ``traceparent``/``tracestate`` the parent of the spans this task
    starts; returns the token for ``release`` (None when the client sent none)."""
    if "traceparent" not in headers:
        return None
    return otel_context.attach(W3C.extract(headers))


def release(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
