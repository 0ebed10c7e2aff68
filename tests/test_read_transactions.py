"""Read transactions never write, on both databases.

A search run inside a read transaction (the directory, the caseload, the reports) once
recorded its disclosures in that transaction. On SQLite a read transaction that starts
writing after another writer has committed fails at once with "database is locked"
(SQLITE_BUSY_SNAPSHOT: no busy wait cures it), so a web page answered 503 now and then
under load. Disclosures now go into a write transaction of their own, and on SQLite a
read transaction is read-only (PRAGMA query_only), so any write in one fails every time.
"""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from app.fhir.errors import Transient
from app.security.caller import Caller
from app.services.container import Services
from app.services.uow import transaction
from tests.conftest import Backend

OWNER = Caller(agency="Organization/read-owner")
READER = Caller(agency="Organization/read-reader")


def _disclosures(backend: Backend) -> int:
    with backend.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM disclosure WHERE agency = :a"), {"a": READER.agency}
            ).scalar_one()
        )


def test_a_search_in_a_read_transaction_records_its_disclosures_after_another_commit(
    services: Services, backend: Backend
) -> None:
    service = {
        "resourceType": "HealthcareService",
        "name": "Eastside housing support",
        "providedBy": {"reference": str(OWNER.agency)},
    }
    services.resources.create(
        caller=OWNER, resource_type="HealthcareService", body=orjson.dumps(service)
    )
    before = _disclosures(backend)
    scope = services.resources.scope(READER)
    with transaction(services.engine, write=False, snapshot=True, scope=scope) as repo:
        # The read transaction's snapshot starts here...
        repo.current("HealthcareService", "none")
        # ...another writer commits...
        services.resources.create(
            caller=OWNER,
            resource_type="Observation",
            body=orjson.dumps(
                {"resourceType": "Observation", "status": "final", "code": {"text": "visit"}}
            ),
        )
        # ...and the search releases another agency's record from the old snapshot.
        found = services.search.search_all(
            caller=READER, resource_type="HealthcareService", params=[], repo=repo
        )
    assert [s["name"] for s in found] == ["Eastside housing support"]
    assert _disclosures(backend) == before + 1


def test_a_write_in_a_read_transaction_is_refused_every_time_on_sqlite(
    services: Services, backend: Backend
) -> None:
    if backend.name != "sqlite":
        pytest.skip("PostgreSQL read transactions are not made read-only")
    row = {
        "disclosed_at": services.clock.now(),
        "agency": READER.agency,
        "owner_agency": OWNER.agency,
        "resource_type": "Patient",
        "resource_id": "p1",
        "version_id": 1,
        "patient_id": "p1",
        "consent_id": None,
        "interaction": "read",
        "sensitive": False,
    }
    with pytest.raises(Transient), transaction(services.engine, write=False) as repo:
        assert not repo.writable
        repo.insert_disclosures([row])
    # The same connections still write in write transactions.
    with transaction(services.engine, write=True) as repo:
        repo.insert_disclosures([row])
    assert _disclosures(backend) == 1
