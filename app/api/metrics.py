"""GET /metrics (Prometheus text format; issue 21). Requests are timed by
app/api/requests.py, beside their log line.

Off unless CASEBRIDGE_METRICS=true. Never behind agency authentication and never carrying
personal data: requests are labelled by route template, not path, so no id or query value
reaches a label; the gauges count rows (app/services/usecases/metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.api.deps import ServicesDep
from app.fhir.errors import NotFound
from app.metrics import scrape_registry
from app.services.usecases.metrics import Gauges

router = APIRouter()


class _GaugeCollector(Collector):
    """One scrape's database and process gauges."""

    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Any]:
        g = self._gauges
        yield _labelled(
            "casebridge_notification_outbox_pending",
            "Notifications not yet delivered, per subscription",
            "subscription",
            g.outbox_pending,
        )
        yield _labelled(
            "casebridge_referrals_overdue",
            "Open referrals not accepted or not started in time, per receiving agency",
            "agency",
            g.referrals_overdue,
        )
        yield _labelled(
            "casebridge_export_jobs", "Bulk export jobs, per status", "status", g.export_jobs
        )
        yield GaugeMetricFamily(
            "casebridge_audit_backlog",
            "AuditEvents queued in this process, not yet written",
            value=g.audit_backlog,
        )
        yield GaugeMetricFamily(
            "casebridge_db_pool_size",
            "Database connections kept in this process's pool",
            value=g.pool_size,
        )
        yield GaugeMetricFamily(
            "casebridge_db_pool_in_use",
            "Database connections of this process in use now",
            value=g.pool_in_use,
        )


def _labelled(name: str, documentation: str, label: str, values: dict[str, int]) -> Any:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    """The metrics of this process (of all of them, in multiprocess mode) and the gauges."""
    if not services.settings.metrics:
        raise NotFound("Metrics are off (CASEBRIDGE_METRICS=true serves them here)")
    gauges = CollectorRegistry()
    gauges.register(_GaugeCollector(services.metrics.gauges()))
    body = generate_latest(scrape_registry()) + generate_latest(gauges)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
