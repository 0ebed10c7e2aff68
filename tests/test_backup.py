"""`casebridge backup` and `casebridge restore` (issue 21): a backup taken while the server
takes writes holds every write acknowledged before it began and none acknowledged after it
ended, and a restored database serves all of them. Through the real command and server."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.clock import Clock
from app.config import Settings
from app.main import create_app
from tests.conftest import Backend, migrated_database
from tests.support.cli import run_cli
from tests.support.server import LiveServer, free_port, start_server

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _serve(url: str) -> LiveServer:
    port = free_port()
    settings = Settings(
        database_url=url,
        environment="test",
        auth="off",
        install_conformance=False,
        notify_worker=False,
        base_url=f"http://127.0.0.1:{port}/fhir",
    )
    return start_server(create_app(settings, clock=Clock()), port)


@pytest.fixture
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, LiveServer]]:
    with migrated_database("sqlite", tmp_path_factory, "backup") as database:
        server = _serve(database.url)
        try:
            yield database, server
        finally:
            server.stop()


class Writer:
    """Creates Observations over HTTP until stopped; remembers when each was acknowledged."""

    def __init__(self, fhir: str) -> None:
        self.fhir = fhir
        self.acknowledged: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.fhir, timeout=30) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": f"Contact {n}"},
                }
                response = http.post("/Observation", json=body, headers=FHIR_JSON)
                assert response.status_code == 201, response.text
                self.acknowledged.append((time.monotonic(), response.json()["id"]))

    def __enter__(self) -> Writer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT id FROM resource WHERE resource_type = 'Observation' AND deleted = 0"
        )
        return {row[0] for row in rows}


def test_a_backup_under_write_load_holds_every_acknowledged_write(
    sqlite_server: tuple[Backend, LiveServer], tmp_path: Path
) -> None:
    database, server = sqlite_server
    copy = tmp_path / "backups" / "casebridge-backup.db"
    env = {"CASEBRIDGE_DATABASE_URL": database.url}
    with Writer(server.fhir) as writer:
        while len(writer.acknowledged) < 100:
            time.sleep(0.05)
        began = time.monotonic()
        result = run_cli(["backup", str(copy)], env)
        ended = time.monotonic()
        while not any(at > ended for at, _ in writer.acknowledged):
            time.sleep(0.05)
    assert result.returncode == 0, result.stderr
    assert "Backed up" in result.stdout
    kept = _ids(copy)
    before = {rid for at, rid in writer.acknowledged if at < began}
    after = {rid for at, rid in writer.acknowledged if at > ended}
    assert before and after
    assert before <= kept, f"{len(before - kept)} acknowledged writes missing from the backup"
    assert not after & kept, "the backup holds writes acknowledged after it finished"
    assert not (copy.parent / f".{copy.name}.partial").exists()
    # A standalone file: no WAL beside it.
    assert not Path(f"{copy}-wal").exists() or Path(f"{copy}-wal").stat().st_size == 0

    # Restored into a new database, a server serves every one of them.
    target = tmp_path / "restored" / "casebridge.db"
    restored_url = f"sqlite:///{target}"
    result = run_cli(["restore", str(copy)], {"CASEBRIDGE_DATABASE_URL": restored_url})
    assert result.returncode == 0, result.stderr
    assert _ids(target) == kept
    restored = _serve(restored_url)
    try:
        with httpx.Client(base_url=restored.fhir, timeout=30) as http:
            for rid in sorted(before)[:50]:
                assert http.get(f"/Observation/{rid}").status_code == 200
            total = http.get("/Observation", params={"_total": "accurate", "_count": 1})
            assert total.json()["total"] == len(kept)
    finally:
        restored.stop()


def test_restore_replaces_only_with_a_whole_casebridge_backup(
    sqlite_server: tuple[Backend, LiveServer], tmp_path: Path
) -> None:
    database, server = sqlite_server
    env = {"CASEBRIDGE_DATABASE_URL": database.url}
    with httpx.Client(base_url=server.fhir, timeout=30) as http:
        first = http.post("/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).json()[
            "id"
        ]
        copy = tmp_path / "b.db"
        assert run_cli(["backup", str(copy)], env).returncode == 0
        second = http.post("/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).json()[
            "id"
        ]
    server.stop()
    # Not a database, not casebridge's, damaged: refused, the database untouched.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    damaged = tmp_path / "damaged.db"
    data = bytearray(copy.read_bytes())
    data[4096 * 2 : 4096 * 2 + 512] = b"\xff" * 512
    damaged.write_bytes(bytes(data))
    for bad in (junk, other, damaged, tmp_path / "missing.db"):
        result = run_cli(["restore", "--yes", str(bad)], env)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert "Nothing restored" in result.stderr
    path = Path(database.url.removeprefix("sqlite:///"))
    live = {first, second}
    with sqlite3.connect(path) as connection:
        found = {
            r[0]
            for r in connection.execute("SELECT id FROM resource WHERE resource_type = 'Patient'")
        }
    assert found == live
    # Without --yes it asks; answering no changes nothing.
    result = run_cli(["restore", str(copy)], env, stdin="n\n")
    assert result.returncode != 0
    assert "Replace everything in" in result.stdout
    with sqlite3.connect(path) as connection:
        found = {
            r[0]
            for r in connection.execute("SELECT id FROM resource WHERE resource_type = 'Patient'")
        }
    assert found == live
    result = run_cli(["restore", "--yes", str(copy)], env)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(path) as connection:
        found = {
            r[0]
            for r in connection.execute("SELECT id FROM resource WHERE resource_type = 'Patient'")
        }
    assert found == {first}


def test_postgresql_backups_are_its_own_tools(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgresql":
        pytest.skip("the PostgreSQL answer")
    result = run_cli(["backup", str(tmp_path / "x.db")], {"CASEBRIDGE_DATABASE_URL": backend.url})
    assert result.returncode == 2
    assert "pg_dump" in result.stderr
    assert not (tmp_path / "x.db").exists()
