"""OpenTelemetry tracing, off unless CASEBRIDGE_OTEL=true (issue 21).

The standard instrumentation (FastAPI for requests, SQLAlchemy for statements) exports
spans over OTLP/HTTP to the collector the standard variables name
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME, ...).
Each app gets its own tracer provider, shut down (flushed) with the app, rather than the
process-wide one, which can be set only once. Span attributes that would carry a path or a
query (resource ids, names searched for) are redacted once the instrumentation has set
them: the span name and http.route hold the route template instead; SQL statements carry
placeholders, never values. Needs the `otel` extra (`pip install casebridge[otel]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.engine import Engine

# Attributes of the HTTP semantic conventions (old and new names) that hold the path or
# the query string as sent.
REDACTED: Final = frozenset(
    {"http.target", "http.url", "url.full", "url.path", "url.query", "http.request.uri"}
)


def _redact(span: Any, _scope: dict[str, Any]) -> None:
    """Overwrite the attributes that hold what a client sent in its URL (the ASGI
    instrumentation's server request hook runs after it has set them)."""
    if span is None or not span.is_recording():
        return
    for key in REDACTED & set(getattr(span, "attributes", None) or {}):
        span.set_attribute(key, "[redacted]")


class Tracing:
    """One app's tracing; shutdown() flushes its spans and takes the instrumentation off
    again (the SQLAlchemy instrumentation also wraps create_engine for the whole process:
    left on, it would trace engines that are not this app's)."""

    def __init__(self, app: FastAPI, provider: TracerProvider) -> None:
        self._app = app
        self._provider = provider

    def shutdown(self) -> None:
        """Stop tracing: uninstrument, then flush and close the exporter."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().uninstrument()
        FastAPIInstrumentor.uninstrument_app(self._app)
        self._provider.shutdown()


def instrument(app: FastAPI, engine: Engine) -> Tracing:
    """Trace app's requests and engine's statements until the returned Tracing shuts down."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from app import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": "casebridge", "service.version": __version__})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="healthz,readyz,metrics",
        exclude_spans=["receive", "send"],
        server_request_hook=_redact,
    )
    # The instrumentation declares SQLAlchemy < 2.1; its event hooks are the same in 2.1
    # (the tests check that statements are traced).
    SQLAlchemyInstrumentor().instrument(
        engine=engine, tracer_provider=provider, skip_dep_check=True
    )
    return Tracing(app, provider)


__all__ = ["REDACTED", "Tracing", "instrument"]
