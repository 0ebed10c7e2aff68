"""The case-management process over HTTP on both databases (issue 19): stages that move on
with a warning when one is skipped, closing with a reason and a summary, a worker's
caseload with what is overdue, a transfer with a handover note, and progress notes that
record contacts - through /cases and through /fhir alike.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import Backend
from tests.support.server import LiveServer, free_port, start_server
from tests.test_access import _organizations
from tests.test_cases_api import new_case, plan_body
from tests.test_referrals import ManualClock

CLINIC, HOUSING = "Organization/clinic", "Organization/housing"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STAGE = "https://casebridge.org/fhir/StructureDefinition/case-stage"
STAGES = "https://casebridge.org/fhir/CodeSystem/case-stage"


def _as(agency: str | None) -> dict[str, str]:
    return {"X-Casebridge-Agency": agency} if agency else {}


@pytest.fixture(scope="module")
def timed_server(backend: Backend) -> Iterator[tuple[LiveServer, ManualClock]]:
    """A server whose clock the tests move (overdue needs time to pass)."""
    manual = ManualClock(MONDAY)
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir")
    server = start_server(create_app(settings, clock=manual.clock()), port)
    yield server, manual
    server.stop()


@pytest.fixture
def world(
    timed_server: tuple[LiveServer, ManualClock], backend: Backend
) -> Iterator[tuple[httpx.Client, ManualClock]]:
    """The root client on a clean database with the agencies and their workers."""
    server, manual = timed_server
    backend.truncate()
    manual.set(MONDAY)
    with httpx.Client(base_url=server.fhir, timeout=30) as fhir:
        _organizations(fhir)
        for worker in ("cm-1", "cm-2", "cm-3"):
            put = fhir.put(
                f"/Practitioner/{worker}",
                json={"resourceType": "Practitioner", "id": worker, "name": [{"text": worker}]},
                headers=FHIR_JSON,
            )
            assert put.status_code in (200, 201), put.text
        role = {
            "resourceType": "PractitionerRole",
            "id": "housing-worker",
            "practitioner": {"reference": "Practitioner/cm-3"},
            "organization": {"reference": HOUSING},
        }
        assert fhir.put("/PractitionerRole/housing-worker", json=role, headers=FHIR_JSON).is_success
    with httpx.Client(base_url=server.root, timeout=30) as http:
        yield http, manual


def _case(http: httpx.Client, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "managing_agency": CLINIC,
        "care_manager": "Practitioner/cm-1",
        "care_team": [{"member": "Practitioner/cm-1", "name": "Sam Lee", "role": "case manager"}],
        "stage": "engagement",
    }
    body = new_case(**{**fields, **changes})
    response = http.post("/cases", json=body, headers=_as(CLINIC))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _put_case(
    http: httpx.Client, case: dict[str, Any], agency: str | None = CLINIC, **changes: Any
) -> httpx.Response:
    body = {k: v for k, v in case.items() if k not in ("alerts", "warnings")}
    return http.put(f"/cases/{case['id']}", json={**body, **changes}, headers=_as(agency))


def _episode(http: httpx.Client, case_id: str) -> dict[str, Any]:
    response = http.get(f"/fhir/EpisodeOfCare/{case_id}", headers=_as(CLINIC))
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- stages -------------------------------------------------------------------------------------
def test_stages_move_on_back_and_warn_when_one_is_skipped(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    case = _case(http)
    assert case["warnings"] == []
    step = _put_case(http, case, stage="assessment")
    assert step.status_code == 200, step.text
    assert step.json()["stage"] == "assessment" and step.json()["warnings"] == []
    jump = _put_case(http, step.json(), stage="monitoring")
    assert jump.status_code == 200, jump.text
    (warning,) = jump.json()["warnings"]
    assert "skipping planning, implementation" in warning
    back = _put_case(http, jump.json(), stage="assessment")
    assert back.status_code == 200 and back.json()["warnings"] == []

    # The same rule for a FHIR client, told in the OperationOutcome it asks for.
    episode = _episode(http, case["id"])
    for extension in episode["extension"]:
        if extension["url"] == STAGE:
            extension["valueCoding"] = {"system": STAGES, "code": "evaluation"}
    response = http.put(
        f"/fhir/EpisodeOfCare/{case['id']}",
        json=episode,
        headers={**FHIR_JSON, **_as(CLINIC), "Prefer": "return=OperationOutcome"},
    )
    assert response.status_code == 200, response.text
    texts = [i["diagnostics"] for i in response.json()["issue"] if i["severity"] == "warning"]
    assert texts == ["The case moved from assessment to evaluation, skipping planning, "
                     "implementation, monitoring"]  # fmt: skip


def test_closing_needs_a_reason_and_a_summary_and_warns_about_open_work(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    case = _case(http, stage="monitoring")
    plan = http.post(f"/cases/{case['id']}/careplans", json=plan_body(), headers=_as(CLINIC))
    assert plan.status_code == 201, plan.text
    referral = http.post(
        "/referrals",
        json={
            "client_id": case["client_id"],
            "from_agency": CLINIC,
            "to_agency": HOUSING,
            "service_type": "supported-accommodation",
            "reason": "Needs housing",
            "requested": "2026-01-05",
        },
        headers=_as(CLINIC),
    )
    assert referral.status_code == 201, referral.text
    before = _episode(http, case["id"])["meta"]["versionId"]

    for missing in ({}, {"closure_reason": "goals-achieved"}, {"closure_summary": "Done."}):
        refused = _put_case(http, case, status="finished", stage="closure", **missing)
        assert refused.status_code == 422, refused.text
        assert "Closing a case needs" in refused.json()["issue"][0]["diagnostics"]
    assert _episode(http, case["id"])["meta"]["versionId"] == before

    closed = _put_case(
        http,
        case,
        status="finished",
        stage="closure",
        closure_reason="goals-achieved",
        closure_summary="Housed; linked with a GP and a counsellor.",
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["closure_reason"] == "goals-achieved" and body["end"] == "2026-01-05"
    warnings = " | ".join(body["warnings"])
    assert f"care plans still open: CarePlan/{plan.json()['id']}" in warnings
    assert "referrals still open: Task/" in warnings

    # Stored as FHIR extensions; taking the reason away from a closed case is refused.
    episode = _episode(http, case["id"])
    urls = {e["url"].rsplit("/", 1)[1] for e in episode["extension"]}
    assert {"case-closure-reason", "case-closure-summary"} <= urls
    episode["extension"] = [e for e in episode["extension"] if "closure-reason" not in e["url"]]
    response = http.put(
        f"/fhir/EpisodeOfCare/{case['id']}", json=episode, headers={**FHIR_JSON, **_as(CLINIC)}
    )
    assert response.status_code == 422, response.text


def test_an_ehr_episode_without_a_stage_is_not_held_to_the_process(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": "Patient/p1"},
        "managingOrganization": {"reference": CLINIC},
    }
    http.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}, headers=FHIR_JSON)
    created = http.post("/fhir/EpisodeOfCare", json=episode, headers={**FHIR_JSON, **_as(CLINIC)})
    assert created.status_code == 201, created.text
    finished = {**created.json(), "status": "finished"}
    response = http.put(
        f"/fhir/EpisodeOfCare/{finished['id']}",
        json=finished,
        headers={**FHIR_JSON, **_as(CLINIC)},
    )
    assert response.status_code == 200, response.text


# -- progress notes and plan reviews --------------------------------------------------------
def test_contacts_and_reviews_round_trip_through_plain_and_fhir(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    case = _case(http)
    note = {
        "date": "2026-01-05",
        "author": "Practitioner/cm-1",
        "text": "Home visit; talked about the tenancy.",
        "contact_type": "home-visit",
        "duration_minutes": 45,
    }
    stored = http.post(f"/cases/{case['id']}/notes", json=note, headers=_as(CLINIC))
    assert stored.status_code == 201, stored.text
    assert {k: stored.json()[k] for k in note} == note
    assert stored.json()["did_not_attend"] is False
    missed = http.post(
        f"/cases/{case['id']}/notes",
        json={"date": "2026-01-06", "text": "Did not attend.", "contact_type": "face-to-face",
              "did_not_attend": True},
        headers=_as(CLINIC),
    )  # fmt: skip
    assert missed.status_code == 201, missed.text
    document = http.get(
        f"/fhir/DocumentReference/{stored.json()['id']}", headers=_as(CLINIC)
    ).json()
    assert document["context"]["event"][0]["coding"][0]["code"] == "home-visit"
    durations = [e["valueDuration"] for e in document["extension"]]
    assert durations == [
        {"value": 45, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
    ]
    notes = http.get(f"/cases/{case['id']}/notes", headers=_as(CLINIC)).json()
    assert [n["did_not_attend"] for n in notes] == [False, True]
    for bad in ({"duration_minutes": -5}, {"contact_type": "carrier-pigeon"}):
        response = http.post(
            f"/cases/{case['id']}/notes", json={**note, **bad}, headers=_as(CLINIC)
        )
        assert response.status_code == 400, response.text

    plan = http.post(
        f"/cases/{case['id']}/careplans",
        json={**plan_body(), "review_due": "2026-02-01"},
        headers=_as(CLINIC),
    )
    assert plan.status_code == 201, plan.text
    assert plan.json()["review_due"] == "2026-02-01"
    fhir_plan = http.get(f"/fhir/CarePlan/{plan.json()['id']}", headers=_as(CLINIC)).json()
    assert {"url": "https://casebridge.org/fhir/StructureDefinition/care-plan-review-due",
            "valueDate": "2026-02-01"} in fhir_plan["extension"]  # fmt: skip
    # A plain update without the date clears it.
    body = {k: v for k, v in plan.json().items() if k != "review_due"}
    etag = plan.headers["ETag"]
    updated = http.put(
        f"/cases/{case['id']}/careplans/{plan.json()['id']}",
        json=body,
        headers={**_as(CLINIC), "If-Match": etag},
    )
    assert updated.status_code == 200, updated.text
    assert "review_due" not in updated.json()


# -- transfer -----------------------------------------------------------------------------------
def test_transfer_passes_the_case_with_a_handover_note(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    case = _case(http)
    path = f"/cases/{case['id']}/transfer"
    handover = {"to": "Practitioner/cm-2", "name": "Kim Tran", "note": "Weekly calls, Tuesdays."}

    # Hidden is missing: another agency gets what an unknown case gets.
    hidden = http.post(path, json=handover, headers=_as(HOUSING))
    missing = http.post("/cases/nope/transfer", json=handover, headers=_as(HOUSING))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["issue"][0]["diagnostics"].replace(case["id"], "X") == missing.json()[
        "issue"
    ][0]["diagnostics"].replace("nope", "X")

    for bad, status in (
        ({**handover, "to": "Practitioner/nobody"}, 422),
        ({**handover, "to": "PractitionerRole/housing-worker"}, 422),
        ({**handover, "to": "Practitioner/cm-1"}, 422),
        ({"to": "Practitioner/cm-2"}, 400),
        ({**handover, "to": "Organization/clinic"}, 400),
    ):
        response = http.post(path, json=bad, headers=_as(CLINIC))
        assert response.status_code == status, (bad, response.text)
    stale = http.post(path, json=handover, headers={**_as(CLINIC), "If-Match": 'W/"99"'})
    assert stale.status_code == 412, stale.text
    assert http.get(f"/cases/{case['id']}/notes", headers=_as(CLINIC)).json() == []

    moved = http.post(path, json=handover, headers=_as(CLINIC))
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["care_manager"] == "Practitioner/cm-2"
    assert [(m["member"], m["role"]) for m in body["care_team"]] == [
        ("Practitioner/cm-2", "case manager")
    ]
    (note,) = http.get(f"/cases/{case['id']}/notes", headers=_as(CLINIC)).json()
    assert note["author"] == "Practitioner/cm-1"
    assert note["text"] == (
        "Handover from Practitioner/cm-1 to Practitioner/cm-2: Weekly calls, Tuesdays."
    )
    document = http.get(f"/fhir/DocumentReference/{note['id']}", headers=_as(CLINIC)).json()
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert "Weekly calls" in text


# -- the caseload -------------------------------------------------------------------------------
def test_caseload_lists_filters_pages_and_shows_what_is_overdue(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, manual = world
    mine = [_case(http, model="intensive") for _ in range(3)]
    theirs = _case(http, care_manager="Practitioner/cm-2", model="brokerage", stage="planning")
    other_agency = http.post("/cases", json=new_case(managing_agency=HOUSING), headers=_as(HOUSING))
    assert other_agency.status_code == 201
    # The first case: a plan to review on the 12th, a goal due on the 9th, a referral sent
    # today, a contact on the 6th and a missed one on the 8th.
    plan = {**plan_body(), "review_due": "2026-01-12"}
    plan["goals"][0]["due"] = "2026-01-09"
    posted = http.post(f"/cases/{mine[0]['id']}/careplans", json=plan, headers=_as(CLINIC))
    assert posted.status_code == 201, posted.text
    goal_id = posted.json()["goals"][0]["id"]
    referral = http.post(
        "/referrals",
        json={
            "client_id": mine[0]["client_id"],
            "from_agency": CLINIC,
            "to_agency": HOUSING,
            "service_type": "supported-accommodation",
            "reason": "Needs housing",
            "requested": "2026-01-05",
        },
        headers=_as(CLINIC),
    )
    assert referral.status_code == 201, referral.text
    for date, missed in (("2026-01-06", False), ("2026-01-08", True)):
        note = {"date": date, "text": "Contact.", "contact_type": "telephone",
                "did_not_attend": missed}  # fmt: skip
        assert http.post(f"/cases/{mine[0]['id']}/notes", json=note, headers=_as(CLINIC)).is_success

    listed = http.get("/cases", headers=_as(CLINIC))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 4 and body["next"] is None
    assert {c["id"] for c in body["cases"]} == {c["id"] for c in [*mine, theirs]}
    first = next(c for c in body["cases"] if c["id"] == mine[0]["id"])
    assert first["client_name"] == "Alex Rivera" and first["last_contact"] == "2026-01-06"
    assert first["overdue"] == {"referrals": [], "reviews": [], "goals": []}

    # A week and a half later: the goal, the review and the referral are all late.
    manual.set(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    late = http.get("/cases", params={"overdue": "true"}, headers=_as(CLINIC)).json()
    assert [c["id"] for c in late["cases"]] == [mine[0]["id"]]
    overdue = late["cases"][0]["overdue"]
    assert overdue["reviews"] == [f"CarePlan/{posted.json()['id']}"]
    assert overdue["goals"] == [f"Goal/{goal_id}"]
    (task,) = http.get("/fhir/Task", headers=_as(CLINIC)).json()["entry"]
    assert overdue["referrals"] == [f"Task/{task['resource']['id']}"]
    report = http.get("/reports/caseload", headers=_as(CLINIC)).json()
    assert [(r["care_plan"], r["case"], r["days_overdue"]) for r in report["overdue_reviews"]] == [
        (f"CarePlan/{posted.json()['id']}", f"EpisodeOfCare/{mine[0]['id']}", 3)
    ]
    assert [(r["goal"], r["due"], r["days_overdue"]) for r in report["overdue_goals"]] == [
        (f"Goal/{goal_id}", "2026-01-09", 6)
    ]
    on_time = http.get("/cases", params={"overdue": "false"}, headers=_as(CLINIC)).json()
    assert on_time["total"] == 3

    # Filters, alone and together; paging with a next link.
    def ids(**params: str) -> set[str]:
        response = http.get("/cases", params=params, headers=_as(CLINIC))
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["cases"]}

    assert ids(care_manager="Practitioner/cm-2") == {theirs["id"]}
    assert ids(model="brokerage") == {theirs["id"]}
    assert ids(stage="engagement", model="intensive") == {c["id"] for c in mine}
    assert ids(stage="planning,engagement") == {c["id"] for c in [*mine, theirs]}
    page = http.get("/cases", params={"count": "3"}, headers=_as(CLINIC)).json()
    assert len(page["cases"]) == 3 and page["next"] == "/cases?page=2&count=3"
    rest = http.get(page["next"], headers=_as(CLINIC)).json()
    assert len(rest["cases"]) == 1 and rest["next"] is None
    assert {c["id"] for c in [*page["cases"], *rest["cases"]]} == ids()

    # A closed case leaves the caseload, and is there when asked for.
    closing = _put_case(
        http,
        mine[1],
        status="finished",
        stage="closure",
        closure_reason="client-withdrew",
        closure_summary="Moved interstate.",
    )
    assert closing.status_code == 200, closing.text
    assert mine[1]["id"] not in ids()
    assert ids(status="finished") == {mine[1]["id"]}

    # Another agency sees only its own case.
    housing = http.get("/cases", headers=_as(HOUSING)).json()
    assert [c["id"] for c in housing["cases"]] == [other_agency.json()["id"]]

    for bad in (
        {"stage": "nowhere"},
        {"model": ""},
        {"overdue": "yes"},
        {"count": "0"},
        {"count": "201"},
        {"page": "x"},
        {"care_manager": "Organization/clinic"},
        {"colour": "red"},
    ):
        response = http.get("/cases", params=bad, headers=_as(CLINIC))
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"


# -- the client and the comprehensive assessment ------------------------------------------------
def test_the_client_and_a_comprehensive_assessment_through_plain_and_fhir(
    world: tuple[httpx.Client, ManualClock],
) -> None:
    http, _ = world
    case = _case(
        http,
        client={
            "given_names": ["Jarrah"],
            "family_name": "Brown",
            "indigenous_status": "aboriginal",
            "language": "pjt",
            "interpreter_needed": True,
        },
    )
    client = http.get(f"/cases/{case['id']}/client", headers=_as(CLINIC))
    assert client.status_code == 200, client.text
    assert client.json()["indigenous_status"] == "aboriginal"
    patient = http.get(f"/fhir/Patient/{case['client_id']}", headers=_as(CLINIC)).json()
    (status,) = [e for e in patient["extension"] if e["url"].endswith("indigenous-status")]
    assert status["valueCoding"]["code"] == "1"
    assert patient["communication"][0]["language"]["coding"][0]["code"] == "pjt"

    # A FHIR client adds an identifier; a plain update of the details keeps it.
    patient["identifier"] = [{"system": "http://ns.electronichealth.net.au/id/medicare-number",
                              "value": "2123456701"}]  # fmt: skip
    assert http.put(
        f"/fhir/Patient/{case['client_id']}", json=patient, headers={**FHIR_JSON, **_as(CLINIC)}
    ).is_success
    fresh = http.get(f"/cases/{case['id']}/client", headers=_as(CLINIC))
    changed = http.put(
        f"/cases/{case['id']}/client",
        json={**fresh.json(), "interpreter_needed": False, "language": "en"},
        headers={**_as(CLINIC), "If-Match": fresh.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["interpreter_needed"] is False
    patient = http.get(f"/fhir/Patient/{case['client_id']}", headers=_as(CLINIC)).json()
    assert patient["identifier"][0]["value"] == "2123456701"
    stale = http.put(
        f"/cases/{case['id']}/client",
        json=fresh.json(),
        headers={**_as(CLINIC), "If-Match": fresh.headers["ETag"]},
    )
    assert stale.status_code == 412, stale.text

    assessment = {
        "date": "2026-01-05",
        "assessor": "Practitioner/cm-1",
        "family": "Close to an aunt in Alice Springs; estranged from father.",
        "medical": "Type 2 diabetes; no regular GP.",
        "socio_economic": "JobSeeker; rent arrears.",
        "cultural": "Pitjantjatjara; connection to country matters.",
        "living_situation": "temporary",
        "living_situation_note": "Staying with a cousin, three weeks.",
    }
    created = http.post(
        f"/cases/{case['id']}/comprehensive-assessments", json=assessment, headers=_as(CLINIC)
    )
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in assessment} == assessment
    listed = http.get(f"/cases/{case['id']}/comprehensive-assessments", headers=_as(CLINIC))
    assert [{k: a[k] for k in assessment} for a in listed.json()] == [assessment]
    # Searchable as FHIR: the living-situation domain by its code.
    found = http.get(
        "/fhir/Observation",
        params={
            "code": "https://casebridge.org/fhir/CodeSystem/assessment-domain|living-situation",
            "subject": f"Patient/{case['client_id']}",
        },
        headers=_as(CLINIC),
    ).json()
    (entry,) = found["entry"]
    assert entry["resource"]["valueCodeableConcept"]["coding"][0]["code"] == "temporary"

    for bad in ({"date": "2026-01-05"}, {**assessment, "living_situation": "castle"},
                {"date": "2026-01-05", "living_situation_note": "somewhere"}):  # fmt: skip
        response = http.post(
            f"/cases/{case['id']}/comprehensive-assessments", json=bad, headers=_as(CLINIC)
        )
        assert response.status_code == 400, response.text

    # Hidden is missing on every new route.
    for method, path, body in (
        ("GET", f"/cases/{case['id']}/client", None),
        ("PUT", f"/cases/{case['id']}/client", fresh.json()),
        ("GET", f"/cases/{case['id']}/comprehensive-assessments", None),
        ("POST", f"/cases/{case['id']}/comprehensive-assessments", assessment),
    ):
        hidden = http.request(method, path, json=body, headers=_as(HOUSING))
        missing = http.request(method, path.replace(case["id"], "nope"), json=body,
                               headers=_as(HOUSING))  # fmt: skip
        assert hidden.status_code == missing.status_code == 404, (path, hidden.text)


# -- models of practice keep their pace ----------------------------------------------------------
def _warnings(http: httpx.Client, case_id: str) -> list[str]:
    outcome = http.get(f"/cases/{case_id}/check", headers=_as(CLINIC)).json()
    return [i["diagnostics"] for i in outcome["issue"] if i["severity"] == "warning"]


def test_models_of_practice_keep_their_pace(world: tuple[httpx.Client, ManualClock]) -> None:
    http, manual = world
    intensive = _case(http, model="intensive", start="2026-01-05")
    brokerage = _case(http, model="brokerage", start="2026-01-05")
    cti = _case(http, model="cti", start="2026-01-05")
    for case, model in ((intensive, "intensive"), (brokerage, "brokerage"), (cti, "cti")):
        plan = {**plan_body(), "model": model, "start": "2026-01-05", "end": "2026-09-30"}
        assert http.post(
            f"/cases/{case['id']}/careplans", json=plan, headers=_as(CLINIC)
        ).is_success
    assert not [w for w in _warnings(http, intensive["id"]) if "every 7 days" in w]
    assert any("no review date" in w for w in _warnings(http, cti["id"]))

    # Ten days without contact: ICM wants one a week. A missed appointment is no contact.
    manual.set(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    missed = {"date": "2026-01-14", "text": "DNA", "contact_type": "home-visit",
              "did_not_attend": True}  # fmt: skip
    assert http.post(f"/cases/{intensive['id']}/notes", json=missed, headers=_as(CLINIC)).is_success
    (gap,) = [w for w in _warnings(http, intensive["id"]) if "every 7 days" in w]
    assert "no contact is recorded since the case opened on 2026-01-05 (10 days ago)" in gap
    report = http.get("/reports/caseload", headers=_as(CLINIC)).json()
    by_model = {r["model"]: r for r in report["caseload"]["by_model"]}
    assert by_model["intensive"]["contact_overdue"] == [f"EpisodeOfCare/{intensive['id']}"]
    seen = {"date": "2026-01-15", "text": "Seen", "contact_type": "home-visit"}
    assert http.post(f"/cases/{intensive['id']}/notes", json=seen, headers=_as(CLINIC)).is_success
    assert not [w for w in _warnings(http, intensive["id"]) if "every 7 days" in w]

    # Four months on: brokerage should have linked and closed; CTI still has time.
    manual.set(datetime(2026, 5, 5, 9, 0, tzinfo=UTC))
    assert any("at most 90 days" in w for w in _warnings(http, brokerage["id"]))
    assert not any("at most 270 days" in w for w in _warnings(http, cti["id"]))
    report = http.get("/reports/caseload", headers=_as(CLINIC)).json()
    by_model = {r["model"]: r for r in report["caseload"]["by_model"]}
    assert by_model["brokerage"]["open_too_long"] == [f"EpisodeOfCare/{brokerage['id']}"]
    assert by_model["cti"]["open_too_long"] == []
