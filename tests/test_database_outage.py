"""The database going away: 503 with a transient issue, /readyz failing, recovery unaided."""

from __future__ import annotations

import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import Backend
from tests.factories import care_plan, patient
from tests.support.clock import fixed_clock
from tests.support.server import free_port, start_server
from tests.support.tcp_proxy import TcpProxy


def _assert_transient(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["issue"][0]["code"] == "transient"


def test_postgresql_going_away_and_coming_back(backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("a network outage applies to the PostgreSQL engine; SQLite has its own test")
    backend.truncate()
    parts = urlsplit(backend.url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    proxied = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    port = free_port()
    settings = Settings(database_url=proxied, base_url=f"http://127.0.0.1:{port}/fhir", auth="off")
    server = start_server(create_app(settings, clock=fixed_clock()), port)
    try:
        with httpx.Client(base_url=server.root, timeout=30) as http:
            rid = http.post("/fhir/Patient", json=patient()).json()["id"]
            proxy.stop()
            _assert_transient(http.post("/fhir/CarePlan", json=care_plan()))
            _assert_transient(http.get(f"/fhir/Patient/{rid}"))
            assert http.get("/readyz").status_code == 503
            assert http.get("/healthz").status_code == 200
            proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432, proxy.port)
            proxy.start()
            deadline = time.monotonic() + 10
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "did not recover"
                time.sleep(0.1)
            assert http.get(f"/fhir/Patient/{rid}").status_code == 200
            assert http.post("/fhir/CarePlan", json=care_plan()).status_code == 201
            # Nothing from the outage was half-stored.
            assert http.get("/fhir/CarePlan/_history").json()["total"] == 1
    finally:
        server.stop()
        proxy.stop()


def test_sqlite_locked_past_busy_timeout_is_503_then_recovers(backend: Backend) -> None:
    if backend.name != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL has its own outage test")
    backend.truncate()
    port = free_port()
    settings = backend.settings(db_busy_timeout_ms=200, base_url=f"http://127.0.0.1:{port}/fhir")
    server = start_server(create_app(settings, clock=fixed_clock()), port)
    path = backend.url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            blocker.execute("BEGIN EXCLUSIVE")
            _assert_transient(http.post("/CarePlan", json=care_plan()))
            blocker.execute("ROLLBACK")
            created = http.post("/CarePlan", json=care_plan())
            assert created.status_code == 201
            assert http.get("/CarePlan/_history").json()["total"] == 1
    finally:
        blocker.close()
        server.stop()
