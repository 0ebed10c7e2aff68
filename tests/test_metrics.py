"""GET /metrics (issue 21): scraped and parsed with prometheus_client's own parser, through
the real server on both databases, and through `casebridge serve --workers 2`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.main import create_app
from tests.conftest import Backend, server_with
from tests.support.auth import MovableClock, smart_server
from tests.support.clock import EPOCH, fixed_clock
from tests.support.referrals import OWNER, Referrals
from tests.support.server import LiveServer, free_port, start_server

FHIR_JSON = {"Content-Type": "application/fhir+json"}
DURATION = "casebridge_http_request_duration_seconds"


def scrape(root: str) -> tuple[str, list[Sample]]:
    response = httpx.get(f"{root}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = [
        s for family in text_string_to_metric_families(response.text) for s in family.samples
    ]
    return response.text, samples


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return sum(found)


@pytest.fixture
def metered(backend: Backend) -> Iterator[LiveServer]:
    backend.truncate()
    server = server_with(backend, metrics=True)
    try:
        yield server
    finally:
        server.stop()


def test_requests_are_counted_by_route_template_and_never_name_a_record(
    metered: LiveServer, backend: Backend
) -> None:
    _, before = scrape(metered.root)
    with httpx.Client(base_url=metered.fhir, timeout=30) as http:
        ids = []
        for _ in range(3):
            created = http.post(
                "/Patient",
                json={"resourceType": "Patient", "name": [{"family": "Nguyen-Metrics"}]},
                headers=FHIR_JSON,
            )
            assert created.status_code == 201
            ids.append(created.json()["id"])
        for rid in ids:
            assert http.get(f"/Patient/{rid}").status_code == 200
        assert http.get("/Patient/not-there-7").status_code == 404
        assert http.get("/Patient", params={"family": "Nguyen-Metrics"}).status_code == 200
    text, after = scrape(metered.root)
    count = f"{DURATION}_count"

    def grew(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        return value(after, count, **labels) - value(before, count, **labels)

    assert grew("POST", "/fhir/{resource_type}", "201") == 3
    assert grew("GET", "/fhir/{resource_type}/{resource_id}", "200") == 3
    assert grew("GET", "/fhir/{resource_type}/{resource_id}", "404") == 1
    assert grew("GET", "/fhir/{resource_type}", "200") == 1
    # Labels hold templates: no id, no name, no query value.
    request_labels = {v for s in after if s.name.startswith(DURATION) for v in s.labels.values()}
    for secret in (*ids, "not-there-7", "Nguyen-Metrics"):
        assert not any(secret in label for label in request_labels), secret
    for secret in ("not-there-7", "Nguyen-Metrics"):
        assert secret not in text
    for name in (
        "casebridge_db_pool_size",
        "casebridge_db_pool_in_use",
        "casebridge_audit_backlog",
    ):
        assert any(s.name == name for s in after), name
    assert value(after, "casebridge_db_pool_size") >= 1
    if backend.name == "sqlite":
        assert value(after, "casebridge_sqlite_write_gate_wait_seconds_count") >= 3


def test_overdue_referrals_per_receiving_agency(backend: Backend) -> None:
    backend.truncate()
    sender = server_with(backend)
    # The same database seen thirty days later: the referral has waited too long.
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir", metrics=True)
    later = start_server(create_app(settings, clock=fixed_clock(EPOCH + timedelta(days=30))), port)
    try:
        with httpx.Client(timeout=30) as http:
            referrals = Referrals(http, sender.root)
            referrals.submit()
            referrals.submit()
            _, samples = scrape(later.root)
        assert value(samples, "casebridge_referrals_overdue", agency=OWNER) == 2
    finally:
        later.stop()
        sender.stop()


def test_outbox_backlog_and_export_jobs_are_reported(metered: LiveServer, backend: Backend) -> None:
    with httpx.Client(base_url=metered.fhir, timeout=30) as http:
        subscription = http.post(
            "/Subscription",
            json={
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "metrics",
                "criteria": "Patient?gender=female",
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "http://127.0.0.1:9/nowhere",
                    "payload": "application/fhir+json",
                },
            },
            headers=FHIR_JSON,
        )
        assert subscription.status_code == 201, subscription.text
        kickoff = http.get("/$export", headers={"Prefer": "respond-async"})
        assert kickoff.status_code == 202, kickoff.text
    _, samples = scrape(metered.root)
    # No delivery worker on the test servers: the handshake waits in the outbox.
    sid = subscription.json()["id"]
    assert value(samples, "casebridge_notification_outbox_pending", subscription=sid) == 1
    assert sum(s.value for s in samples if s.name == "casebridge_export_jobs") == 1


def test_token_refusals_are_counted(backend: Backend) -> None:
    backend.truncate()
    server = smart_server(backend, MovableClock(), metrics=True)
    try:
        _, before = scrape(server.root)
        assert httpx.get(f"{server.fhir}/Patient").status_code == 401
        bad = httpx.get(f"{server.fhir}/Patient", headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401
        _, after = scrape(server.root)
        for reason in ("no_token", "invalid_token"):
            grew = value(after, "casebridge_token_failures_total", reason=reason) - value(
                before, "casebridge_token_failures_total", reason=reason
            )
            assert grew == 1, reason
    finally:
        server.stop()


def test_metrics_are_off_by_default(live: LiveServer) -> None:
    response = httpx.get(f"{live.root}/metrics")
    assert response.status_code == 404
    assert "CASEBRIDGE_METRICS" in response.text


def test_worker_processes_are_added_up(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "sqlite":
        pytest.skip("one multiprocess run is enough")
    port = free_port()
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'mp.db'}",
        "CASEBRIDGE_AUTH": "off",
        "CASEBRIDGE_METRICS": "true",
        "CASEBRIDGE_INSTALL_CONFORMANCE": "false",
        "CASEBRIDGE_ACCESS_LOG": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--migrate", "--workers", "2",
         "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{root}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        # New connections each time: the kernel spreads them over both workers.
        for _ in range(40):
            assert httpx.get(f"{root}/fhir/metadata", timeout=30).status_code == 200
        for _ in range(3):
            _, samples = scrape(root)
            served = value(
                samples, f"{DURATION}_count", route="/fhir/metadata", status="200", method="GET"
            )
            assert served == 40
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
