"""CapabilityStatement, health probes, migrations and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from app.config import Settings
from app.fhir.registry import resource_types
from app.main import NotMigratedError, create_app
from app.storage.db import alembic_config, create_db_engine, head_revision, upgrade
from app.storage.tables import metadata
from tests.conftest import Backend
from tests.support.cli import run_cli
from tests.support.server import LiveServer


def test_capability_statement_is_generated_from_the_registry(client: httpx.Client) -> None:
    response = client.get("/metadata", headers={"Accept": "application/fhir+json; fhirVersion=4.3"})
    assert response.status_code == 200
    assert "fhirVersion=4.3" in response.headers["content-type"]
    cs = response.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.3.0"
    assert cs["kind"] == "instance"
    rest = cs["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert types == set(resource_types())
    assert len(types) == 141
    care_plan = next(r for r in rest["resource"] if r["type"] == "CarePlan")
    codes = {i["code"] for i in care_plan["interaction"]}
    assert {"read", "vread", "update", "patch", "delete", "create", "history-instance"} <= codes
    searchable = {p["name"]: p for p in care_plan["searchParam"]}
    assert set(searchable) >= {"_id", "_lastUpdated", "identifier", "subject", "date", "_tag"}
    assert searchable["subject"]["type"] == "reference"
    assert (
        searchable["subject"]["definition"]
        == "http://hl7.org/fhir/SearchParameter/CarePlan-subject"
    )
    # Parameters the engine cannot evaluate are not claimed (special and composite ones).
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert "code-value-quantity" not in {p["name"] for p in observation["searchParam"]}
    assert "CarePlan:subject" in care_plan["searchInclude"]
    assert "Task:focus" in care_plan["searchRevInclude"]
    assert care_plan["conditionalCreate"] is True


def test_healthz_and_readyz(live: LiveServer) -> None:
    assert httpx.get(f"{live.root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.root}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_unknown_paths_answer_with_operation_outcome(live: LiveServer) -> None:
    response = httpx.get(f"{live.root}/nowhere")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_migrations_match_the_table_models(backend: Backend) -> None:
    # A plain engine: the service's engine hands JSON over as text, which reflection of
    # PostgreSQL collations cannot read.
    url = make_url(backend.url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_app_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'fresh.db'}", auth="off")
    with pytest.raises(NotMigratedError, match="casebridge db upgrade"):
        create_app(settings)


def test_cli_serve_refuses_unmigrated_then_db_upgrade_fixes_it(tmp_path: Path) -> None:
    env = {"CASEBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    refused = run_cli(["serve", "--port", "1"], env)
    assert refused.returncode == 2
    assert "casebridge db upgrade" in refused.stderr
    upgraded = run_cli(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    head = head_revision()
    assert head is not None and head in upgraded.stdout
    app = create_app(Settings(database_url=env["CASEBRIDGE_DATABASE_URL"], auth="off"))
    app.state.services.engine.dispose()


def test_sqlite_owner_table_is_rebuilt_without_rowid_and_keeps_its_rows(tmp_path: Path) -> None:
    """Migration 20261206_owner_without_rowid rebuilds resource_owner on SQLite (its rows,
    key and index kept) and back again on downgrade."""
    url = f"sqlite:///{tmp_path / 'owners.db'}"
    engine = create_db_engine(url)
    rows = [("Patient", "p1", None, 0), ("Task", "t1", "Organization/a", 1)]

    def table() -> tuple[str, list[Any], set[str]]:
        with engine.connect() as conn:
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'resource_owner'"
            ).scalar_one()
            stored = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM resource_owner")]
            indexes = set(
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'resource_owner'"
                ).scalars()
            )
        return ddl, sorted(stored), indexes

    try:
        upgrade(engine, "20261123_covering_indexes")
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO resource_owner VALUES (?, ?, ?, ?)", rows[0])
            conn.exec_driver_sql("INSERT INTO resource_owner VALUES (?, ?, ?, ?)", rows[1])
        upgrade(engine)
        ddl, stored, indexes = table()
        assert "WITHOUT ROWID" in ddl and "pk_resource_owner" in ddl
        assert stored == rows and "ix_resource_owner_access" in indexes
        command.downgrade(alembic_config(url), "20261123_covering_indexes")
        ddl, stored, indexes = table()
        assert "WITHOUT ROWID" not in ddl
        assert stored == rows and "ix_resource_owner_access" in indexes
    finally:
        engine.dispose()


def test_the_fhir_version_a_client_asks_for_is_the_one_it_gets(client: httpx.Client) -> None:
    """Spec http.html#version-parameter and capabilities.html#versions. R4 (4.0) is the
    default, so a strict R4 client accepts /metadata; 4.3 is served when asked for."""
    versions = client.get("/$versions")
    assert versions.status_code == 200
    params = versions.json()["parameter"]
    assert [p["valueCode"] for p in params if p["name"] == "version"] == ["4.0", "4.3"]
    assert [p["valueCode"] for p in params if p["name"] == "default"] == ["4.0"]

    plain = client.get("/metadata")
    r4 = client.get("/metadata", headers={"Accept": "application/fhir+json; fhirVersion=4.0"})
    assert plain.json()["fhirVersion"] == r4.json()["fhirVersion"] == "4.0.1"
    assert "fhirVersion=4.0" in plain.headers["content-type"]
    types = {r["type"] for r in r4.json()["rest"][0]["resource"]}
    # R4B's additions are left out of an R4 statement; what R4 and R4B share is all there.
    assert "SubscriptionTopic" not in types and "CarePlan" in types and "Task" in types
    r4b = {
        r["type"]
        for r in client.get("/metadata?_format=json;fhirVersion=4.3").json()["rest"][0]["resource"]
    }
    assert types < r4b and "SubscriptionTopic" in r4b
    assert (
        client.get(
            "/metadata", headers={"Accept": "application/fhir+json;fhirVersion=4.0.1"}
        ).json()["fhirVersion"]
        == "4.0.1"
    )

    # A version not served: 406 for what the client accepts, 415 for what it sends; nothing
    # stored.
    for accept in ("application/fhir+json; fhirVersion=5.0", "application/json;fhirVersion=3.0"):
        refused = client.get("/metadata", headers={"Accept": accept})
        assert refused.status_code == 406, accept
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert "4.0, 4.3" in refused.json()["issue"][0]["diagnostics"]
    patient = {"resourceType": "Patient", "name": [{"family": "Ng"}]}
    sent = client.post(
        "/Patient",
        content=orjson.dumps(patient),
        headers={"Content-Type": "application/fhir+json; fhirVersion=5.0"},
    )
    assert sent.status_code == 415 and sent.json()["resourceType"] == "OperationOutcome"
    assert client.get("/Patient").json()["total"] == 0
    ok = client.post(
        "/Patient",
        content=orjson.dumps(patient),
        headers={"Content-Type": "application/fhir+json; fhirVersion=4.0"},
    )
    assert ok.status_code == 201
