"""The one write pipeline (app/services/writes.py), at service level on both databases:
what a write costs in statements, follow-up writes, and the records it queues.

These run the real services on the real database without HTTP: the statements a write
issues are counted with SQLAlchemy's cursor events on the engine the services use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event, text

from app.fhir.instruments import score_observation_id
from app.security.caller import Caller
from app.services.container import Services, build_services
from tests.conftest import Backend
from tests.support.clock import fixed_clock
from tests.test_assessments import FHIR, response

AGENCY = Caller(agency="Organization/pipeline-agency")


@pytest.fixture
def services(backend: Backend) -> Services:
    backend.truncate()
    return build_services(
        settings=backend.settings(base_url="http://127.0.0.1:1/fhir"),
        engine=backend.engine,
        clock=fixed_clock(),
    )


class Statements:
    """The SQL statements the engine sends while counting (executemany counts once)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def about(self, needle: str) -> list[str]:
        return [s for s in self.sent if needle in s]


@pytest.fixture
def statements(backend: Backend) -> Iterator[Statements]:
    seen = Statements()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.sent.append(statement)

    event.listen(backend.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(backend.engine, "before_cursor_execute", before)


def _observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": f"contact {i}"},
        "valueInteger": i,
    }


def _count(backend: Backend, sql: str) -> int:
    with backend.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_a_transaction_records_its_writes_in_one_statement_per_table(
    services: Services, backend: Backend, statements: Statements
) -> None:
    entries = [
        {"resource": _observation(i), "request": {"method": "POST", "url": "Observation"}}
        # Few enough that PostgreSQL gets an INSERT (more go in one COPY, which the
        # engine's cursor events do not see).
        for i in range(12)
    ]
    body = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    _, outcomes = services.bundles.process(body, caller=AGENCY)
    assert [o.status for o in outcomes] == [201] * 12
    # 12 AuditEvent rows and 12 Provenance, each table written once for them all.
    assert len(statements.about("audit_event")) == 1, statements.about("audit_event")
    # (Counted for this agency: a live server of another test may still be flushing the
    # audit of its reads into the same database.)
    assert (
        _count(
            backend,
            "SELECT count(*) FROM audit_event WHERE agency = 'Organization/pipeline-agency'",
        )
        == 12
    )
    assert _count(backend, "SELECT count(*) FROM resource WHERE resource_type = 'Provenance'") == 12
    # Each Provenance is its target's agency's, like the target.
    owners = _count(
        backend,
        "SELECT count(*) FROM resource_owner WHERE resource_type = 'Provenance' "
        "AND agency = 'Organization/pipeline-agency'",
    )
    assert owners == 12


def test_a_write_takes_its_locks_in_one_round_trip(
    services: Services, backend: Backend, statements: Statements
) -> None:
    created = services.resources.create(
        caller=AGENCY, resource_type="Observation", body=orjson.dumps(_observation(1))
    )
    statements.sent.clear()
    changed = {**_observation(2), "id": created.version.id}
    services.resources.update(
        caller=AGENCY,
        resource_type="Observation",
        resource_id=created.version.id,
        body=orjson.dumps(changed),
        if_match=1,
    )
    locks = statements.about("pg_advisory")
    if backend.name == "postgresql":
        # The type (shared) and the resource in one statement.
        assert len(locks) == 1 and locks[0].count("pg_advisory") == 2, locks
    else:
        assert locks == []  # SQLite writers are serialised by BEGIN IMMEDIATE


def test_a_new_resource_is_owned_without_probing_for_an_owner(
    services: Services, statements: Statements
) -> None:
    services.resources.create(
        caller=AGENCY, resource_type="Observation", body=orjson.dumps(_observation(1))
    )
    probes = [
        s
        for s in statements.about("resource_owner")
        if s.lstrip().upper().startswith(("SELECT", "UPDATE"))
    ]
    assert probes == []


def test_a_transaction_read_sees_the_provenance_of_its_writes(client: httpx.Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "pipe-1"},
                "request": {"method": "PUT", "url": "Patient/pipe-1"},
            },
            {"request": {"method": "GET", "url": "Provenance?target=Patient/pipe-1"}},
        ],
    }
    result = client.post("", json=bundle, headers=FHIR)
    assert result.status_code == 200, result.text
    found = result.json()["entry"][1]["resource"]
    assert found["total"] == 1, found


def test_a_score_comes_back_when_an_unscored_response_is_completed_again(
    client: httpx.Client,
) -> None:
    # A follow-up write with a server-derived id recreates what an earlier one deleted
    # (a new version of the deleted record, not a second version 1).
    first = client.post("/QuestionnaireResponse", json=response("phq9", [1] * 9), headers=FHIR)
    assert first.status_code == 201, first.text
    rid = first.json()["id"]
    score_url = f"/Observation/{score_observation_id(rid)}"
    assert client.get(score_url).json()["valueInteger"] == 9
    for status, expected in (("in-progress", 410), ("completed", 200)):
        body = {**response("phq9", [2] * 9, status), "id": rid}
        put = client.put(f"/QuestionnaireResponse/{rid}", json=body, headers=FHIR)
        assert put.status_code == 200, put.text
        assert client.get(score_url).status_code == expected
    score = client.get(score_url).json()
    assert score["valueInteger"] == 18 and score["meta"]["versionId"] == "3"


def test_an_update_rewrites_only_the_index_tables_whose_rows_change(
    services: Services, statements: Statements
) -> None:
    observation = {**_observation(1), "subject": {"reference": "Patient/p1"}}
    created = services.resources.create(
        caller=AGENCY, resource_type="Observation", body=orjson.dumps(observation)
    )
    oid = created.version.id

    def update(body: dict[str, Any], version: int) -> None:
        statements.sent.clear()
        services.resources.update(
            caller=AGENCY,
            resource_type="Observation",
            resource_id=oid,
            body=orjson.dumps({**body, "id": oid}),
            if_match=version,
        )

    def rewritten() -> set[str]:
        # (The write's Provenance inserts index rows of its own, never deletes any.)
        return {s.split()[2] for s in statements.sent if s.startswith("DELETE FROM search_")}

    # A note is not searched: no index table is rewritten.
    update({**observation, "note": [{"text": "seen at home"}]}, 1)
    assert rewritten() == set()
    # A new status changes token rows only; the subject's reference rows stay.
    update({**observation, "status": "amended"}, 2)
    assert rewritten() == {"search_token"}

    def found(query: list[tuple[str, str]]) -> int:
        page = services.search.search(
            caller=AGENCY, resource_type="Observation", params=query, strict=True
        )
        return len(page.matches)

    assert found([("status", "amended"), ("subject", "Patient/p1")]) == 1
    assert found([("status", "final")]) == 0
