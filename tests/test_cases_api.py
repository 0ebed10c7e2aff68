"""The plain case-management API over HTTP on both databases: plain JSON in and out, FHIR
underneath in one transaction; FHIR clients and plain clients see the same data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, server_with
from tests.support.server import LiveServer

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    """A client at the server root (plain API) on a clean database."""
    backend.truncate()
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def new_case(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client": {
            "given_names": ["Alex"],
            "family_name": "Rivera",
            "birth_date": "1988-04-02",
            "gender": "other",
        },
        "status": "active",
        "stage": "assessment",
        "model": "intensive",
        "setting": "community-services",
        "managing_agency": "Organization/northside",
        "care_manager": "Practitioner/cm-7",
        "care_team": [
            {"member": "Practitioner/cm-7", "name": "Sam Lee", "role": "case manager"},
            {"member": "Practitioner/dr-2", "role": "psychiatrist"},
        ],
        "start": "2026-01-05",
    }
    body.update(changes)
    return body


def create(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def count(http: httpx.Client, resource_type: str) -> int:
    response = http.get(f"/fhir/{resource_type}", params={"_total": "accurate", "_count": "1"})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_create_case_stores_fhir_in_one_transaction(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    assert case["stage"] == "assessment" and case["model"] == "intensive"
    assert [m["role"] for m in case["care_team"]] == ["case manager", "psychiatrist"]
    # The FHIR records behind it, as a FHIR client sees them.
    episode = root.get(f"/fhir/EpisodeOfCare/{case['id']}").json()
    assert episode["status"] == "active"
    assert episode["patient"]["reference"] == f"Patient/{case['client_id']}"
    assert episode["managingOrganization"]["reference"] == "Organization/northside"
    assert episode["careManager"]["reference"] == "Practitioner/cm-7"
    stage = next(e for e in episode["extension"] if e["url"].endswith("/case-stage"))
    assert stage["valueCoding"]["code"] == "assessment"
    team = root.get(f"/fhir/CareTeam/{case['care_team_id']}").json()
    assert len(team["participant"]) == 2
    patient = root.get(f"/fhir/Patient/{case['client_id']}").json()
    assert patient["name"][0]["family"] == "Rivera"
    # ?format=fhir gives the same resources.
    bundle = root.get(f"/cases/{case['id']}", params={"format": "fhir"}).json()
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == ["CareTeam", "EpisodeOfCare", "Patient"]


def test_bad_plain_input_is_refused_and_nothing_is_stored(root: httpx.Client) -> None:
    bad = [
        new_case(stage="somewhere"),
        new_case(model="casual"),
        new_case(unknown_field=1),
        new_case(care_manager="Organization/x"),
        new_case(client=None),
        {**new_case(), "client_id": "nobody"},
    ]
    for body in bad:
        response = root.post("/cases", json=body)
        assert response.status_code in (400, 422), response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] == "error"
    response = root.post(
        "/cases", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert count(root, "EpisodeOfCare") == 0 and count(root, "Patient") == 0
    response = root.post("/cases", json=new_case(stage="somewhere"))
    assert "stage" in response.json()["issue"][0]["expression"][0]


def test_update_case_and_if_match(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    etag = root.get(f"/cases/{case['id']}").headers["ETag"]
    changed = {**case, "stage": "monitoring", "care_team": case["care_team"][:1]}
    response = root.put(f"/cases/{case['id']}", json=changed, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "monitoring"
    assert len(response.json()["care_team"]) == 1
    # The stale ETag is refused and changes nothing.
    stale = root.put(
        f"/cases/{case['id']}", json={**changed, "stage": "closure"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412
    assert root.get(f"/cases/{case['id']}").json()["stage"] == "monitoring"
    # The client cannot be moved to another case.
    moved = root.put(f"/cases/{case['id']}", json={**changed, "client_id": "other"})
    assert moved.status_code == 422


def test_fhir_writes_are_seen_by_plain_readers(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    episode = root.get(f"/fhir/EpisodeOfCare/{case['id']}").json()
    for extension in episode["extension"]:
        if extension["url"].endswith("/case-stage"):
            extension["valueCoding"]["code"] = "evaluation"
    episode["status"] = "onhold"
    response = root.put(f"/fhir/EpisodeOfCare/{case['id']}", json=episode, headers=FHIR)
    assert response.status_code == 200, response.text
    seen = root.get(f"/cases/{case['id']}").json()
    assert (seen["stage"], seen["status"]) == ("evaluation", "onhold")


def plan_body() -> dict[str, Any]:
    return {
        "title": "Housing and alcohol",
        "model": "strengths-based",
        "start": "2026-01-05",
        "end": "2026-07-05",
        "needs": [{"key": "housing", "description": "No stable housing"}],
        "goals": [
            {
                "description": "Move into a stable rental flat by winter",
                "measure": "Nights housed per week",
                "target": "7",
                "due": "2026-06-30",
                "addresses": ["housing"],
                "expressed_by_client": True,
            }
        ],
        "actions": [
            {
                "what": "Apply for social housing",
                "how": "Client fills the form, worker lodges it",
                "where": "Housing office, Smith St",
                "start": "2026-01-12",
                "end": "2026-02-12",
                "who": [{"who": "Practitioner/cm-7", "responsibility": "lodges the application"}],
                "service_type": "outreach",
            }
        ],
        "strengths": ["Keeps appointments", "Close to sister"],
    }


def test_care_plan_round_trip_over_http(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    plan = create(root, f"/cases/{case['id']}/careplans", plan_body())
    goal = plan["goals"][0]
    need = plan["needs"][0]
    assert goal["addresses"] == [need["id"]]
    assert plan["strengths"] == ["Keeps appointments", "Close to sister"]
    assert plan["actions"][0]["who"][0]["responsibility"] == "lodges the application"
    # One transaction wrote the plan, its goal, need and two strengths.
    fhir_plan = root.get(f"/fhir/CarePlan/{plan['id']}").json()
    assert fhir_plan["goal"] == [{"reference": f"Goal/{goal['id']}"}]
    assert fhir_plan["addresses"] == [{"reference": f"Condition/{need['id']}"}]
    assert len(fhir_plan["supportingInfo"]) == 2
    fhir_goal = root.get(f"/fhir/Goal/{goal['id']}").json()
    assert fhir_goal["expressedBy"]["reference"] == f"Patient/{case['client_id']}"
    assert count(root, "Observation") == 2
    listed = root.get(f"/cases/{case['id']}/careplans").json()
    assert listed == [plan]
    bundle = root.get(f"/cases/{case['id']}/careplans/{plan['id']}", params={"format": "fhir"})
    assert len(bundle.json()["entry"]) == 5


def test_failed_care_plan_stores_nothing(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    body = plan_body()
    body["needs"].append({"key": "housing", "description": "duplicate key"})
    assert root.post(f"/cases/{case['id']}/careplans", json=body).status_code == 422
    body = plan_body()
    body["actions"][0]["status"] = "someday"
    assert root.post(f"/cases/{case['id']}/careplans", json=body).status_code == 400
    assert count(root, "CarePlan") == 0 and count(root, "Goal") == 0
    assert count(root, "Condition") == 0
    assert root.post("/cases/nope/careplans", json=plan_body()).status_code == 404


def test_supports_notes_and_unknown_case(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    support = create(
        root,
        f"/cases/{case['id']}/supports",
        {"name": "Jo Rivera", "relationship": "SIS", "gender": "female", "connection": "strong"},
    )
    person = root.get(f"/fhir/RelatedPerson/{support['id']}").json()
    assert person["patient"]["reference"] == f"Patient/{case['client_id']}"
    assert root.get(f"/cases/{case['id']}/supports").json() == [support]
    note = create(
        root,
        f"/cases/{case['id']}/notes",
        {"date": "2026-02-01", "author": "Practitioner/cm-7", "text": "Met at home; calm."},
    )
    document = root.get(f"/fhir/DocumentReference/{note['id']}").json()
    assert document["context"]["encounter"][0]["reference"] == f"EpisodeOfCare/{case['id']}"
    assert root.get(f"/cases/{case['id']}/notes").json() == [note]
    assert root.get("/cases/missing").status_code == 404
    assert root.get("/cases/missing").json()["resourceType"] == "OperationOutcome"


def test_informal_systems_and_family_details(root: httpx.Client) -> None:
    """An informal system (work, school, a faith community, a self-help group) is a support
    of another kind, stored as a Group with the client as member; a person's death, ended
    partnership and parent are carried by extensions. Plain and FHIR clients see the same."""
    case = create(root, "/cases", new_case())
    client_ref = f"Patient/{case['client_id']}"
    group_body = {"kind": "self-help", "name": "Tuesday AA", "connection": "strong"}
    aa = create(root, f"/cases/{case['id']}/supports", {**group_body, "flow": "to-client"})
    assert aa == {**group_body, "flow": "to-client", "id": aa["id"], "active": True}
    group = root.get(f"/fhir/Group/{aa['id']}").json()
    assert group["type"] == "person" and group["actual"] is True
    assert group["name"] == "Tuesday AA"
    assert group["code"]["coding"][0]["code"] == "self-help"
    assert group["member"] == [{"entity": {"reference": client_ref}}]
    # A FHIR client records the client's workplace; plain readers see it.
    work = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "name": "Harbour Freight",
        "code": {
            "coding": [
                {"system": "https://casebridge.org/fhir/CodeSystem/informal-system", "code": "work"}
            ]
        },
        "member": [{"entity": {"reference": client_ref}}],
    }
    created = root.post("/fhir/Group", json=work, headers=FHIR)
    assert created.status_code == 201, created.text
    # A Group that is no informal system (a cohort the client is in) is not a support.
    cohort = {**work, "name": "Study cohort", "code": {"text": "cohort"}}
    assert root.post("/fhir/Group", json=cohort, headers=FHIR).status_code == 201
    father = create(
        root,
        f"/cases/{case['id']}/supports",
        {
            "name": "Ray",
            "relationship": "FTH",
            "death_date": "2020-06-01",
            "separation": "divorced",
        },
    )
    assert father["deceased"] is True
    brother = create(
        root,
        f"/cases/{case['id']}/supports",
        {"name": "Kit", "relationship": "HBRO", "parent": f"RelatedPerson/{father['id']}"},
    )
    person = root.get(f"/fhir/RelatedPerson/{father['id']}").json()
    extensions = {e["url"].rsplit("/", 1)[1]: e for e in person["extension"]}
    assert extensions["deceased"]["valueDate"] == "2020-06-01"
    assert extensions["separation"]["valueCoding"]["code"] == "divorced"
    person = root.get(f"/fhir/RelatedPerson/{brother['id']}").json()
    assert person["extension"][0]["valueReference"]["reference"] == f"RelatedPerson/{father['id']}"
    listed = root.get(f"/cases/{case['id']}/supports").json()
    assert [s["name"] for s in listed] == ["Ray", "Kit", "Tuesday AA", "Harbour Freight"]
    assert listed[3]["kind"] == "work"
    bundle = root.get(f"/cases/{case['id']}/supports", params={"format": "fhir"}).json()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["RelatedPerson", "RelatedPerson", "Group", "Group"]
    refused = root.post(
        f"/cases/{case['id']}/supports", json={"kind": "school", "name": "TAFE", "gender": "male"}
    )
    assert refused.status_code == 400
    assert "only for a person" in refused.json()["issue"][0]["diagnostics"]


def test_schemas_are_served(root: httpx.Client) -> None:
    index = root.get("/schemas").json()
    assert {"case", "care-plan", "goal", "referral", "consent", "assessment"} <= set(index)
    schema = root.get("/schemas/care-plan.json").json()
    assert schema["title"] == "CarePlan"
    assert "actions" in schema["properties"]
    assert root.get("/schemas/nothing.json").status_code == 404


def test_conformance_resources_are_installed_at_start(backend: Backend, root: httpx.Client) -> None:
    """The root fixture emptied the database; a server starting on it installs them again,
    and a second start writes nothing new."""
    server = server_with(backend, install_conformance=True)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            url = "https://casebridge.org/fhir/CodeSystem/case-management-model"
            found = http.get("/CodeSystem", params={"url": url}).json()
            assert found["total"] == 1
            codes = {c["code"] for c in found["entry"][0]["resource"]["concept"]}
            assert {"brokerage", "act", "cti", "strengths-based", "intensive"} <= codes
            vs = http.get(
                "/ValueSet", params={"url": "https://casebridge.org/fhir/ValueSet/aod-service-type"}
            )
            assert vs.json()["total"] == 1
            q = http.get(
                "/Questionnaire", params={"url": "https://casebridge.org/fhir/Questionnaire/phq9"}
            )
            assert len(q.json()["entry"][0]["resource"]["item"]) == 9
    finally:
        server.stop()
    again = server_with(backend, install_conformance=True)
    try:
        with httpx.Client(base_url=again.fhir, timeout=30) as http:
            history = http.get("/CodeSystem/casebridge-case-stage/_history").json()
            assert history["total"] == 1
    finally:
        again.stop()


def test_consents(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    body = {
        "client_id": case["client_id"],
        "recipient": "Organization/aod-clinic",
        "purpose": "Referral for counselling",
        "start": "2026-01-05",
        "covers_sensitive": True,
    }
    consent = create(root, f"/cases/{case['id']}/consents", body)
    fhir = root.get(f"/fhir/Consent/{consent['id']}").json()
    assert fhir["provision"]["actor"][0]["reference"]["reference"] == "Organization/aod-clinic"
    assert fhir["provision"]["securityLabel"][0]["code"] == "ETH"
    assert root.get(f"/cases/{case['id']}/consents").json() == [consent]
    other = root.post(f"/cases/{case['id']}/consents", json={**body, "client_id": "someone"})
    assert other.status_code == 422
    assert count(root, "Consent") == 1


def test_update_care_plan_keeps_ids_and_records_achievement(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    plan = create(root, f"/cases/{case['id']}/careplans", plan_body())
    path = f"/cases/{case['id']}/careplans/{plan['id']}"
    etag = root.get(path).headers["ETag"]
    goal = {**plan["goals"][0], "achievement": "achieved", "status": "completed"}
    extra = {
        "description": "Cut drinking to two days a week",
        "addresses": [plan["needs"][0]["id"]],
    }
    changed = {
        **plan,
        "goals": [goal, extra],
        "strengths": ["Keeps appointments", "Good cook"],
        "title": "Housing, alcohol and food",
    }
    response = root.put(path, json=changed, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "Housing, alcohol and food"
    assert updated["goals"][0]["id"] == goal["id"]
    assert updated["goals"][0]["achievement"] == "achieved"
    assert updated["goals"][1]["id"] not in (None, goal["id"])
    assert updated["needs"] == plan["needs"]
    fhir_goal = root.get(f"/fhir/Goal/{goal['id']}").json()
    assert fhir_goal["meta"]["versionId"] == "2"
    assert fhir_goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    # "Keeps appointments" was reused, "Good cook" recorded: three strengths, not four.
    assert count(root, "Observation") == 3
    assert root.put(path, json=changed, headers={"If-Match": etag}).status_code == 412
    foreign = {**changed, "goals": [{**goal, "id": "not-this-plans"}]}
    refused = root.put(path, json=foreign)
    assert refused.status_code == 422 and "goals[0].id" in refused.text
    assert root.get(path).json() == updated


def test_odd_requests_are_never_500(root: httpx.Client) -> None:
    case = create(root, "/cases", new_case())
    base = f"/cases/{case['id']}"
    odd_plans = [
        {**plan_body(), "goals": [{"description": "x", "addresses": ["no such need"]}]},
        {**plan_body(), "goals": [{"description": "x", "addresses": ["a/b/c"]}]},
        {**plan_body(), "needs": [{"key": "Bad Key", "description": "x"}]},
        {**plan_body(), "phases": [{"name": "p", "start": "2026-02-30", "end": "2026-03-01"}]},
        {**plan_body(), "supports": ["../../etc"]},
        [],
        "plan",
    ]
    for body in odd_plans:
        response = root.post(f"{base}/careplans", json=body)
        assert response.status_code < 500, response.text
    for body in [
        {"instrument": "phq9", "date": "2026-01-01", "answers": {}},
        {"instrument": "phq9", "date": "2026-01-01", "answers": {"15": 1}},
        {"instrument": "bdi", "date": "2026-01-01", "answers": {"1": 1}},
    ]:
        response = root.post(f"{base}/assessments", json=body)
        assert response.status_code in (400, 422), response.text
    for path in [f"{base}?format=xml", "/cases/a%20b", f"{base}/careplans/none"]:
        response = root.get(path)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert root.post(f"{base}/notes", json={"date": "2026-01-01", "text": " "}).status_code == 400
