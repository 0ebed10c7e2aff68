"""GET /reports/caseload over HTTP on both databases (JSON and CSV); every number is
recomputed here with FHIR searches and Task history read over /fhir."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.support.clock import EPOCH
from tests.support.server import LiveServer

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def post(http: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR)
    assert response.status_code == 201, response.text
    return dict(response.json())


def move(http: httpx.Client, task: dict[str, Any], status: str, when: str) -> dict[str, Any]:
    task = {k: v for k, v in task.items() if k != "meta"}
    task.update(status=status, lastModified=when)
    response = http.put(f"/fhir/Task/{task['id']}", json=task, headers=FHIR)
    assert response.status_code == 200, response.text
    return dict(response.json())


def task(owner: str, authored: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": "Patient/p1"},
        "authoredOn": authored,
        "owner": {"reference": owner},
        **extra,
    }


def episode(manager: str, model: str | None, status: str = "active") -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": status,
        "patient": {"reference": "Patient/p1"},
        "careManager": {"reference": manager},
    }
    if model:
        body["type"] = [
            {
                "coding": [
                    {
                        "system": "https://casebridge.org/fhir/CodeSystem/case-management-model",
                        "code": model,
                    }
                ]
            }
        ]
    return body


def days(start: str, end: str) -> float:
    def parse(value: str) -> datetime:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return round((parse(end) - parse(start)).total_seconds() / 86400, 2)


def test_caseload_report(root: httpx.Client) -> None:
    for _ in range(11):
        post(root, episode("Practitioner/ann", "act"))
    for _ in range(3):
        post(root, episode("Practitioner/bo", "intensive"))
    post(root, episode("Practitioner/bo", None))
    post(root, episode("Practitioner/bo", "act", status="finished"))
    # Agency A: accepted after 2 and 4 days, one completed after 7.
    a1 = post(root, task("Organization/a", "2026-01-01"))
    a1 = move(root, a1, "accepted", "2026-01-03T00:00:00Z")
    move(root, a1, "completed", "2026-01-08T00:00:00Z")
    a2 = post(root, task("Organization/a", "2026-01-01"))
    move(root, a2, "in-progress", "2026-01-05T00:00:00Z")
    # Agency B: overdue by due date, and overdue by the 14-day rule; one not yet late.
    due = {"restriction": {"period": {"end": "2026-01-02"}}}
    b1 = post(root, task("Organization/b", "2026-01-01", **due))
    b2 = post(root, task("Organization/b", "2025-12-01"))
    post(root, task("Organization/b", "2026-01-04"))
    for status, lifecycle in [
        ("achieved", "active"),
        ("in-progress", "active"),
        (None, "completed"),
        (None, "active"),
    ]:
        goal: dict[str, Any] = {
            "resourceType": "Goal",
            "lifecycleStatus": lifecycle,
            "description": {"text": "g"},
            "subject": {"reference": "Patient/p1"},
        }
        if status:
            goal["achievementStatus"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                        "code": status,
                    }
                ]
            }
        post(root, goal)

    report = root.get("/reports/caseload").json()

    # Caseload per case manager, recomputed by search.
    for row in report["caseload"]["by_case_manager"]:
        found = root.get(
            "/fhir/EpisodeOfCare",
            params={"care-manager": row["case_manager"], "status": "active", "_total": "accurate"},
        ).json()
        assert row["open_cases"] == found["total"]
    assert {r["case_manager"]: r["open_cases"] for r in report["caseload"]["by_case_manager"]} == {
        "Practitioner/ann": 11,
        "Practitioner/bo": 4,
    }
    models = {r["model"]: r for r in report["caseload"]["by_model"]}
    act = root.get(
        "/fhir/EpisodeOfCare",
        params={
            "type": "https://casebridge.org/fhir/CodeSystem/case-management-model|act",
            "status": "active",
            "_total": "accurate",
        },
    ).json()
    assert models["act"]["open_cases"] == act["total"] == 11
    assert models["act"]["max_caseload"] == 10 and models["act"]["over_ratio"] == [
        "Practitioner/ann"
    ]
    assert models["intensive"]["open_cases"] == 3 and models["intensive"]["over_ratio"] == []
    assert models["unspecified"]["open_cases"] == 1

    # Turnaround, recomputed from each Task's history.
    tasks = root.get("/fhir/Task", params={"_count": "100"}).json()["entry"]
    expected: dict[str, dict[str, list[float]]] = {}
    for entry in tasks:
        t = entry["resource"]
        history = root.get(f"/fhir/Task/{t['id']}/_history").json()["entry"]
        versions = [e["resource"] for e in reversed(history)]
        times = expected.setdefault(t["owner"]["reference"], {"accept": [], "complete": []})
        start = versions[0]["authoredOn"]
        accepted = [v for v in versions if v["status"] in ("accepted", "in-progress", "completed")]
        completed = [v for v in versions if v["status"] == "completed"]
        if accepted:
            times["accept"].append(days(start, accepted[0]["lastModified"]))
        if completed:
            times["complete"].append(days(start, completed[0]["lastModified"]))
    rows = {r["agency"]: r for r in report["referral_turnaround"]}
    for agency, values in expected.items():
        row = rows[agency]
        assert row["median_days_to_accept"] == (
            statistics.median(values["accept"]) if values["accept"] else None
        )
        assert row["median_days_to_complete"] == (
            statistics.median(values["complete"]) if values["complete"] else None
        )
    assert rows["Organization/a"]["median_days_to_accept"] == 3.0
    assert rows["Organization/a"]["median_days_to_complete"] == 7.0
    assert rows["Organization/b"]["referrals"] == 3

    # Goal attainment, by search.
    achieved = root.get(
        "/fhir/Goal", params={"achievement-status": "achieved", "_total": "accurate"}
    ).json()["total"]
    completed_goals = root.get(
        "/fhir/Goal",
        params={
            "lifecycle-status": "completed",
            "achievement-status:not": "achieved",
            "_total": "accurate",
        },
    ).json()["total"]
    all_goals = root.get("/fhir/Goal", params={"_total": "accurate"}).json()["total"]
    goals = report["goal_attainment"]
    assert (goals["goals"], goals["attained"]) == (all_goals, achieved + completed_goals) == (4, 2)
    assert goals["rate"] == 0.5

    # Overdue referrals: open Tasks past their due date, or requested 14+ days ago.
    now = EPOCH
    open_tasks = root.get("/fhir/Task", params={"status:not": "completed", "_count": "100"}).json()[
        "entry"
    ]
    late = set()
    for entry in open_tasks:
        t = entry["resource"]
        end = t.get("restriction", {}).get("period", {}).get("end")
        past_due = bool(end) and datetime.fromisoformat(end).replace(tzinfo=UTC) < now
        waiting = t["status"] == "requested" and days(t["authoredOn"], now.isoformat()) > 14
        if past_due or (not end and waiting):
            late.add(f"Task/{t['id']}")
    overdue = {r["task"] for r in report["overdue_referrals"]}
    assert overdue == late == {f"Task/{b1['id']}", f"Task/{b2['id']}"}

    # The same numbers as CSV.
    response = root.get("/reports/caseload", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    cell = {(r["section"], r["subject"], r["measure"]): r["value"] for r in table}
    assert cell[("case_manager", "Practitioner/ann", "open_cases")] == "11"
    assert cell[("model", "act", "over_ratio")] == "Practitioner/ann"
    assert cell[("referral_turnaround", "Organization/a", "median_days_to_accept")] == "3.0"
    assert cell[("goal_attainment", "all", "rate")] == "0.5"
    assert root.get("/reports/caseload", headers={"Accept": "text/csv"}).text == response.text
    assert root.get("/reports/caseload", params={"format": "xml"}).status_code == 400
