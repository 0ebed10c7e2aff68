"""Care-plan checks: one test per rule and per SMART letter (pure rules), and the two
endpoints (GET /fhir/CarePlan/{id}/$check, GET /cases/{id}/check) over HTTP on both
databases with caseloads, teams, referrals and consents really stored."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.fhir.careplan_checks import (
    PlanContext,
    check_actions,
    check_consent,
    check_model,
    check_plan,
    smart_failures,
)
from mappings import casework as m
from schemas import casework as plain
from tests.conftest import Backend
from tests.support.server import LiveServer

FHIR = {"Content-Type": "application/fhir+json"}


def good_goal(**changes: Any) -> plain.Goal:
    values: dict[str, Any] = {
        "id": "g1",
        "description": "Move into a stable rental flat",
        "measure": "Nights housed per week",
        "target": "7",
        "achievable_because": "Waiting list is short in this area",
        "addresses": ["c1"],
        "due": "2026-06-30",
        "expressed_by_client": True,
    }
    values.update(changes)
    return plain.Goal.model_validate(values)


def good_action(**changes: Any) -> plain.Action:
    values: dict[str, Any] = {
        "what": "Apply for housing",
        "how": "Worker lodges the form",
        "where": "Housing office",
        "start": "2026-01-12",
        "end": "2026-02-12",
        "who": [{"who": "Practitioner/cm", "responsibility": "lodges it"}],
    }
    values.update(changes)
    return plain.Action.model_validate(values)


def context(
    model: str | None = None,
    goals: list[plain.Goal] | None = None,
    actions: list[plain.Action] | None = None,
    **changes: Any,
) -> PlanContext:
    goals = [good_goal()] if goals is None else goals
    plan = plain.CarePlan(
        title="Plan",
        model=model,
        start=changes.pop("start", "2026-01-01"),
        end=changes.pop("end", "2026-06-01"),
        phases=changes.pop("phases", []),
        review_due=changes.pop("review_due", None),
        goals=goals,
        actions=[good_action()] if actions is None else actions,
        supports=changes.pop("supports", ["sister"]),
    )
    goal_map = {f"Goal/{g.id}": m.goal_to_fhir(g, client_id="p1", case_id="e1") for g in goals}
    strengths = changes.pop("strengths", ["Keeps appointments"])
    supporting = {
        f"Observation/s{i}": m.strength_to_observation(t, client_id="p1", case_id="e1")
        for i, t in enumerate(strengths)
    }
    for support in plan.supports:
        supporting[f"RelatedPerson/{support}"] = {"resourceType": "RelatedPerson"}
    fhir = m.care_plan_to_fhir(
        plan,
        client_id="p1",
        case_id="e1",
        goal_refs=list(goal_map),
        need_refs=["Condition/c1"],
        strength_refs=[r for r in supporting if r.startswith("Observation/")],
    )
    return PlanContext(plan=fhir, goals=goal_map, supporting=supporting, **changes)


def messages(issues: list[Any]) -> str:
    return " | ".join(i.diagnostics for i in issues)


def test_a_complete_plan_has_no_warnings() -> None:
    for model in ["generalist", "clinical", "strengths-based", "brokerage"]:
        issues = check_plan(context(model, actions=[good_action(service_type="counselling")]))
        assert [i for i in issues if i.severity == "warning"] == [], messages(issues)


# -- actions -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"how": None}, "does not say how"),
        ({"where": None}, "does not say where"),
        ({"start": None, "end": None}, "has no timeframe"),
        ({"who": []}, "names nobody responsible"),
    ],
    ids=["how", "where", "timeframe", "who"],
)
def test_action_rules(change: dict[str, Any], needle: str) -> None:
    issues = check_actions(context(actions=[good_action(**change)]).plan)
    assert len(issues) == 1 and needle in issues[0].diagnostics
    assert issues[0].severity == "warning"
    assert check_actions(context(actions=[good_action()]).plan) == []


def test_performer_without_responsibility() -> None:
    plan = context().plan
    del plan["activity"][0]["detail"]["performer"][0]["extension"]
    issues = check_actions(plan)
    assert "responsibility is not stated" in messages(issues)
    assert issues[0].expression == ("CarePlan.activity[0].detail.performer[0]",)


# -- SMART -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "letter"),
    [
        ({"description": "Housing"}, "S"),
        ({"measure": None}, "M"),
        ({"target": None}, "M"),
        ({"achievable_because": None, "expressed_by_client": False}, "A"),
        ({"addresses": []}, "R"),
        ({"due": None}, "T"),
    ],
    ids=["S", "M-measure", "M-target", "A", "R", "T"],
)
def test_smart_letters(change: dict[str, Any], letter: str) -> None:
    good = m.goal_to_fhir(good_goal(), client_id="p1", case_id=None)
    assert smart_failures(good) == {}
    bad = m.goal_to_fhir(good_goal(**change), client_id="p1", case_id=None)
    failures = smart_failures(bad)
    assert list(failures) == [letter]
    issues = check_plan(context(goals=[good_goal(**change)]))
    assert f"is not SMART: {letter} (" in messages(issues)


# -- models of practice ------------------------------------------------------------------------
def test_brokerage_plans_at_most_two_sessions() -> None:
    two = context("brokerage", actions=[good_action(sessions=1), good_action(sessions=1)])
    assert check_model(two) == []
    three = context("brokerage", actions=[good_action(sessions=2), good_action(sessions=1)])
    assert "plans 3" in messages(check_model(three))


def test_clinical_plans_include_therapy() -> None:
    issues = check_model(context("clinical", actions=[good_action(service_type="outreach")]))
    assert "no action of a counselling" in messages(issues)
    for service in ["counselling", "telephone-counselling", "rehabilitation"]:
        assert check_model(context("clinical", actions=[good_action(service_type=service)])) == []


def test_strengths_based_goals_expressed_by_the_client() -> None:
    issues = check_model(context("strengths-based", goals=[good_goal(expressed_by_client=False)]))
    assert "was not expressed by the client" in messages(issues)


def test_strengths_based_needs_recorded_strengths() -> None:
    issues = check_model(context("strengths-based", strengths=[]))
    assert "no strengths of the client are recorded" in messages(issues)
    informal = check_model(context("strengths-based", supports=[]))
    assert [i.severity for i in informal] == ["information"]


@pytest.mark.parametrize("model", ["act", "wraparound"])
def test_act_and_wraparound_need_a_multidisciplinary_team(model: str) -> None:
    def team(*roles: str) -> dict[str, Any]:
        return {"participant": [{"role": [{"text": r}]} for r in roles]}

    one = check_model(context(model, care_teams=[team("case manager", "Case Manager")]))
    assert "multidisciplinary" in messages(one)
    two = check_model(context(model, care_teams=[team("case manager", "psychiatrist")]))
    assert two == []


@pytest.mark.parametrize(("model", "limit"), [("intensive", 15), ("act", 10), ("wraparound", 10)])
def test_caseload_ratio(model: str, limit: int) -> None:
    teams = [{"participant": [{"role": [{"text": "a"}]}, {"role": [{"text": "b"}]}]}]
    assert check_model(context(model, care_teams=teams, caseload=limit)) == []
    over = check_model(context(model, care_teams=teams, caseload=limit + 1))
    assert f"holds {limit + 1} open cases" in messages(over)
    assert check_model(context(model, care_teams=teams, caseload=None)) == []


def test_cti_needs_a_period_and_phases() -> None:
    phases = [{"name": "Transition", "start": "2026-01-01", "end": "2026-03-01"}]
    assert check_model(context("cti", phases=phases, review_due="2026-03-01")) == []
    no_review = check_model(context("cti", phases=phases))
    assert "review points: the plan has no review date" in messages(no_review)
    no_end = check_model(context("cti", phases=phases, end=None))
    assert "period with a start and an end" in messages(no_end)
    no_phases = check_model(context("cti"))
    assert "records none" in messages(no_phases)


def test_a_plan_without_a_model_is_told_so() -> None:
    issues = check_model(context(None))
    assert [i.severity for i in issues] == ["information"]


# -- consent -----------------------------------------------------------------------------------
def test_labelled_referral_needs_consent() -> None:
    referral = m.referral_to_service_request(
        plain.Referral(
            id="sr1",
            client_id="p1",
            from_agency="Organization/a",
            to_agency="Organization/b",
            service_type="counselling",
            reason="alcohol",
            requested="2026-01-01",
            sensitive=True,
        )
    )
    consent = m.consent_to_fhir(
        plain.Consent(client_id="p1", recipient="Organization/b", purpose="referral")
    )
    other = copy.deepcopy(consent)
    other["provision"]["actor"][0]["reference"]["reference"] = "Organization/c"
    inactive = {**copy.deepcopy(consent), "status": "inactive"}
    assert "no active Consent" in messages(check_consent(context(referrals=[referral])))
    for wrong in (other, inactive):
        assert check_consent(context(referrals=[referral], consents=[wrong])) != []
    assert check_consent(context(referrals=[referral], consents=[consent])) == []
    unlabelled = {k: v for k, v in referral.items() if k != "meta"}
    assert check_consent(context(referrals=[unlabelled])) == []


# -- over HTTP ---------------------------------------------------------------------------------
@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def open_case(http: httpx.Client, model: str, members: list[tuple[str, str]]) -> dict[str, Any]:
    body = {
        "client": {"given_names": ["Ari"], "family_name": "Ng"},
        "model": model,
        "care_manager": "Practitioner/cm-1",
        "care_team": [{"member": who, "role": role} for who, role in members],
    }
    created = http.post("/cases", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def plan_for(model: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Plan",
        "model": model,
        "start": "2026-01-01",
        "end": "2026-06-01",
        "needs": [{"key": "n", "description": "Housing"}],
        "goals": [
            {
                "description": "Move into a stable rental flat",
                "measure": "Nights housed",
                "target": "7",
                "due": "2026-06-01",
                "addresses": ["n"],
                "expressed_by_client": True,
            }
        ],
        "actions": [good_action().model_dump(mode="json", exclude_none=True)],
        "strengths": ["Resilient"],
    }
    body.update(changes)
    return body


def test_case_check_over_http(root: httpx.Client) -> None:
    case = open_case(root, "act", [("Practitioner/cm-1", "case manager")])
    empty = root.get(f"/cases/{case['id']}/check").json()
    assert "has no care plan yet" in empty["issue"][0]["diagnostics"]
    plan = root.post(f"/cases/{case['id']}/careplans", json=plan_for("act")).json()
    outcome = root.get(f"/cases/{case['id']}/check").json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "multidisciplinary" in str(outcome)
    direct = root.get(f"/fhir/CarePlan/{plan['id']}/$check").json()
    assert "multidisciplinary" in str(direct)
    # The team gains a second discipline: the warning goes.
    fixed = {
        **case,
        "care_team": [*case["care_team"], {"member": "Practitioner/n-1", "role": "nurse"}],
    }
    assert root.put(f"/cases/{case['id']}", json=fixed).status_code == 200
    clean = root.get(f"/fhir/CarePlan/{plan['id']}/$check").json()
    assert clean["issue"][0]["severity"] == "information", clean
    assert root.get("/fhir/CarePlan/none/$check").status_code == 404


def test_caseload_and_consent_over_http(root: httpx.Client) -> None:
    team = [("Practitioner/cm-1", "case manager"), ("Practitioner/dr", "psychiatrist")]
    cases = [open_case(root, "intensive", team) for _ in range(16)]
    plan = root.post(f"/cases/{cases[0]['id']}/careplans", json=plan_for("intensive")).json()
    outcome = root.get(f"/fhir/CarePlan/{plan['id']}/$check").json()
    assert "holds 16 open cases" in str(outcome)
    closed = {
        **cases[1],
        "status": "finished",
        "stage": "closure",
        "closure_reason": "goals-achieved",
        "closure_summary": "Housed and linked to a GP.",
    }
    assert root.put(f"/cases/{cases[1]['id']}", json=closed).status_code == 200
    assert "open cases" not in str(root.get(f"/fhir/CarePlan/{plan['id']}/$check").json())
    # A referral carrying substance-use labels and no consent.
    referral = m.referral_to_service_request(
        plain.Referral(
            client_id=cases[0]["client_id"],
            from_agency="Organization/a",
            to_agency="Organization/b",
            service_type="counselling",
            reason="alcohol",
            requested="2026-01-01",
            sensitive=True,
        )
    )
    assert root.post("/fhir/ServiceRequest", json=referral, headers=FHIR).status_code == 201
    assert "no active Consent" in str(root.get(f"/cases/{cases[0]['id']}/check").json())
    consent = m.consent_to_fhir(
        plain.Consent(client_id=cases[0]["client_id"], recipient="Organization/b", purpose="AOD")
    )
    assert root.post("/fhir/Consent", json=consent, headers=FHIR).status_code == 201
    assert "no active Consent" not in str(root.get(f"/cases/{cases[0]['id']}/check").json())
