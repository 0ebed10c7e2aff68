"""The plan checks warn where they used to reassure (issue 19, defect 4): empty plans, vague
goals, goals past due, actions and CTI phases whose dates do not fit, and one definition of
a caseload for $check and the caseload report. A period that ends before it starts is
refused when written (FHIR per-1), through /fhir and through /cases alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from app.fhir.careplan_checks import (
    _MODEL_SYSTEM,
    PlanContext,
    caseload_limit,
    check_model,
    check_plan,
    smart_failures,
)
from app.services.usecases.reports import _caseload
from mappings.casework import EXT
from tests.test_careplan_checks import context, good_action, good_goal, messages

TODAY = dt.date(2026, 12, 7)


def warnings(issues: list[Any]) -> str:
    return messages([i for i in issues if i.severity == "warning"])


def test_an_empty_plan_is_not_reported_as_having_no_problems() -> None:
    found = warnings(check_plan(context("generalist", goals=[], actions=[], today=TODAY)))
    assert "The plan has no goals" in found
    assert "The plan has no actions" in found


def test_a_vague_goal_fails_specific_and_measurable() -> None:
    vague = good_goal(description="Be a better person overall", measure="feelings")
    failures = smart_failures(context(goals=[vague]).goals["Goal/g1"])
    assert set(failures) >= {"S", "M"}, failures
    assert "does not say what will change" in failures["S"]
    assert "'feelings'" in failures["M"]
    # What the worker can measure passes, however plainly it is put.
    plain = good_goal(description="Keep a tenancy for six months", measure="Nights housed")
    assert smart_failures(context(goals=[plain]).goals["Goal/g1"]) == {}


def test_a_goal_past_its_due_date_is_flagged_while_it_is_worked_on() -> None:
    overdue = good_goal(due="2020-06-30", status="active")
    found = warnings(check_plan(context("generalist", goals=[overdue], today=TODAY)))
    assert "was due on 2020-06-30 and is still active" in found
    done = good_goal(due="2020-06-30", status="completed")
    assert "was due" not in warnings(check_plan(context("generalist", goals=[done], today=TODAY)))


def test_an_action_ending_before_it_starts_is_flagged() -> None:
    backwards = good_action(start="2026-03-01", end="2026-02-01")
    found = warnings(check_plan(context("generalist", actions=[backwards], today=TODAY)))
    assert "'Apply for housing' ends before it starts" in found


def _phase(name: str, start: str, end: str) -> dict[str, Any]:
    return {
        "url": EXT["phase"],
        "extension": [
            {"url": "name", "valueString": name},
            {"url": "period", "valuePeriod": {"start": start, "end": end}},
        ],
    }


def test_a_cti_phase_outside_the_plan_is_flagged() -> None:
    planned = context("cti", start="2026-01-01", end="2026-09-30")
    planned.plan["extension"] = [
        *planned.plan.get("extension", []),
        _phase("transition", "2026-01-01", "2026-03-31"),
        _phase("try-out", "2026-04-01", "2026-11-30"),
    ]
    found = warnings(check_model(planned))
    assert "CTI phase 'try-out' lies outside the plan's period" in found
    assert "'transition'" not in found


def test_the_caseload_is_counted_one_way_for_check_and_report() -> None:
    limit = caseload_limit("intensive")
    assert limit is not None
    # A case manager with a few intensive cases and many generalist ones: over the
    # intensive limit in total, as $check counts it, and so in the report too.
    episodes = [_episode("Practitioner/cm", "intensive") for _ in range(2)] + [
        _episode("Practitioner/cm", "generalist") for _ in range(limit)
    ]
    report = {row["model"]: row for row in _caseload(episodes, {}, TODAY)["by_model"]}
    assert report["intensive"]["over_ratio"] == ["Practitioner/cm"]
    plan = context("intensive", today=TODAY)
    checked = check_model(
        PlanContext(plan=plan.plan, goals=plan.goals, caseload=len(episodes), today=TODAY)
    )
    assert f"holds {len(episodes)} open cases" in warnings(checked)


def _episode(manager: str, model: str) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "careManager": {"reference": manager},
        "type": [{"coding": [{"system": _MODEL_SYSTEM, "code": model}]}],
    }


def test_a_period_ending_before_it_starts_is_refused_and_not_stored(
    client: httpx.Client,
) -> None:
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-01-01", "end": "2026-06-30"},
        "extension": [_phase("transition", "2026-05-01", "2026-02-01")],
    }
    refused = client.post("/CarePlan", json=plan, headers={"Content-Type": "application/fhir+json"})
    assert refused.status_code == 400, refused.text
    issue = refused.json()["issue"][0]
    assert issue["code"] == "invariant" and "per-1" in issue["diagnostics"]
    assert "CarePlan.extension[0].extension[1].valuePeriod" in issue["expression"][0]
    assert client.get("/CarePlan").json()["total"] == 0
    # Instants are compared as instants: an end later in the day elsewhere is fine.
    plan["extension"] = [_phase("t", "2026-05-01T09:00:00+10:00", "2026-05-01T01:00:00Z")]
    accepted = client.post(
        "/CarePlan", json=plan, headers={"Content-Type": "application/fhir+json"}
    )
    assert accepted.status_code == 201, accepted.text
