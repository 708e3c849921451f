"""OpenTelemetry tracing across the queue, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

Off, a service has no tracer (None) and runs no tracing code at all: no span is started, not
even a no-op one, and the SDK is never imported. On, it gets its own TracerProvider that sends
spans in batches over OTLP/HTTP.

One vote's path: vote's `POST /` span puts its W3C `traceparent` in the queue message; the
worker's span for a batch links to every vote in it (a batch serves many traces, so links,
not parent and child), and its commit span sets the same header as a transaction setting that
the tally trigger sends as its NOTIFY payload; result's span for a notification links to that
commit, and its push span says how many viewers got the change.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.trace import Link, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import TracingSettings

# Attribute names of our own, beside OpenTelemetry's semantic conventions.
BATCH_SIZE = "voting.batch.size"
BATCH_VOTES = "voting.batch.votes"
ROWS_UPSERTED = "voting.batch.rows_upserted"
VIEWERS = "voting.viewers"
NOTIFICATIONS = "voting.notifications"

_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_TRACEPARENT = 128


def provider(settings: TracingSettings) -> TracerProvider | None:
    """A TracerProvider exporting to the collector, or None when tracing is off."""
    if not settings.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sdk = SdkTracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        span_limits=SpanLimits(max_links=settings.max_links),
    )
    sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.traces_url)))
    return sdk


def tracer(tracer_provider: TracerProvider | None, name: str) -> Tracer | None:
    """The tracer a service uses, or None when tracing is off."""
    return None if tracer_provider is None else tracer_provider.get_tracer(name)


def shutdown(tracer_provider: TracerProvider | None) -> None:
    """Send the spans still buffered; on exit, so the last batch's trace is not lost."""
    if tracer_provider is not None and hasattr(tracer_provider, "shutdown"):
        tracer_provider.shutdown()


def traceparent() -> str | None:
    """The W3C traceparent of the current span, for a queue message or a NOTIFY payload."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def parent_from(headers) -> object:
    """The context an incoming request's `traceparent` header continues (a proxy's trace)."""
    return _PROPAGATOR.extract(headers)


def link_to(header: str) -> Link | None:
    """A span link to the span a traceparent names, or None if it names none."""
    if not header or len(header) > _MAX_TRACEPARENT:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": header})).get_span_context()
    return Link(context) if context.is_valid else None


def links_to(headers: Iterable[str]) -> list[Link]:
    return [link for header in headers if (link := link_to(header)) is not None]
