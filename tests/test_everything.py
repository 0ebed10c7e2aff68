"""$everything over HTTP on both databases: Patient (spec patient-operation-everything.html,
compartmentdefinition-patient.html) and the project's CarePlan package.

The data is built so that wrong answers show: another patient's resources, deleted
resources and resources only an old version referred to must never appear; Tasks name the
patient but are not in the R4B patient compartment; the Organization and Practitioner
references of members are included (search.mode include), one level deep only.
Project decisions tested here: one listing in (type, id) order, every resource exactly once
across pages, ``_count`` counting entries of both modes; ``total`` counts matches;
``_type`` and ``_since`` filter matches and includes alike; ``start``/``end`` are accepted,
not applied, and reported in an OperationOutcome entry; other parameters are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from app.fhir.compartments import COMPARTMENTS_PATH, compartment, patient_record
from app.search.registry import params_for
from app.services.usecases import everything
from tests.conftest import Backend
from tests.support.search_cases import QueryPairs
from tests.support.server import LiveServer

Key = tuple[str, str]


# --- helpers -------------------------------------------------------------------------------


def ref(value: str) -> dict[str, str]:
    return {"reference": value}


def put(http: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    response = http.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def delete(http: httpx.Client, resource_type: str, rid: str) -> None:
    assert http.delete(f"/{resource_type}/{rid}").status_code in (200, 204)


def walk(
    http: httpx.Client, path: str, params: dict[str, str] | None = None
) -> tuple[dict[Key, str], list[dict[str, Any]]]:
    """Follow next links: {(type, id): mode} over all pages (each key at most once), and
    the pages. Every entry must be the current version (checked by the caller's data)."""
    response = http.get(path, params=params)
    found: dict[Key, str] = {}
    pages = []
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        pages.append(bundle)
        for entry in bundle.get("entry", []):
            mode = entry["search"]["mode"]
            if mode == "outcome":
                continue
            resource = entry["resource"]
            key = (resource["resourceType"], resource["id"])
            assert key not in found, f"{key} appears twice"
            assert entry["fullUrl"].endswith(f"/{key[0]}/{key[1]}")
            found[key] = mode
        url = next((lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None)
        if url is None:
            return found, pages
        response = http.get(url)


def keys(*names: str) -> set[Key]:
    """ "Type/id" names -> keys."""
    return {(n.split("/")[0], n.split("/")[1]) for n in names}


def outcome_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return dict(body)


def observation(oid: str, subject: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": "AUDIT-C score"},
        "subject": ref(subject),
        **more,
    }


def goal(gid: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": gid,
        "lifecycleStatus": "active",
        "description": {"text": f"goal {gid}"},
        "subject": ref(subject),
    }


def service_request(sid: str, subject: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": "active",
        "intent": "order",
        "subject": ref(subject),
        **more,
    }


def task(tid: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "id": tid, "status": "requested", "intent": "order", **more}


def consent(cid: str, patient: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0"}]}],
        "patient": ref(patient),
    }


@pytest.fixture(scope="module")
def http(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    """One client for the module: the data below is built once per backend."""
    backend.truncate()
    with httpx.Client(base_url=live.fhir, timeout=30) as client:
        yield client


# --- Patient $everything ---------------------------------------------------------------

# The expected record of Patient/p1: members (match) and referenced resources (include).
P1_MATCH = keys(
    "Patient/p1",
    "Patient/p3",  # Patient.link.other -> p1: in the compartment through "link"
    "Observation/obs-1",
    "Observation/obs-3",
    "Observation/obs-abs",
    "Goal/goal-1",
    "CarePlan/cp-1",
    "Condition/cond-1",
    "ServiceRequest/sr-1",
    "Encounter/enc-1",
    "MedicationRequest/mr-1",
    "Consent/consent-1",
    "CareTeam/team-1",
    "Task/task-p1",  # Task.for -> p1: a member by RECORD_EXTRAS
)
P1_INCLUDE = keys(
    "Organization/org-owner",  # Task.owner
    "Organization/org-1",  # Patient.managingOrganization
    "Organization/org-2",  # Observation.performer
    "Practitioner/pr-1",  # Patient.generalPractitioner and Observation.performer (v2)
    "Practitioner/pr-2",  # CareTeam.participant.member
    "PractitionerRole/role-1",  # ServiceRequest.requester
    "Location/loc-1",  # Encounter.location.location
    "Medication/med-1",  # MedicationRequest.medicationReference
    "CareTeam/team-x",  # CarePlan.careTeam: a CareTeam of another patient, referenced
)


def provenance_of(http: httpx.Client, patient_id: str) -> set[Key]:
    """The Provenance the server stored for each version of the patient: in the R4B Patient
    compartment through Provenance.patient (its target), so members of the record."""
    bundle = http.get(
        "/Provenance", params={"patient": f"Patient/{patient_id}", "_count": "100"}
    ).json()
    found = {("Provenance", e["resource"]["id"]) for e in bundle.get("entry", [])}
    assert found, "every write stores a Provenance"
    return found


@pytest.fixture(scope="module")
def record(http: httpx.Client) -> dict[str, str]:
    """Two patients' records; returns the lastUpdated that _since tests split on."""
    base = str(http.base_url).rstrip("/")
    context: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": f"org-{n}", "name": f"Agency {n}"}
        for n in ("1", "2", "old", "other", "unused", "owner")
    ]
    context += [
        {"resourceType": "Practitioner", "id": f"pr-{n}", "name": [{"family": f"P{n}"}]}
        for n in ("1", "2", "other")
    ]
    context += [
        {
            "resourceType": "PractitionerRole",
            "id": "role-1",
            "practitioner": ref("Practitioner/pr-1"),
        },
        {"resourceType": "Location", "id": "loc-1", "name": "Northside centre"},
        {"resourceType": "Medication", "id": "med-1", "code": {"text": "naltrexone"}},
    ]
    for resource in context:
        put(http, resource)
    put(
        http,
        {
            "resourceType": "Patient",
            "id": "p1",
            "managingOrganization": ref("Organization/org-1"),
            "generalPractitioner": [ref("Practitioner/pr-1")],
        },
    )
    put(
        http,
        {
            "resourceType": "Patient",
            "id": "p2",
            "managingOrganization": ref("Organization/org-other"),
        },
    )
    put(
        http,
        {
            "resourceType": "Patient",
            "id": "p3",
            "link": [{"other": ref("Patient/p1"), "type": "seealso"}],
        },
    )
    members = [
        observation("obs-1", "Patient/p1", performer=[ref("Organization/org-2")]),
        observation("obs-3", "Patient/p1", performer=[ref("Organization/org-old")]),
        observation("obs-abs", f"{base}/Patient/p1"),  # absolute URL to this server
        observation("obs-moved", "Patient/p1"),
        observation("obs-deleted", "Patient/p1", performer=[ref("Practitioner/pr-other")]),
        goal("goal-1", "Patient/p1"),
        goal("goal-deleted", "Patient/p1"),
        {
            "resourceType": "CarePlan",
            "id": "cp-1",
            "status": "active",
            "intent": "plan",
            "subject": ref("Patient/p1"),
            "careTeam": [ref("CareTeam/team-x")],
        },
        {"resourceType": "Condition", "id": "cond-1", "subject": ref("Patient/p1")},
        service_request("sr-1", "Patient/p1", requester=ref("PractitionerRole/role-1")),
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": ref("Patient/p1"),
            "location": [{"location": ref("Location/loc-1")}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "mr-1",
            "status": "active",
            "intent": "order",
            "medicationReference": ref("Medication/med-1"),
            "subject": ref("Patient/p1"),
        },
        consent("consent-1", "Patient/p1", "active"),
        {
            "resourceType": "CareTeam",
            "id": "team-1",
            "subject": ref("Patient/p1"),
            "participant": [{"member": ref("Practitioner/pr-2")}],
        },
        # Not in the R4B patient compartment, but a member (the client's referral), and
        # its owner comes along as an include.
        task("task-p1", **{"for": ref("Patient/p1"), "owner": ref("Organization/org-owner")}),
        # Another patient's record.
        observation("obs-p2", "Patient/p2", performer=[ref("Practitioner/pr-other")]),
        goal("goal-p2", "Patient/p2"),
        {
            "resourceType": "CareTeam",
            "id": "team-x",
            "subject": ref("Patient/p2"),
            "participant": [{"member": ref("Organization/org-other")}],
        },
    ]
    for resource in members:
        put(http, resource)
    delete(http, "Observation", "obs-deleted")
    delete(http, "Goal", "goal-deleted")
    # New versions: obs-moved now belongs to p2, obs-3 no longer refers to org-old.
    put(http, observation("obs-moved", "Patient/p2"))
    put(http, observation("obs-3", "Patient/p1", performer=[ref("Practitioner/pr-1")]))
    # The last writes: what _since=<first of them> must return.
    since = put(http, observation("obs-1", "Patient/p1", performer=[ref("Organization/org-2")]))
    put(http, {"resourceType": "Organization", "id": "org-1", "name": "Agency 1, renamed"})
    return {"since": since["meta"]["lastUpdated"]}


def test_patient_everything_is_exactly_the_record(
    http: httpx.Client, record: dict[str, str]
) -> None:
    found, pages = walk(http, "/Patient/p1/$everything")
    assert len(pages) == 1
    got_match = {k for k, mode in found.items() if mode == "match"}
    got_include = {k for k, mode in found.items() if mode == "include"}
    p1_match = P1_MATCH | provenance_of(http, "p1")
    assert got_match == p1_match, (sorted(got_match - p1_match), sorted(p1_match - got_match))
    assert got_include == P1_INCLUDE, (
        sorted(got_include - P1_INCLUDE),
        sorted(P1_INCLUDE - got_include),
    )
    bundle = pages[0]
    assert bundle["total"] == len(p1_match)
    # Current versions only.
    versions = {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]["meta"]["versionId"]
        for e in bundle["entry"]
    }
    assert versions[("Observation", "obs-3")] == "2"
    assert versions[("Organization", "org-1")] == "2"
    self_link = next(lk["url"] for lk in bundle["link"] if lk["relation"] == "self")
    assert self_link.endswith("/Patient/p1/$everything")


def test_patient_everything_of_another_patient(http: httpx.Client, record: dict[str, str]) -> None:
    found, _ = walk(http, "/Patient/p2/$everything")
    assert found == {
        ("Patient", "p2"): "match",
        ("Observation", "obs-p2"): "match",
        ("Observation", "obs-moved"): "match",
        ("Goal", "goal-p2"): "match",
        ("CareTeam", "team-x"): "match",
        ("Organization", "org-other"): "include",
        ("Practitioner", "pr-other"): "include",
    } | dict.fromkeys(provenance_of(http, "p2"), "match")


def test_patient_everything_type_filter(http: httpx.Client, record: dict[str, str]) -> None:
    cases: list[tuple[dict[str, str] | QueryPairs, set[Key]]] = [
        (
            {"_type": "Observation"},
            keys("Observation/obs-1", "Observation/obs-3", "Observation/obs-abs"),
        ),
        ({"_type": "Patient"}, keys("Patient/p1", "Patient/p3")),
        (
            {"_type": "Organization"},
            keys("Organization/org-1", "Organization/org-2", "Organization/org-owner"),
        ),
        (
            [("_type", "Goal, Medication"), ("_type", "Location")],
            keys("Goal/goal-1", "Medication/med-1", "Location/loc-1"),
        ),
        ({"_type": "CareTeam"}, keys("CareTeam/team-1", "CareTeam/team-x")),
        ({"_type": "Task"}, keys("Task/task-p1")),
    ]
    for params, expected in cases:
        response = http.get("/Patient/p1/$everything", params=params)
        assert response.status_code == 200, response.text
        got = {
            (e["resource"]["resourceType"], e["resource"]["id"])
            for e in response.json().get("entry", [])
        }
        assert got == expected, params
    bundle = http.get("/Patient/p1/$everything", params={"_type": "Organization"}).json()
    assert bundle["total"] == 0  # matches only
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"include"}


def test_patient_everything_since(http: httpx.Client, record: dict[str, str]) -> None:
    found, pages = walk(http, "/Patient/p1/$everything", {"_since": record["since"]})
    assert found == {("Observation", "obs-1"): "match", ("Organization", "org-1"): "include"}
    assert pages[0]["total"] == 1
    found, _ = walk(http, "/Patient/p1/$everything", {"_since": "2026"})
    assert set(found) == P1_MATCH | P1_INCLUDE | provenance_of(http, "p1")
    found, _ = walk(http, "/Patient/p1/$everything", {"_since": "2027-01-01T00:00:00Z"})
    assert found == {}


def test_patient_everything_pages(http: httpx.Client, record: dict[str, str]) -> None:
    p1_match = P1_MATCH | provenance_of(http, "p1")
    everything = p1_match | P1_INCLUDE
    for count in ("1", "3", "7", "100"):
        found, pages = walk(http, "/Patient/p1/$everything", {"_count": count})
        assert set(found) == everything, count  # each exactly once (walk checks)
        assert len(pages) == -(-len(everything) // int(count)), count
        assert {p["total"] for p in pages} == {len(p1_match)}
        order = [
            (e["resource"]["resourceType"], e["resource"]["id"])
            for p in pages
            for e in p.get("entry", [])
        ]
        assert len(order) == len(everything)
    found, _ = walk(
        http, "/Patient/p1/$everything", {"_count": "2", "_type": "Observation,Practitioner"}
    )
    assert set(found) == keys(
        "Observation/obs-1",
        "Observation/obs-3",
        "Observation/obs-abs",
        "Practitioner/pr-1",
        "Practitioner/pr-2",
    )
    bundle = http.get("/Patient/p1/$everything", params={"_count": "0"}).json()
    assert bundle["total"] == len(p1_match) and "entry" not in bundle


def test_patient_everything_start_end_reported(http: httpx.Client, record: dict[str, str]) -> None:
    response = http.get(
        "/Patient/p1/$everything", params={"start": "2026-01-01", "end": "2026-02-01"}
    )
    assert response.status_code == 200
    entries = response.json()["entry"]
    outcomes = [e for e in entries if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert len(outcomes[0]["resource"]["issue"]) == 2
    assert len(entries) == len(P1_MATCH | P1_INCLUDE | provenance_of(http, "p1")) + 1


def test_patient_everything_errors(http: httpx.Client, record: dict[str, str]) -> None:
    response = http.get("/Patient/nobody/$everything")
    assert response.status_code == 404
    outcome_of(response)
    put(http, {"resourceType": "Patient", "id": "gone"})
    delete(http, "Patient", "gone")
    response = http.get("/Patient/gone/$everything")
    assert response.status_code == 410
    outcome_of(response)
    refused = [
        {"_type": "Bogus"},
        {"_type": "Observation,"},
        {"_since": "yesterday"},
        {"_count": "-1"},
        {"_cursor": "not-a-cursor"},
        {"_cursor": "WyJQYXRpZW50Il0"},  # ["Patient"]: valid base64 JSON, wrong shape
        {"start": "soon"},
        {"_sort": "_id"},
        {"patient": "p1"},
    ]
    for params in refused:
        response = http.get("/Patient/p1/$everything", params=params)
        assert response.status_code == 400, (params, response.text)
        outcome_of(response)
    response = http.get("/Patient/p1/$everything", params=[("_since", "2026"), ("_since", "2027")])
    assert response.status_code == 400
    response = http.get("/Patient/p1/$everything", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406


def test_capability_statement_lists_everything(http: httpx.Client) -> None:
    statement = http.get("/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {
        "name": "everything",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    } in resources["Patient"]["operation"]
    assert {
        "name": "everything",
        "definition": "https://casebridge.org/fhir/OperationDefinition/CarePlan-everything",
    } in resources["CarePlan"]["operation"]


# --- CarePlan $everything --------------------------------------------------------------

PLAN_MATCH = keys(
    "CarePlan/plan-a",
    "Goal/goal-a1",
    "Goal/goal-a2",
    "Condition/cond-a",
    "CareTeam/team-a",
    "Observation/obs-support",  # supportingInfo (read from the body)
    "Observation/obs-outcome",  # activity.outcomeReference (read from the body)
    "ServiceRequest/sr-a",
    "Task/task-activity",  # activity.reference
    "Appointment/appt-a",  # activity.reference
    "Task/task-on-plan",  # Task.basedOn the plan
    "Task/task-focus-sr",  # Task.focus one of the plan's ServiceRequests
)
PLAN_INCLUDE = keys(
    "Patient/cp-pat",
    "Practitioner/cm-a",
    "Organization/agency-a",
    "PractitionerRole/role-a",
    "Consent/consent-active",
)


@pytest.fixture(scope="module")
def plans(http: httpx.Client, record: dict[str, str]) -> None:
    """Two care plans of one patient, and the things around them."""
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "cp-pat"},
        {"resourceType": "Patient", "id": "cp-pat2"},
        {"resourceType": "Practitioner", "id": "cm-a"},
        {"resourceType": "PractitionerRole", "id": "role-a"},
        {"resourceType": "Organization", "id": "agency-a"},
        {"resourceType": "Organization", "id": "agency-b"},
        {"resourceType": "RelatedPerson", "id": "rp-a", "patient": ref("Patient/cp-pat")},
        goal("goal-a1", "Patient/cp-pat"),
        goal("goal-a2", "Patient/cp-pat"),
        goal("goal-old", "Patient/cp-pat"),
        goal("goal-a-deleted", "Patient/cp-pat"),
        goal("goal-b", "Patient/cp-pat"),
        {"resourceType": "Condition", "id": "cond-a", "subject": ref("Patient/cp-pat")},
        {"resourceType": "Condition", "id": "cond-b", "subject": ref("Patient/cp-pat")},
        observation("obs-support", "Patient/cp-pat"),
        observation("obs-outcome", "Patient/cp-pat"),
        observation("obs-unrelated", "Patient/cp-pat"),
        service_request("sr-a", "Patient/cp-pat", performer=[ref("Organization/agency-b")]),
        service_request("sr-b", "Patient/cp-pat"),
        {
            "resourceType": "Appointment",
            "id": "appt-a",
            "status": "proposed",
            "participant": [{"actor": ref("Patient/cp-pat"), "status": "needs-action"}],
        },
        {
            "resourceType": "CareTeam",
            "id": "team-a",
            "subject": ref("Patient/cp-pat"),
            "participant": [
                {"member": ref("Practitioner/cm-a")},
                {"member": ref("PractitionerRole/role-a")},
                {"member": ref("Organization/agency-a")},
                {"member": ref("RelatedPerson/rp-a")},  # not a type the package carries
                {"member": ref("Patient/cp-pat")},
            ],
        },
        {
            "resourceType": "CareTeam",
            "id": "team-b",
            "subject": ref("Patient/cp-pat"),
            "participant": [{"member": ref("Organization/agency-b")}],
        },
        task("task-activity", **{"for": ref("Patient/cp-pat")}),
        task("task-on-plan", basedOn=[ref("CarePlan/plan-a")]),
        task("task-focus-sr", focus=ref("ServiceRequest/sr-a")),
        task("task-deleted", basedOn=[ref("CarePlan/plan-a")]),
        task("task-plan-b", basedOn=[ref("CarePlan/plan-b")]),
        task("task-sr-b", focus=ref("ServiceRequest/sr-b")),
        consent("consent-active", "Patient/cp-pat", "active"),
        consent("consent-inactive", "Patient/cp-pat", "inactive"),
        consent("consent-other", "Patient/cp-pat2", "active"),
    ]
    for resource in resources:
        put(http, resource)
    plan_a: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": "plan-a",
        "status": "active",
        "intent": "plan",
        "subject": ref("Patient/cp-pat"),
        "goal": [ref("Goal/goal-old")],
    }
    put(http, plan_a)  # version 1 refers to goal-old only
    plan_a.update(
        goal=[ref("Goal/goal-a1"), ref("Goal/goal-a2"), ref("Goal/goal-a-deleted")],
        addresses=[ref("Condition/cond-a")],
        careTeam=[ref("CareTeam/team-a")],
        supportingInfo=[ref("Observation/obs-support"), ref("Observation/not-stored")],
        activity=[
            {
                "reference": ref("ServiceRequest/sr-a"),
                "outcomeReference": [ref("Observation/obs-outcome")],
            },
            {"reference": ref("Task/task-activity")},
            {"reference": ref("Appointment/appt-a")},
        ],
    )
    put(http, plan_a)
    put(
        http,
        {
            "resourceType": "CarePlan",
            "id": "plan-b",
            "status": "active",
            "intent": "plan",
            "subject": ref("Patient/cp-pat"),
            "goal": [ref("Goal/goal-b")],
            "addresses": [ref("Condition/cond-b")],
            "careTeam": [ref("CareTeam/team-b")],
            "supportingInfo": [ref("Observation/obs-unrelated")],
            "activity": [{"reference": ref("ServiceRequest/sr-b")}],
        },
    )
    delete(http, "Goal", "goal-a-deleted")
    delete(http, "Task", "task-deleted")


def test_care_plan_everything_is_exactly_the_package(http: httpx.Client, plans: None) -> None:
    found, pages = walk(http, "/CarePlan/plan-a/$everything")
    got_match = {k for k, mode in found.items() if mode == "match"}
    got_include = {k for k, mode in found.items() if mode == "include"}
    assert got_match == PLAN_MATCH, (sorted(got_match - PLAN_MATCH), sorted(PLAN_MATCH - got_match))
    assert got_include == PLAN_INCLUDE, (
        sorted(got_include - PLAN_INCLUDE),
        sorted(PLAN_INCLUDE - got_include),
    )
    assert pages[0]["total"] == len(PLAN_MATCH)
    plan = next(e["resource"] for e in pages[0]["entry"] if e["resource"]["id"] == "plan-a")
    assert plan["meta"]["versionId"] == "2"


def test_care_plan_everything_other_plan(http: httpx.Client, plans: None) -> None:
    found, _ = walk(http, "/CarePlan/plan-b/$everything")
    assert set(found) == keys(
        "CarePlan/plan-b",
        "Goal/goal-b",
        "Condition/cond-b",
        "CareTeam/team-b",
        "Observation/obs-unrelated",
        "ServiceRequest/sr-b",
        "Task/task-plan-b",
        "Task/task-sr-b",
        "Patient/cp-pat",
        "Organization/agency-b",
        "Consent/consent-active",
    )


def test_care_plan_everything_filters_and_pages(http: httpx.Client, plans: None) -> None:
    found, _ = walk(http, "/CarePlan/plan-a/$everything", {"_type": "Task"})
    assert set(found) == keys("Task/task-activity", "Task/task-on-plan", "Task/task-focus-sr")
    found, _ = walk(http, "/CarePlan/plan-a/$everything", {"_type": "Consent,Patient"})
    assert found == {("Consent", "consent-active"): "include", ("Patient", "cp-pat"): "include"}
    for count in ("1", "4", "50"):
        found, pages = walk(http, "/CarePlan/plan-a/$everything", {"_count": count})
        assert set(found) == PLAN_MATCH | PLAN_INCLUDE, count
        assert len(pages) == -(-len(PLAN_MATCH | PLAN_INCLUDE) // int(count))
    plan = http.get("/CarePlan/plan-a").json()
    found, _ = walk(http, "/CarePlan/plan-a/$everything", {"_since": plan["meta"]["lastUpdated"]})
    # Written after plan-a's version 2: plan-b's package only, and the deletions.
    assert set(found) == keys("CarePlan/plan-a")


def test_care_plan_everything_errors(http: httpx.Client, plans: None) -> None:
    assert http.get("/CarePlan/nothing/$everything").status_code == 404
    put(
        http,
        {
            "resourceType": "CarePlan",
            "id": "plan-gone",
            "status": "active",
            "intent": "plan",
            "subject": ref("Patient/cp-pat"),
        },
    )
    delete(http, "CarePlan", "plan-gone")
    response = http.get("/CarePlan/plan-gone/$everything")
    assert response.status_code == 410
    outcome_of(response)
    response = http.get("/CarePlan/plan-a/$everything", params={"_type": "Nope"})
    assert response.status_code == 400
    outcome_of(response)


def test_care_plan_everything_too_large(
    http: httpx.Client, plans: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the cap the package is refused (400 too-costly), never silently cut short."""
    monkeypatch.setattr(everything, "MAX_PACKAGE", 5)
    response = http.get("/CarePlan/plan-a/$everything")
    assert response.status_code == 400
    assert outcome_of(response)["issue"][0]["code"] == "too-costly"
    monkeypatch.undo()
    assert http.get("/CarePlan/plan-a/$everything").status_code == 200


# --- the generated compartment table ---------------------------------------------------


def test_compartment_parameters_are_indexed_references() -> None:
    """Every parameter the compartments name is a reference parameter the index fills and
    that may point at the owner's type (what the generator checked, against the registry
    the server runs with now)."""
    document = orjson.loads(COMPARTMENTS_PATH.read_bytes())
    assert set(document["compartments"]) == {
        "Device",
        "Encounter",
        "Patient",
        "Practitioner",
        "RelatedPerson",
    }
    wrong = []
    for owner in document["compartments"]:
        for resource_type, codes in compartment(owner).items():
            for code in codes:
                param = params_for(resource_type).get(code)
                if param is None or param.type != "reference":
                    wrong.append(f"{owner}: {resource_type}.{code}")
                elif param.targets and owner not in param.targets:
                    wrong.append(f"{owner}: {resource_type}.{code} targets {param.targets}")
    assert not wrong
    patient = compartment("Patient")
    assert patient["Observation"] == ("performer", "subject")
    assert "Task" not in patient and "Organization" not in patient
    assert patient_record()["Task"] == ("patient",)
