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

from app.fhir.instruments import flag_id, score_observation_id
from app.security.caller import Caller
from app.services.container import Services
from app.storage.repository import _lock_key
from tests.conftest import Backend
from tests.test_assessments import FHIR, response

AGENCY = Caller(agency="Organization/pipeline-agency")


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


def test_an_update_repairs_index_rows_an_earlier_extractor_wrote(
    services: Services, backend: Backend
) -> None:
    # Rows written by an older extractor (an import before a fix, a registry upgrade) are
    # replaced by the next edit of the record, whatever the edit changes.
    created = services.resources.create(
        caller=AGENCY, resource_type="Observation", body=orjson.dumps(_observation(1))
    )
    oid = created.version.id
    with backend.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO search_token (resource_type, resource_id, param, system, code, text)"
                " VALUES ('Observation', :id, 'status', NULL, 'stale', NULL)"
            ),
            {"id": oid},
        )
    services.resources.update(
        caller=AGENCY,
        resource_type="Observation",
        resource_id=oid,
        body=orjson.dumps({**_observation(1), "id": oid, "note": [{"text": "seen"}]}),
        if_match=1,
    )

    def found(query: list[tuple[str, str]]) -> int:
        page = services.search.search(
            caller=AGENCY, resource_type="Observation", params=query, strict=True
        )
        return len(page.matches)

    assert found([("status", "stale")]) == 0
    assert found([("status", "final")]) == 1


def test_a_follow_up_locks_what_it_read_before_reading_it(
    services: Services, backend: Backend
) -> None:
    # The Flag of a PHQ-9 response is read, made inactive and written back by a follow-up:
    # it is locked before that read, so no other writer changes it in between (PostgreSQL
    # runs writers concurrently; SQLite serialises them and takes no advisory locks).
    if backend.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    raised = services.resources.create(
        caller=AGENCY,
        resource_type="QuestionnaireResponse",
        body=orjson.dumps(response("phq9", [0] * 8 + [1])),
    )
    rid = raised.version.id
    flag = flag_id(rid)
    sent: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, parameters))

    event.listen(backend.engine, "before_cursor_execute", before)
    try:
        services.resources.update(
            caller=AGENCY,
            resource_type="QuestionnaireResponse",
            resource_id=rid,
            body=orjson.dumps({**response("phq9", [0] * 9), "id": rid}),
            if_match=1,
        )
    finally:
        event.remove(backend.engine, "before_cursor_execute", before)
    key = _lock_key(f"Flag/{flag}")
    locked = next(
        i
        for i, (s, p) in enumerate(sent)
        if "pg_advisory" in s and isinstance(p, dict) and key in p.values()
    )
    read = next(
        i
        for i, (s, p) in enumerate(sent)
        if s.lstrip().startswith("SELECT") and isinstance(p, dict) and flag in p.values()
    )
    assert locked < read
    current = services.resources.read(caller=AGENCY, resource_type="Flag", resource_id=flag)
    assert orjson.loads(current.version.body or b"{}")["status"] == "inactive"
