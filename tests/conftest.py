"""Test set-up: every database-touching test runs on SQLite and on PostgreSQL.

PostgreSQL comes from CASEBRIDGE_TEST_DATABASE_URL (default: the local server at
127.0.0.1:5432, database test). Each run works in its own schema, dropped at the end.
When PostgreSQL does not answer, its runs are skipped with a reason, unless
CASEBRIDGE_REQUIRE_POSTGRES=1 (set by .ci/run), in which case they fail.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.main import create_app
from app.services.container import Services, build_services
from app.storage.db import create_db_engine, upgrade
from app.storage.tables import metadata
from tests.support.clock import fixed_clock
from tests.support.server import LiveServer, free_port, start_server

PG_URL = os.environ.get("CASEBRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("CASEBRIDGE_REQUIRE_POSTGRES") == "1"
_pg_problem: str | None = None


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} does not answer: {exc}".strip()
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _pg_problem
    _pg_problem = _pg_reachable()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_problem:
        terminalreporter.write_line(
            f"NOTE: the PostgreSQL runs were skipped ({_pg_problem}). "
            "Set CASEBRIDGE_TEST_DATABASE_URL to run them.",
            yellow=True,
        )


@dataclass
class Backend:
    """A migrated database for one test session."""

    name: str
    url: str
    engine: Engine

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.url,
            "environment": "test",
            "auth": "off",
            # Tests count what they write; the conformance tests turn this on.
            "install_conformance": False,
            # No background delivery worker on the shared test databases: it would query
            # while fixtures TRUNCATE. Subscription tests run their own (and own database).
            "notify_worker": False,
            # The fixtures write agencies' records with ids chosen by the test (PUT). The
            # production default (off) is what the attacker matrix runs on
            # (tests/test_write_access.py), with its own server.
            "agency_update_create": True,
            # Webhook receivers in tests listen on 127.0.0.1; tests/test_write_access.py
            # checks the default that refuses such endpoints.
            "notify_allow_private_endpoints": True,
            # A write in a read transaction fails every time (app/storage/db.py).
            "sqlite_read_only_guard": True,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def _delete_all(self, conn: Connection, tables: list[str], script: str) -> None:
        if self.name == "postgresql":
            conn.exec_driver_sql(script)
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))

    def truncate(self) -> None:
        """Empty every table. DELETE, not TRUNCATE, on PostgreSQL too: a test's tables hold
        a few rows, which DELETE removes in about 5 ms where TRUNCATE (new files for 21
        tables and their indexes) takes 80-140 ms, and the client fixture empties the
        database before every test. No test depends on a restarted row-id sequence."""
        tables = [t.name for t in reversed(metadata.sorted_tables)]
        script = "; ".join(f"DELETE FROM {table}" for table in tables)
        for attempt in range(5):
            try:
                with self.engine.connect() as conn:
                    if self.name == "sqlite":
                        # A writer takes SQLite's write lock up front, as the server's do.
                        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                    with conn.begin():
                        self._delete_all(conn, tables, script)
                return
            except OperationalError:
                # A server thread of the previous test still finishing (the audit flush)
                # can hold a row lock for a moment, or deadlock the DELETEs.
                if attempt == 4:
                    raise
                time.sleep(0.2)


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def migrated_database(
    name: str, tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> Iterator[Backend]:
    """A new, migrated database of one engine (a SQLite file, or a PostgreSQL schema dropped
    afterwards), for a session or a module that must not share the session's."""
    if name == "sqlite":
        path: Path = tmp_path_factory.mktemp(prefix) / "casebridge.db"
        url = f"sqlite:///{path}"
        engine = create_db_engine(url, sqlite_read_only_guard=True)
        upgrade(engine)
        try:
            yield Backend("sqlite", url, engine)
        finally:
            engine.dispose()
        return
    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = _pg_schema_url(schema)
    engine = create_db_engine(url)
    upgrade(engine)
    try:
        yield Backend("postgresql", url, engine)
    finally:
        engine.dispose()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    if request.param == "postgresql" and _pg_problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CASEBRIDGE_REQUIRE_POSTGRES=1): {_pg_problem}")
        pytest.skip(_pg_problem)
    with migrated_database(request.param, tmp_path_factory, "cbt") as database:
        yield database


@pytest.fixture(scope="session")
def live(backend: Backend) -> Iterator[LiveServer]:
    """The real app, on the session's database, behind a real uvicorn on 127.0.0.1."""
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir")
    server = start_server(create_app(settings, clock=fixed_clock()), port)
    yield server
    server.stop()


@pytest.fixture
def services(backend: Backend) -> Services:
    """The real services on a clean database, without HTTP (service-level tests)."""
    backend.truncate()
    return build_services(
        settings=backend.settings(base_url="http://127.0.0.1:1/fhir"),
        engine=backend.engine,
        clock=fixed_clock(),
    )


@pytest.fixture
def client(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    """An HTTP client on a clean database."""
    backend.truncate()
    with httpx.Client(base_url=live.fhir, timeout=30) as http:
        yield http


def server_with(backend: Backend, **overrides: object) -> LiveServer:
    """A separate live server with changed settings (caller stops it)."""
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir", **overrides)
    return start_server(create_app(settings, clock=fixed_clock()), port)
