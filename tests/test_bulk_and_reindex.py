"""Bulk NDJSON loading and search reindexing, on SQLite and PostgreSQL, checked over HTTP."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from app.fhir.errors import NotFound
from app.services.jobs.bulk import LoadSummary, load_ndjson
from app.services.jobs.reindex import reindex
from tests import factories
from tests.conftest import Backend
from tests.support.cli import run_cli

SYSTEM = "https://agency.example.org/clients"


def _patient(value: str, **changes: Any) -> dict[str, Any]:
    return factories.patient(identifier=[{"system": SYSTEM, "value": value}], **changes)


def _ndjson(*lines: dict[str, Any] | str) -> bytes:
    return b"".join(
        (line.encode() if isinstance(line, str) else orjson.dumps(line)) + b"\n" for line in lines
    )


def _load(backend: Backend, data: bytes, workers: int = 0) -> LoadSummary:
    return load_ndjson(
        io.BytesIO(data), engine=backend.engine, settings=backend.settings(), workers=workers
    )


def _found(client: httpx.Client, resource_type: str, value: str) -> list[str]:
    response = client.get(f"/{resource_type}", params={"identifier": f"{SYSTEM}|{value}"})
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


MIXED = _ndjson(
    {**_patient("B-1"), "id": "bulk-1"},
    _patient("B-2"),  # no id: the server assigns one
    _patient("B-3", gender="bogus"),  # 3: required binding
    '{"resourceType": "Patient", "name": [',  # 4: malformed JSON
    "",  # blank lines are skipped, not failures
    {"resourceType": "NoSuchType"},  # 6
    {**_patient("B-7"), "id": "bad id!"},  # 7: malformed id
    {**_patient("B-8"), "id": "bulk-1"},  # 8: the same id as line 1
    {**factories.care_plan(), "id": "plan-1", "subject": {"reference": "Patient/bulk-1"}},
    "[1, 2]",  # 10: not a resource
    {**_patient("B-11"), "unknownElement": True},  # 11
)


def test_load_stores_valid_lines_and_reports_the_others(
    client: httpx.Client, backend: Backend
) -> None:
    summary = _load(backend, MIXED, workers=1)  # through the process pool
    assert (summary.loaded, summary.failed) == (3, 7)
    assert [f.line for f in summary.failures] == [3, 4, 6, 7, 8, 10, 11]
    messages = {f.line: f.message for f in summary.failures}
    assert "bogus" in messages[3] and "administrative-gender" in messages[3]
    assert "Malformed JSON" in messages[4]
    assert "NoSuchType" in messages[6]
    assert "not a valid id" in messages[7]
    assert "line 1 of this file" in messages[8]
    assert "one JSON object" in messages[10]
    assert "unknownElement" in messages[11]
    assert summary.failures[0].outcome()["issue"][0]["code"] == "code-invalid"

    read = client.get("/Patient/bulk-1")
    assert read.status_code == 200
    assert read.json()["meta"]["versionId"] == "1"
    assert read.json()["identifier"][0]["value"] == "B-1"
    assert client.get("/CarePlan/plan-1").status_code == 200
    assert _found(client, "Patient", "B-1") == ["bulk-1"]
    assigned = _found(client, "Patient", "B-2")
    assert len(assigned) == 1 and assigned[0] != "bulk-1"
    for value in ("B-3", "B-7", "B-8", "B-11"):
        assert _found(client, "Patient", value) == []
    history = client.get("/Patient/bulk-1/_history").json()
    assert history["total"] == 1 and history["entry"][0]["request"]["method"] == "POST"


def test_a_second_load_of_the_same_ids_creates_nothing(
    client: httpx.Client, backend: Backend
) -> None:
    first = _load(backend, _ndjson({**_patient("B-1"), "id": "bulk-1"}))
    assert first.loaded == 1
    assert client.delete("/Patient/bulk-1").status_code in (200, 204)
    again = _load(backend, _ndjson({**_patient("B-9"), "id": "bulk-1"}, _patient("B-10")))
    # A deleted resource's id is taken too: a bulk load only ever creates.
    assert (again.loaded, again.failed) == (1, 1)
    assert again.failures[0].line == 1 and "already exists" in again.failures[0].message
    assert client.get("/Patient/bulk-1").status_code == 410
    assert _found(client, "Patient", "B-9") == []
    assert len(_found(client, "Patient", "B-10")) == 1


def test_reindex_restores_deleted_index_rows(client: httpx.Client, backend: Backend) -> None:
    patients = [{**_patient(f"R-{n}"), "id": f"re-{n}"} for n in range(5)]
    assert _load(backend, _ndjson(*patients)).loaded == 5
    assert _found(client, "Patient", "R-3") == ["re-3"]
    with backend.engine.begin() as conn:
        conn.execute(text("DELETE FROM search_token WHERE resource_type = 'Patient'"))
    assert _found(client, "Patient", "R-3") == []

    summary = reindex(backend.engine, backend.settings(), resource_type="Patient", batch_size=2)
    assert summary.per_type == {"Patient": 5} and summary.problems == []
    assert _found(client, "Patient", "R-3") == ["re-3"]
    assert _found(client, "Patient", "R-0") == ["re-0"]
    # Every type: nothing else is stored, and reindexing twice changes nothing.
    assert reindex(backend.engine, backend.settings()).per_type == {"Patient": 5}
    assert _found(client, "Patient", "R-4") == ["re-4"]
    with pytest.raises(NotFound):
        reindex(backend.engine, backend.settings(), resource_type="Nope")


def _cli(args: list[str], backend: Backend) -> subprocess.CompletedProcess[str]:
    return run_cli(args, {"CASEBRIDGE_DATABASE_URL": backend.url, "COLUMNS": "200"})


def test_cli_load_and_reindex(client: httpx.Client, backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_bytes(
        _ndjson(
            {**_patient("C-1"), "id": "cli-1"}, _patient("C-2", gender="bogus"), _patient("C-3")
        )
    )
    report = tmp_path / "failed.ndjson"
    # Validation in-process: the pool is covered above, and a worker start costs a second.
    loaded = _cli(["load", str(source), "--workers", "0", "--report", str(report)], backend)
    assert loaded.returncode == 1, loaded.stderr
    assert "Loaded 2 resources" in loaded.stdout and "1 lines failed" in loaded.stdout
    assert "line 2: Patient.gender" in loaded.stderr
    failed = [orjson.loads(line) for line in report.read_bytes().splitlines()]
    assert failed[0]["line"] == 2
    assert failed[0]["outcome"]["resourceType"] == "OperationOutcome"
    assert _found(client, "Patient", "C-1") == ["cli-1"]

    with backend.engine.begin() as conn:
        conn.execute(text("DELETE FROM search_token"))
    reindexed = _cli(["search", "reindex", "--type", "Patient"], backend)
    assert reindexed.returncode == 0, reindexed.stderr
    assert "Reindexed 2 resources of 1 types" in reindexed.stdout
    assert _found(client, "Patient", "C-1") == ["cli-1"]


def _stored_value(key: str, value: Any) -> Any:
    if key == "body" and value is not None:
        body = orjson.loads(bytes(value) if isinstance(value, memoryview) else value)
        return orjson.dumps({k: v for k, v in body.items() if k not in ("id", "meta")})
    if key == "last_updated":
        # The write times differ; the shape they are stored in must not (SQLite compares
        # instants as text).
        return (type(value).__name__, len(str(value)))
    return value


def _stored_rows(backend: Backend, resource_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row stored for Observation/{resource_id}, as the database returns them, with
    the resource's own id, the row keys and the write times left out."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with backend.engine.connect() as conn:
        for table, id_column in (
            ("resource", "id"), ("resource_version", "id"), ("search_token", "resource_id"),
            ("search_string", "resource_id"), ("search_reference", "resource_id"),
            ("search_date", "resource_id"), ("search_quantity", "resource_id"),
            ("search_uri", "resource_id"), ("resource_owner", "resource_id"),
        ):  # fmt: skip
            rows = conn.execute(
                text(f"SELECT * FROM {table} WHERE {id_column} = :id"), {"id": resource_id}
            ).mappings()
            found[table] = sorted(
                [
                    tuple(
                        _stored_value(key, value)
                        for key, value in row.items()
                        if key not in ("row_id", id_column)
                    )
                    for row in rows
                ],
                key=repr,
            )
    return found


def test_a_loaded_resource_stores_the_rows_an_http_create_stores(
    client: httpx.Client, backend: Backend
) -> None:
    # Bulk loading hands positional rows to the driver itself (app/storage/rows.py); the
    # rows must be exactly those the HTTP path writes through SQLAlchemy, down to how
    # instants are stored as text on SQLite, or searches would treat the two differently.
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "social-history"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "76513-1"}],
                 "text": "How hard is it to pay for basics"},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2026-03-04T05:06:07.5+10:00",
        "valueQuantity": {"value": 12.50, "unit": "kg", "system": "http://unitsofmeasure.org",
                          "code": "kg"},
    }  # fmt: skip
    created = client.post("/Observation", json=observation)
    assert created.status_code == 201, created.text
    http_id = created.json()["id"]
    summary = _load(backend, _ndjson({**observation, "id": "by-load"}))
    assert (summary.loaded, summary.failed) == (1, 0)

    by_http, by_load = _stored_rows(backend, http_id), _stored_rows(backend, "by-load")
    assert "POST" in by_http["resource_version"][0]
    assert by_http == by_load
    assert by_load["search_quantity"] and by_load["search_date"] and by_load["search_token"]
    # Both match the same searches: date, quantity, and _lastUpdated compared as stored.
    for query in (
        "date=2026-03-03",
        "date=ge2026-03-03T19:06:07Z&date=lt2026-03-03T19:06:08Z",
        "value-quantity=12.5|http://unitsofmeasure.org|kg",
        "_lastUpdated=gt2026-01-01&_lastUpdated=lt2200-01-01",
    ):
        found = client.get(f"/Observation?{query}&_count=10").json()
        ids = sorted(entry["resource"]["id"] for entry in found.get("entry", []))
        assert ids == sorted([http_id, "by-load"]), (query, ids)
