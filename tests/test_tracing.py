"""CASEBRIDGE_OTEL=true (issue 21): the standard OpenTelemetry instrumentation exports
request and SQL spans over OTLP/HTTP to a collector, here a real HTTP server on 127.0.0.1
decoding what it receives with the OTLP protobuf definitions; no span attribute holds a
path or a query value a client sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import Backend, server_with

FHIR_JSON = {"Content-Type": "application/fhir+json"}


class Collector:
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf bodies."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    collector.resources.append(
                        {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    )
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    found = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", found.url)
    yield found
    found.stop()


def _attributes(span: Any) -> dict[str, str]:
    return {a.key: str(getattr(a.value, a.value.WhichOneof("value"))) for a in span.attributes}


def test_requests_and_statements_are_traced_without_what_clients_sent(
    backend: Backend, collector: Collector
) -> None:
    backend.truncate()
    server = server_with(backend, otel=True)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            created = http.post(
                "/Patient",
                json={"resourceType": "Patient", "name": [{"family": "Tracey-Secret"}]},
                headers=FHIR_JSON,
            )
            assert created.status_code == 201
            rid = created.json()["id"]
            assert http.get(f"/Patient/{rid}").status_code == 200
            assert http.get("/Patient", params={"family": "Tracey-Secret"}).status_code == 200
    finally:
        server.stop()  # the app's shutdown flushes its spans
    # ... and takes the instrumentation off: no engine of another app is traced after it.
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    names = [span.name for span in collector.spans]
    assert "POST /fhir/{resource_type}" in names
    assert "GET /fhir/{resource_type}/{resource_id}" in names
    sql = [s for s in collector.spans if "db.statement" in _attributes(s)]
    assert sql, names
    assert all(r.get("service.name") == "casebridge" for r in collector.resources)
    for span in collector.spans:
        values = " ".join(_attributes(span).values()) + " " + span.name
        assert rid not in values, (span.name, _attributes(span))
        assert "Tracey-Secret" not in values, (span.name, _attributes(span))
    routes = {_attributes(s).get("http.route") for s in collector.spans}
    assert "/fhir/{resource_type}/{resource_id}" in routes


def test_tracing_is_off_by_default(backend: Backend, collector: Collector) -> None:
    backend.truncate()
    server = server_with(backend)
    try:
        assert httpx.get(f"{server.fhir}/metadata", timeout=30).status_code == 200
    finally:
        server.stop()
    assert collector.spans == []
