"""Process metrics in the Prometheus exposition format (GET /metrics, issue 21).

The instruments here are counted where things happen (requests, the SQLite write gate,
notification deliveries, token refusals); what lives in the database (outbox backlog,
overdue referrals, export jobs) is counted when scraped, by a collector the app registers
(app/api/health.py). Labels never carry personal data: route templates (not paths), status
codes, agency and subscription ids, reasons from a fixed list.

With several worker processes behind one port (`casebridge serve --workers N`) each
process writes its values to PROMETHEUS_MULTIPROC_DIR and a scrape adds them up
(prometheus_client's multiprocess mode): the serve command sets that directory up.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Latency buckets from 1 ms to 10 s (FHIR reads take milliseconds, large transactions seconds).
_SECONDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS: Final = Histogram(
    "casebridge_http_request_duration_seconds",
    "HTTP requests by route template, method and status, and how long they took",
    ["method", "route", "status"],
    buckets=_SECONDS,
)
WRITE_GATE_WAIT: Final = Histogram(
    "casebridge_sqlite_write_gate_wait_seconds",
    "How long SQLite writers waited for the write gate",
    buckets=_SECONDS,
)
DELIVERIES: Final = Counter(
    "casebridge_notification_deliveries",
    "Notification deliveries attempted, by subscription and outcome (sent or failed)",
    ["subscription", "outcome"],
)
TOKEN_FAILURES: Final = Counter(
    "casebridge_token_failures",
    "Refused access-token requests and bearer tokens, by reason",
    ["reason"],
)


def multiprocess() -> bool:
    """Whether values are shared between processes through PROMETHEUS_MULTIPROC_DIR."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: every process's values in multiprocess mode, else this
    process's (the default registry's instruments)."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


__all__ = [
    "DELIVERIES",
    "REQUESTS",
    "TOKEN_FAILURES",
    "WRITE_GATE_WAIT",
    "multiprocess",
    "scrape_registry",
]
