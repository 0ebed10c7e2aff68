"""Accountability over HTTP on SQLite and PostgreSQL: an AuditEvent (IHE BALP) for every
access and refusal, a Provenance for every write, both written with the write or (reads)
flushed in batches; the audit log is read-only through the API."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import func, select

from app.fhir.audit import AuditFacts, audit_event, outcome_code, provenance
from app.storage.tables import audit_event_table
from tests.conftest import Backend, server_with
from tests.factories import care_plan, minimal, patient
from tests.support.clock import EPOCH
from tests.support.server import LiveServer

AGENCY_A = "Organization/agency-a"
AGENCY_B = "Organization/agency-b"
AS_A = {"X-Casebridge-Agency": AGENCY_A}
AS_B = {"X-Casebridge-Agency": AGENCY_B}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
ASYNC = {"Prefer": "respond-async"}
Event = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------


def _events(
    client: httpx.Client, headers: dict[str, str] | None = None, **params: str
) -> list[Event]:
    """Every AuditEvent matching params, following next links."""
    found: list[Event] = []
    response = client.get("/AuditEvent", params={"_count": "200", **params}, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        found.extend(entry["resource"] for entry in bundle.get("entry", []))
        nexts = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nexts:
            return found
        response = client.get(nexts[0], headers=headers)


def _wait_for(
    client: httpx.Client,
    accept: Callable[[list[Event]], bool],
    headers: dict[str, str] | None = None,
    **params: str,
) -> list[Event]:
    """Poll the audit log until accept(events) holds (reads are flushed in batches)."""
    deadline = time.monotonic() + 10
    while True:
        events = _events(client, headers, **params)
        if accept(events):
            return events
        assert time.monotonic() < deadline, f"audit events never matched: {events}"
        time.sleep(0.02)


def _subtype(event: Event) -> str:
    code: str = event["subtype"][0]["code"]
    return code


def _by_subtype(events: list[Event], subtype: str) -> list[Event]:
    return [e for e in events if _subtype(e) == subtype]


def _agencies(event: Event) -> list[str]:
    return [a["who"]["reference"] for a in event["agent"] if "reference" in a.get("who", {})]


def _patients(event: Event) -> list[str]:
    return [
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "1"
    ]


def _data(event: Event) -> list[str]:
    return [
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "4"
    ]


def _query(event: Event, default: str | None = None) -> str:
    queries = [e["query"] for e in event["entity"] if e.get("role", {}).get("code") == "24"]
    if not queries and default is not None:
        return default
    [query] = queries
    # The query as the client sent it, percent-encoding included.
    return unquote(base64.b64decode(query).decode())


def _create(client: httpx.Client, resource: dict[str, Any], headers: dict[str, str]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource, headers=headers)
    assert response.status_code == 201, response.text
    resource_id: str = response.json()["id"]
    return resource_id


@pytest.fixture
def client(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    """An HTTP client on a clean database, once the AuditEvents of earlier tests' requests
    have been flushed (else a late batch would land in this test's log)."""
    recorder = live.app.state.services.audit.recorder
    deadline = time.monotonic() + 10
    quiet = 0
    while quiet < 2:  # empty twice in a row: the last response's access is queued by now
        quiet = quiet + 1 if recorder.backlog() == 0 else 0
        assert time.monotonic() < deadline, "the audit queue never drained"
        time.sleep(0.02)
    backend.truncate()
    with httpx.Client(base_url=live.fhir, timeout=30) as http:
        yield http


@pytest.fixture
def client_patient(client: httpx.Client) -> Iterator[tuple[httpx.Client, str]]:
    yield client, _create(client, patient(), AS_A)


def _goal(patient_id: str) -> dict[str, Any]:
    return {**minimal("Goal"), "subject": {"reference": f"Patient/{patient_id}"}}


# --- the shape (pure) ----------------------------------------------------------------------


def test_builders_make_valid_r4b_resources() -> None:
    facts = AuditFacts(
        interaction="search-type",
        recorded=EPOCH,
        status=403,
        agency=AGENCY_A,
        client_id="client-7",
        address="10.0.0.5",
        entity_type="CarePlan",
        query="CarePlan?subject=Patient/p1",
        patients=("Patient/p1",),
        outcome_text="not allowed",
    )
    event = audit_event(facts, event_id="a1", server="https://cb.example/fhir")
    get_fhir_model_class("AuditEvent").model_validate(event)
    assert event["outcome"] == "4" and event["outcomeDesc"] == "HTTP 403: not allowed"
    assert event["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery"
    ]
    client = event["agent"][0]
    assert client["who"]["identifier"]["value"] == "client-7"
    assert client["network"] == {"address": "10.0.0.5", "type": "2"}
    assert _query(event) == "CarePlan?subject=Patient/p1"
    made = provenance(
        target="Task/1/_history/3",
        interaction="update",
        recorded=EPOCH,
        agency=AGENCY_A,
        client_id="client-7",
    )
    get_fhir_model_class("Provenance").model_validate({**made, "id": "p1"})
    assert made["activity"]["coding"][0]["code"] == "UPDATE"


@pytest.mark.parametrize(
    ("status", "code"),
    [(200, "0"), (304, "0"), (401, "4"), (404, "4"), (412, "4"), (500, "8"), (503, "12")],
)
def test_outcome_codes(status: int, code: str) -> None:
    assert outcome_code(status) == code


# --- every interaction leaves its AuditEvent -----------------------------------------------


def test_create_read_vread_update_patch_delete(client_patient: tuple[httpx.Client, str]) -> None:
    client, patient_id = client_patient
    goal_id = _create(client, _goal(patient_id), AS_A)
    assert client.get(f"/Goal/{goal_id}", headers=AS_A).status_code == 200
    assert client.get(f"/Goal/{goal_id}/_history/1", headers=AS_A).status_code == 200
    updated = {**_goal(patient_id), "id": goal_id, "lifecycleStatus": "completed"}
    assert client.put(f"/Goal/{goal_id}", json=updated, headers=AS_A).status_code == 200
    patch = [{"op": "replace", "path": "/lifecycleStatus", "value": "cancelled"}]
    patched = client.patch(f"/Goal/{goal_id}", content=json.dumps(patch), headers=JSON_PATCH | AS_A)
    assert patched.status_code == 200, patched.text
    assert client.delete(f"/Goal/{goal_id}", headers=AS_A).status_code == 204

    wanted = {"create", "read", "vread", "update", "patch", "delete"}
    events = _wait_for(
        client, lambda es: wanted <= {_subtype(e) for e in es}, entity=f"Goal/{goal_id}"
    )
    expected = {
        "create": ("C", "Goal/{}/_history/1"),
        "read": ("R", "Goal/{}/_history/1"),
        "vread": ("R", "Goal/{}/_history/1"),
        "update": ("U", "Goal/{}/_history/2"),
        "patch": ("U", "Goal/{}/_history/3"),
        "delete": ("D", "Goal/{}/_history/4"),
    }
    for subtype, (action, what) in expected.items():
        [event] = _by_subtype(events, subtype)
        assert event["action"] == action, subtype
        assert event["outcome"] == "0", subtype
        assert event["type"]["code"] == "rest"
        assert _agencies(event) == [AGENCY_A], subtype
        assert _data(event) == [what.format(goal_id)], subtype
        assert _patients(event) == [f"Patient/{patient_id}"], subtype


def test_searches_history_and_everything(client_patient: tuple[httpx.Client, str]) -> None:
    client, patient_id = client_patient
    _create(client, _goal(patient_id), AS_A)
    assert client.get(f"/Goal?subject=Patient/{patient_id}", headers=AS_A).status_code == 200
    form = {"patient": patient_id}
    assert client.post("/Goal/_search", data=form, headers=AS_A).status_code == 200
    assert client.get(f"/Patient/{patient_id}/_history", headers=AS_A).status_code == 200
    assert client.get(f"/Patient/{patient_id}/$everything", headers=AS_A).status_code == 200

    def ours(events: list[Event]) -> list[Event]:
        # Polling the log is itself audited (search-type on AuditEvent): leave those out.
        return [e for e in events if not _query(e, "").startswith("AuditEvent")]

    def complete(events: list[Event]) -> bool:
        subtypes = [_subtype(e) for e in ours(events)]
        return subtypes.count("search-type") >= 2 and {"history-instance", "operation"} <= set(
            subtypes
        )

    events = ours(_wait_for(client, complete, patient=f"Patient/{patient_id}"))
    searches = _by_subtype(events, "search-type")
    assert sorted(_query(e) for e in searches) == sorted(
        [f"Goal?subject=Patient/{patient_id}", f"Goal/_search?patient={patient_id}"]
    )
    for event in searches:
        assert event["action"] == "E" and event["outcome"] == "0"
        assert _patients(event) == [f"Patient/{patient_id}"]
        assert _agencies(event) == [AGENCY_A]
    [history] = _by_subtype(events, "history-instance")
    assert _data(history) == [f"Patient/{patient_id}"]
    [everything] = _by_subtype(events, "operation")
    assert _query(everything) == f"Patient/{patient_id}/$everything"
    assert [e.get("description") for e in everything["entity"] if "query" in e] == ["$everything"]


def test_transaction_audits_the_bundle_and_each_write(client: httpx.Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b9d3c1e-1111-4a5b-8c3d-000000000001",
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    **minimal("Goal"),
                    "subject": {"reference": "urn:uuid:0b9d3c1e-1111-4a5b-8c3d-000000000001"},
                },
                "request": {"method": "POST", "url": "Goal"},
            },
        ],
    }
    response = client.post("", json=bundle, headers=AS_B)
    assert response.status_code == 200, response.text
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    patient_ref = "/".join(locations[0].split("/")[:2])
    events = _wait_for(
        client,
        lambda es: {"transaction", "create"} <= {_subtype(e) for e in es},
        agent=AGENCY_B,
    )
    [transaction] = _by_subtype(events, "transaction")
    assert transaction["outcome"] == "0" and transaction["action"] == "E"
    creates = _by_subtype(events, "create")
    assert sorted(d for e in creates for d in _data(e)) == sorted(locations)
    assert all(_patients(e) == [patient_ref] for e in creates)


def test_export_kick_off_is_audited(client: httpx.Client) -> None:
    response = client.get("/$export", params={"_type": "Patient"}, headers=ASYNC | AS_B)
    assert response.status_code == 202, response.text
    events = _wait_for(client, lambda es: len(es) >= 1, agent=AGENCY_B, subtype="operation")
    assert any(_query(e) == "$export?_type=Patient" for e in events)


# --- refusals and failures -------------------------------------------------------------------


def test_refusals_are_audited_as_failures(client_patient: tuple[httpx.Client, str]) -> None:
    client, patient_id = client_patient
    assert client.get("/Goal/never-was", headers=AS_A).status_code == 404
    goal_id = _create(client, _goal(patient_id), AS_A)
    stale = {**_goal(patient_id), "id": goal_id}
    refused = client.put(f"/Goal/{goal_id}", json=stale, headers=AS_A | {"If-Match": 'W/"7"'})
    assert refused.status_code == 412
    bad = client.get("/Goal", params={"lifecycle-status:in": "x"}, headers=AS_A)
    assert bad.status_code == 400

    [missing] = _wait_for(client, lambda es: len(es) == 1, entity="Goal/never-was")
    assert (_subtype(missing), missing["outcome"]) == ("read", "4")
    assert missing["outcomeDesc"].startswith("HTTP 404")
    events = _wait_for(
        client, lambda es: "update" in {_subtype(e) for e in es}, entity=f"Goal/{goal_id}"
    )
    [update] = _by_subtype(events, "update")
    assert update["outcome"] == "4" and update["outcomeDesc"].startswith("HTTP 412")
    assert _patients(update) == []  # nothing was written, no body was read
    searches = _wait_for(
        client, lambda es: len(es) >= 1, subtype="search-type", outcome="4", agent=AGENCY_A
    )
    assert any("lifecycle-status:in" in _query(e) for e in searches)
    # The failed update wrote nothing: one version, one Provenance.
    assert client.get(f"/Goal/{goal_id}").json()["meta"]["versionId"] == "1"
    provenances = client.get("/Provenance", params={"target": f"Goal/{goal_id}/_history/1"})
    assert provenances.json()["total"] == 1


def test_unauthenticated_requests_are_audited(backend: Backend) -> None:
    server = server_with(backend, auth="smart", audit_flush_ms=10)
    try:
        response = httpx.get(f"{server.fhir}/Patient/p-401")
        assert response.status_code == 401
    finally:
        server.stop()  # shutdown flushes
    with backend.engine.connect() as conn:
        rows = conn.execute(
            select(audit_event_table.c.outcome, audit_event_table.c.agency).where(
                audit_event_table.c.entity_id == "p-401"
            )
        ).all()
    assert [(r[0], r[1]) for r in rows] == [("4", None)]


def test_failed_transaction_leaves_no_write_audit_and_no_provenance(client: httpx.Client) -> None:
    provenances_before = client.get("/Provenance", params={"_total": "accurate"}).json()["total"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {**minimal("Goal"), "id": "g-gone"},
                "request": {"method": "PUT", "url": "Goal/g-gone", "ifMatch": 'W/"4"'},
            },
        ],
    }
    response = client.post("", json=bundle, headers=AS_B)
    assert response.status_code == 412, response.text
    events = _wait_for(
        client, lambda es: len(es) >= 1, agent=AGENCY_B, subtype="transaction", outcome="4"
    )
    assert events[0]["outcomeDesc"].startswith("HTTP 412")
    assert _events(client, agent=AGENCY_B, subtype="create") == []
    after = client.get("/Provenance", params={"_total": "accurate"}).json()["total"]
    assert after == provenances_before
    assert client.get("/Patient", params={"_total": "accurate"}).json()["total"] == 0


# --- the log cannot be written ---------------------------------------------------------------


def test_audit_events_cannot_be_written(client_patient: tuple[httpx.Client, str]) -> None:
    client, _ = client_patient
    [event] = _wait_for(client, lambda es: len(es) == 1, subtype="create")
    event_id = event["id"]
    forged = {**event, "outcome": "0"}
    attempts = [
        client.post("/AuditEvent", json=forged),
        client.put(f"/AuditEvent/{event_id}", json=forged),
        client.patch(
            f"/AuditEvent/{event_id}",
            content=json.dumps([{"op": "replace", "path": "/outcome", "value": "8"}]),
            headers=JSON_PATCH,
        ),
        client.delete(f"/AuditEvent/{event_id}"),
        client.delete("/AuditEvent", params={"outcome": "0"}),
    ]
    for response in attempts:
        assert response.status_code == 405, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/AuditEvent/{event_id}").json() == event

    entry = {"resource": forged, "request": {"method": "PUT", "url": f"AuditEvent/{event_id}"}}
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
        response = client.post("", json=bundle)
        if kind == "transaction":
            assert response.status_code == 405, response.text
        else:
            assert response.json()["entry"][0]["response"]["status"] == "405"
    assert client.get(f"/AuditEvent/{event_id}").json() == event


def test_server_provenance_is_recorded_and_cannot_be_changed(client: httpx.Client) -> None:
    plan_id = _create(client, care_plan(), AS_A)
    update = {**care_plan(), "id": plan_id, "status": "completed"}
    assert client.put(f"/CarePlan/{plan_id}", json=update, headers=AS_A).status_code == 200
    assert client.delete(f"/CarePlan/{plan_id}", headers=AS_A).status_code == 204
    found = client.get("/Provenance", params={"target": f"CarePlan/{plan_id}", "_count": "10"})
    provenances = [e["resource"] for e in found.json()["entry"]]
    by_target = {p["target"][0]["reference"]: p for p in provenances}
    assert sorted(by_target) == [f"CarePlan/{plan_id}/_history/{v}" for v in (1, 2, 3)]
    activity = {t: p["activity"]["coding"][0]["code"] for t, p in by_target.items()}
    assert activity == {
        f"CarePlan/{plan_id}/_history/1": "CREATE",
        f"CarePlan/{plan_id}/_history/2": "UPDATE",
        f"CarePlan/{plan_id}/_history/3": "DELETE",
    }
    first = by_target[f"CarePlan/{plan_id}/_history/1"]
    assert first["agent"][0]["who"] == {"reference": AGENCY_A}

    changed = {**first, "recorded": "2020-01-01T00:00:00Z"}
    refused = client.put(f"/Provenance/{first['id']}", json=changed, headers=AS_A)
    assert refused.status_code == 403, refused.text
    assert refused.json()["issue"][0]["code"] == "forbidden"
    assert client.delete(f"/Provenance/{first['id']}").status_code == 403
    forged = {k: v for k, v in first.items() if k != "id"}
    assert client.post("/Provenance", json=forged).status_code == 403
    assert client.get(f"/Provenance/{first['id']}").json() == first

    # A client's own Provenance is an ordinary resource.
    own = {k: v for k, v in forged.items() if k != "meta"}
    own_id = _create(client, own, AS_A)
    own["id"] = own_id
    own["recorded"] = "2026-02-01T00:00:00Z"
    assert client.put(f"/Provenance/{own_id}", json=own, headers=AS_A).status_code == 200


# --- who sees what, filters, paging ----------------------------------------------------------


def test_agencies_see_their_own_events(client: httpx.Client) -> None:
    a_patient = _create(client, patient(), AS_A)
    b_patient = _create(client, patient(), AS_B)
    a_events = _events(client, AS_A, subtype="create")
    assert {d for e in a_events for d in _data(e)} == {f"Patient/{a_patient}/_history/1"}
    assert _events(client, AS_A, agent=AGENCY_B) == []
    [b_event] = _events(client, AS_B, subtype="create")
    assert client.get(f"/AuditEvent/{b_event['id']}", headers=AS_A).status_code == 404
    assert client.get(f"/AuditEvent/{b_event['id']}", headers=AS_B).json() == b_event
    everyone = _events(client, subtype="create")  # the local operator
    assert {d for e in everyone for d in _data(e)} == {
        f"Patient/{a_patient}/_history/1",
        f"Patient/{b_patient}/_history/1",
    }


def test_paging_dates_and_bad_parameters(client: httpx.Client) -> None:
    ids = [_create(client, patient(), AS_A) for _ in range(5)]
    seen: list[str] = []
    response = client.get("/AuditEvent", params={"subtype": "create", "_count": "2"})
    pages = 0
    while True:
        bundle = response.json()
        seen.extend(e["resource"]["id"] for e in bundle.get("entry", []))
        pages += 1
        nexts = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nexts:
            break
        response = client.get(nexts[0])
    assert pages == 3 and len(seen) == 5 == len(set(seen))
    events = _events(client, subtype="create")
    recorded = sorted(e["recorded"] for e in events)
    assert [e["recorded"] for e in events] == recorded[::-1]  # newest first
    middle = recorded[2]
    assert len(_events(client, subtype="create", date=f"ge{middle}")) == 3
    assert len(_events(client, subtype="create", date=f"lt{middle}")) == 2
    assert len(_events(client, subtype="create", date=f"gt{middle}")) == 2
    both = client.get(
        "/AuditEvent",
        params=[("subtype", "create"), ("date", f"ge{recorded[1]}"), ("date", f"le{recorded[3]}")],
    )
    assert len(both.json()["entry"]) == 3
    assert len(_events(client, patient=f"Patient/{ids[0]}", action="C")) == 1
    for params in (
        {"name": "x"},
        {"date": "sa2026-01-01"},
        {"date": "yesterday"},
        {"action": "X"},
        {"outcome": "3"},
        {"entity": "nonsense"},
        {"_cursor": "bm9wZQ"},
    ):
        refused = client.get("/AuditEvent", params=params)
        assert refused.status_code == 400, params
        assert refused.json()["resourceType"] == "OperationOutcome"


def test_capability_statement_lists_audit_event_read_and_search(client: httpx.Client) -> None:
    statement = client.get("/metadata").json()
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert [i["code"] for i in entry["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in entry["searchParam"]} >= {"patient", "agent", "date", "entity"}


# --- the batch: flushed, on shutdown, and switched off ---------------------------------------


def test_reads_are_flushed_on_shutdown(backend: Backend) -> None:
    backend.truncate()
    server = server_with(backend, audit_flush_ms=60_000, audit_batch_size=10_000)
    try:
        created = httpx.post(f"{server.fhir}/Patient", json=patient(), headers=AS_A).json()
        for _ in range(3):
            assert httpx.get(f"{server.fhir}/Patient/{created['id']}").status_code == 200
        reads = (audit_event_table.c.subtype == "read") & (
            audit_event_table.c.entity_id == created["id"]
        )
        with backend.engine.connect() as conn:
            assert conn.execute(select(func.count()).where(reads)).scalar_one() == 0
    finally:
        server.stop()
    with backend.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(reads)).scalar_one() == 3


def test_read_audit_can_be_switched_off_but_writes_stay_audited(backend: Backend) -> None:
    backend.truncate()
    server = server_with(backend, audit_reads=False)
    try:
        created = httpx.post(f"{server.fhir}/Patient", json=patient()).json()
        assert httpx.get(f"{server.fhir}/Patient/{created['id']}").status_code == 200
    finally:
        server.stop()
    with backend.engine.connect() as conn:
        rows = conn.execute(
            select(audit_event_table.c.subtype).where(
                audit_event_table.c.entity_id == created["id"]
            )
        )
        assert rows.scalars().all() == ["create"]


def test_malformed_requests_are_audited_without_holding_the_log_back(
    client_patient: tuple[httpx.Client, str],
) -> None:
    client, patient_id = client_patient
    too_long = "a" * 65
    assert client.get(f"/Patient/{too_long}", headers=AS_A).status_code == 400
    assert client.get("/NoSuchType/1", headers=AS_A).status_code == 404
    assert client.get(f"/Patient/{patient_id}", headers=AS_A).status_code == 200
    events = _wait_for(client, lambda es: len(es) >= 2, agent=AGENCY_A, outcome="4")
    assert sorted(_query(e) for e in events if _subtype(e) == "read") == [
        "NoSuchType/1",
        f"Patient/{too_long}",
    ]
    assert all(_data(e) == [] and _patients(e) == [] for e in events)
    # The next flush went through: the valid read is in the log too.
    [read] = _wait_for(
        client, lambda es: len(es) == 1, entity=f"Patient/{patient_id}", subtype="read"
    )
    assert read["outcome"] == "0"
