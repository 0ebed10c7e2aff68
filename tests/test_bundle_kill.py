"""A server SIGKILLed in the middle of a large transaction leaves all of it or none of it.

The real `casebridge serve` runs as a subprocess on a database of its own (a temporary SQLite
file, or a fresh schema of the test PostgreSQL database). A thread posts a transaction of
PATIENTS Patients; the test watches the database until the server's write transaction is
open (SQLite: the write lock is held; PostgreSQL: the server's session has an xid, which it
gets with its first INSERT), waits a little, and SIGKILLs the server. After a restart the
Patients of that transaction, counted by search and by system history, are 0 or all.
At least one attempt must be a proven mid-flight kill: writes under way, no response.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from app.storage.db import create_db_engine, upgrade
from tests.conftest import PG_URL, Backend, _pg_schema_url
from tests.support.server import free_port

pytestmark = pytest.mark.slow

PATIENTS = 3000
TAG = "urn:casebridge:test:kill"
# Seconds between seeing the writes begin and the SIGKILL, one per attempt.
DELAYS = (0.05, 0.5)
EXTRA_DELAYS = (0.02, 0.2)  # used only when no attempt was a proven mid-flight kill


@dataclass
class Database:
    """A migrated database for the server, and a probe: is a write transaction open?"""

    url: str
    writing: Callable[[], bool]


def _sqlite_writing(path: Path) -> Callable[[], bool]:
    def probe() -> bool:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return True
            raise
        finally:
            conn.close()

    return probe


@pytest.fixture
def database(backend: Backend, tmp_path: Path) -> Iterator[Database]:
    if backend.name == "sqlite":
        path = tmp_path / "kill.db"
        url = f"sqlite:///{path}"
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield Database(url, _sqlite_writing(path))
        return
    schema = f"cbkill_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    # The application name lets the probe find the server's sessions among all others.
    url = f"{_pg_schema_url(schema)}&application_name={schema}"
    try:
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        with psycopg.connect(PG_URL, autocommit=True) as watcher:

            def probe() -> bool:
                row = watcher.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
                    "WHERE application_name = %s AND backend_xid IS NOT NULL)",
                    (schema,),
                ).fetchone()
                return bool(row and row[0])

            yield Database(url, probe)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            # Sessions of a killed server may linger a moment; end them before dropping.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (schema,),
            )
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class Server:
    """`casebridge serve` (one process) in its own session, so it can be killed alone."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    @property
    def fhir(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> None:
        self.port = free_port()
        self.starts += 1
        self.log = self.workdir / f"server-{self.starts}.log"
        env = {
            **os.environ,
            "CASEBRIDGE_DATABASE_URL": self.database_url,
            "CASEBRIDGE_BASE_URL": self.fhir,
            "CASEBRIDGE_DATA_DIR": str(self.workdir),
            "CASEBRIDGE_ACCESS_LOG": "0",
            "CASEBRIDGE_AUTH": "off",
            # The test counts every version written; nothing but its Bundles may write.
            "CASEBRIDGE_INSTALL_CONFORMANCE": "false",
        }
        command = [
            str(Path(sys.executable).with_name("casebridge")),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"the server exited:\n{self.tail()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"the server did not start:\n{self.tail()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no rollback by the server, no response sent."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


def _transaction(attempt: int, count: int) -> bytes:
    """count Patients tagged with the attempt, each with a few indexed elements."""
    entries: list[dict[str, Any]] = []
    for n in range(count):
        resource = {
            "resourceType": "Patient",
            "meta": {"tag": [{"system": TAG, "code": f"attempt-{attempt}"}]},
            "identifier": [{"system": f"{TAG}:{attempt}", "value": f"P-{n:05d}"}],
            "name": [{"family": f"Family{n}", "given": ["Alex", "Sam"]}],
            "gender": ("female", "male", "other")[n % 3],
            "birthDate": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 10}",
            "address": [{"line": [f"{n} High Street"], "city": "Fitzroy", "postalCode": "3065"}],
            "telecom": [{"system": "phone", "value": f"04{n:08d}", "use": "mobile"}],
        }
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": resource,
                "request": {"method": "POST", "url": "Patient"},
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


@dataclass
class Attempt:
    delay: float
    writing_seen: bool = False
    killed: bool = False
    status: int | None = None
    client_error: str | None = None
    stored: int = -1
    notes: list[str] = field(default_factory=list)

    @property
    def mid_flight(self) -> bool:
        """Killed while its writes were under way (no response; none of them kept).

        A kill that lands after the commit but before the response keeps all: not this."""
        return (
            self.writing_seen and self.killed and self.client_error is not None and self.stored == 0
        )


def _stored(server: Server, attempt: int) -> int:
    response = httpx.get(
        f"{server.fhir}/Patient",
        params={"_tag": f"{TAG}|attempt-{attempt}", "_summary": "count"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _total(server: Server, path: str) -> int:
    response = httpx.get(f"{server.fhir}{path}", params={"_count": "1"}, timeout=30)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _versions(server: Server) -> int:
    """Versions of records in system history; the Provenance stored with each write is
    all-or-nothing with it, one per version."""
    everything = _total(server, "/_history")
    provenances = _total(server, "/Provenance/_history")
    assert provenances == everything - provenances, "one Provenance per version written"
    return everything - provenances


def _run(server: Server, database: Database, number: int, delay: float) -> Attempt:
    attempt = Attempt(delay)
    body = _transaction(number, PATIENTS)

    def send() -> None:
        try:
            response = httpx.post(
                server.fhir,
                content=body,
                headers={"Content-Type": "application/fhir+json"},
                timeout=120,
            )
            attempt.status = response.status_code
            if response.status_code != 200:
                attempt.notes.append(response.text[:500])
        except httpx.TransportError as exc:
            attempt.client_error = f"{type(exc).__name__}: {exc}"

    sender = threading.Thread(target=send, name=f"transaction-{number}", daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while sender.is_alive() and time.monotonic() < deadline:
        if database.writing():
            attempt.writing_seen = True
            break
        time.sleep(0.002)
    if attempt.writing_seen:
        time.sleep(delay)
        attempt.killed = True
        server.kill()
    sender.join(timeout=120)
    assert not sender.is_alive(), "the transaction neither answered nor failed"
    if attempt.killed:
        server.start()
    attempt.stored = _stored(server, number)
    return attempt


def test_sigkill_during_a_large_transaction_leaves_all_or_nothing(
    database: Database, tmp_path: Path
) -> None:
    server = Server(database.url, tmp_path)
    server.start()
    attempts: list[Attempt] = []
    committed = 0
    try:
        for delay in DELAYS + EXTRA_DELAYS:
            if len(attempts) >= len(DELAYS) and any(a.mid_flight for a in attempts):
                break
            number = len(attempts)
            attempt = _run(server, database, number, delay)
            attempts.append(attempt)
            report = f"attempt {number}: {attempt}\nserver log:\n{server.tail()}"
            # All or nothing, whatever the moment of the kill.
            assert attempt.stored in (0, PATIENTS), report
            if attempt.status is not None:
                # It answered: then it answered 200 and all of it is there.
                assert attempt.status == 200, report
                assert attempt.stored == PATIENTS, report
            else:
                assert attempt.killed and attempt.client_error is not None, report
            # Nothing else was stored either: history holds the versions of whole
            # transactions only.
            committed += attempt.stored
            assert _versions(server) == committed, report
        summary = "\n".join(str(a) for a in attempts)
        assert any(a.mid_flight for a in attempts), f"no kill landed mid-flight:\n{summary}"
        # The restarted server writes normally on the database the kills left behind.
        small = _transaction(99, 10)
        response = httpx.post(
            server.fhir, content=small, headers={"Content-Type": "application/fhir+json"}
        )
        assert response.status_code == 200, response.text
        assert _stored(server, 99) == 10
        assert _versions(server) == committed + 10
    finally:
        server.stop()
