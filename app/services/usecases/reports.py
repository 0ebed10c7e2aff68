"""GET /reports/caseload: caseloads against the models' ratios, referral turnaround per
receiving agency, goal attainment, overdue referrals, plan reviews and goals, from FHIR
searches and Task history.

Definitions (each number can be recomputed with FHIR searches):
- an open case is an EpisodeOfCare with status active; its model is the EpisodeOfCare.type
  coding of the project's case-management-model CodeSystem ("unspecified" without one), and
  the model's ratio is that CodeSystem's max-caseload property (open cases per case manager);
  a model's pace: open cases past its max-case-days, and cases whose last contact (from
  the progress notes) is older than its contact-within-days (app/fhir/case_process.py);
- a referral is a Task (Gravity SDOH pattern) owned by the receiving agency: requested at
  Task.authoredOn, accepted at the first version whose status is accepted, in-progress or
  completed, completed at the first version whose status is completed; the moment of each
  version is its Task.lastModified, else its meta.lastUpdated. Medians are in days;
- a goal is attained when its achievementStatus is achieved or its lifecycleStatus completed;
- a plan review is overdue when a care plan in force is past its review date, a goal when
  it is still being worked on past its due date (app/fhir/case_process.py: the definitions
  of GET /cases and $check);
- a referral is overdue when its Task is not finished and its restriction.period.end has
  passed, or, with no due date, when it has waited more than ACCEPT_WITHIN_DAYS days still
  requested.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections import Counter, defaultdict
from typing import Any, Final

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.careplan_checks import caseload_limit
from app.fhir.case_process import (
    goal_due,
    goal_overdue,
    last_contacts,
    pace,
    review_due,
    review_overdue,
)
from app.fhir.jsonio import loads_stored
from app.security.caller import Caller
from app.services.uow import transaction
from app.services.usecases.search import SearchService
from app.storage.repository import Repository
from mappings.casework import case_of
from schemas.conformance import system

ACCEPT_WITHIN_DAYS: Final = 14
_FINISHED: Final = frozenset({"completed", "cancelled", "rejected", "failed", "entered-in-error"})
_ACCEPTED: Final = frozenset({"accepted", "in-progress", "completed"})
_MODEL_SYSTEM: Final = system("case-management-model")


def _moment(value: str | None) -> dt.datetime | None:
    """A FHIR date or dateTime as an aware datetime (dates at midnight UTC)."""
    if not value:
        return None
    if len(value) == 10:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _when(task: dict[str, Any]) -> dt.datetime | None:
    return _moment(task.get("lastModified")) or _moment((task.get("meta") or {}).get("lastUpdated"))


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return round((end - start).total_seconds() / 86400, 2)


def model_of_episode(episode: dict[str, Any]) -> str:
    """The case's model of practice, or "unspecified"."""
    for concept in episode.get("type", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == _MODEL_SYSTEM:
                return str(coding["code"])
    return "unspecified"


def turnaround(versions: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Days from requested to accepted and to completed, from a Task's versions (oldest
    first)."""
    if not versions:
        return None, None
    requested = _moment(versions[0].get("authoredOn")) or _when(versions[0])
    accepted = next((_when(v) for v in versions if v.get("status") in _ACCEPTED), None)
    completed = next((_when(v) for v in versions if v.get("status") == "completed"), None)
    if requested is None:
        return None, None
    return (
        _days(requested, accepted) if accepted else None,
        _days(requested, completed) if completed else None,
    )


class ReportService:
    """The caseload report."""

    def __init__(self, *, search: SearchService, clock: Clock, engine: Engine) -> None:
        self._search = search
        self._clock = clock
        self._engine = engine

    def _all(
        self, repo: Repository, caller: Caller, resource_type: str, params: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        return self._search.search_all(
            caller=caller, resource_type=resource_type, params=params, repo=repo
        )

    def caseload(self, *, caller: Caller) -> dict[str, Any]:
        """The report as JSON-ready data."""
        now = self._clock.now()
        with transaction(self._engine, write=False, snapshot=True) as repo:
            episodes = self._all(repo, caller, "EpisodeOfCare", [("status", "active")])
            tasks = self._all(repo, caller, "Task", [])
            goals = self._all(repo, caller, "Goal", [])
            plans = self._all(repo, caller, "CarePlan", [("status", "active,on-hold")])
            contacts = last_contacts(self._all(repo, caller, "DocumentReference", []))
            histories = {
                task["id"]: [
                    loads_stored(v.body)
                    for v in reversed(
                        repo.history(
                            resource_type="Task",
                            resource_id=task["id"],
                            since=None,
                            at=None,
                            after=None,
                            limit=1000,
                        )
                    )
                    if v.body is not None
                ]
                for task in tasks
            }
        return {
            "generated": now.isoformat(),
            "caseload": _caseload(episodes, contacts, now.date()),
            "referral_turnaround": _turnaround(tasks, histories),
            "goal_attainment": _goals(goals),
            "overdue_referrals": _overdue(tasks, now),
            "overdue_reviews": _late_reviews(plans, now.date()),
            "overdue_goals": _late_goals(goals, now.date()),
        }


def _caseload(
    episodes: list[dict[str, Any]], contacts: dict[str, dt.date], today: dt.date
) -> dict[str, Any]:
    per_manager: Counter[str] = Counter()
    per_model: dict[str, Counter[str]] = defaultdict(Counter)
    too_long: dict[str, list[str]] = defaultdict(list)
    out_of_touch: dict[str, list[str]] = defaultdict(list)
    for episode in episodes:
        manager = (episode.get("careManager") or {}).get("reference") or "unassigned"
        model = model_of_episode(episode)
        per_manager[manager] += 1
        per_model[model][manager] += 1
        reference = f"EpisodeOfCare/{episode.get('id')}"
        kept = pace(episode, model, contacts.get(str(episode.get("id"))), today)
        if kept.too_long:
            too_long[model].append(reference)
        if kept.out_of_touch:
            out_of_touch[model].append(reference)
    by_model = []
    for model, managers in sorted(per_model.items()):
        # A caseload is all of a case manager's open cases, whatever their model, against
        # the model's limit: the definition $check uses (app/fhir/careplan_checks.py).
        ratio = caseload_limit(model) if model != "unspecified" else None
        open_cases = sum(managers.values())
        by_model.append(
            {
                "model": model,
                "open_cases": open_cases,
                "case_managers": len(managers),
                "cases_per_case_manager": round(open_cases / len(managers), 2),
                "max_caseload": ratio,
                "over_ratio": sorted(m for m in managers if ratio and per_manager[m] > ratio),
                # The model's pace: cases open past its length, and without a contact
                # within its interval.
                "open_too_long": sorted(too_long[model]),
                "contact_overdue": sorted(out_of_touch[model]),
            }
        )
    return {
        "by_case_manager": [
            {"case_manager": manager, "open_cases": count}
            for manager, count in sorted(per_manager.items())
        ],
        "by_model": by_model,
    }


def _turnaround(
    tasks: list[dict[str, Any]], histories: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    accepted: dict[str, list[float]] = defaultdict(list)
    completed: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for task in tasks:
        agency = (task.get("owner") or {}).get("reference") or "unassigned"
        counts[agency] += 1
        to_accept, to_complete = turnaround(histories.get(task["id"], []))
        if to_accept is not None:
            accepted[agency].append(to_accept)
        if to_complete is not None:
            completed[agency].append(to_complete)
    return [
        {
            "agency": agency,
            "referrals": counts[agency],
            "accepted": len(accepted[agency]),
            "completed": len(completed[agency]),
            "median_days_to_accept": statistics.median(accepted[agency])
            if accepted[agency]
            else None,
            "median_days_to_complete": statistics.median(completed[agency])
            if completed[agency]
            else None,
        }
        for agency in sorted(counts)
    ]


def _attained(goal: dict[str, Any]) -> bool:
    codes = {c.get("code") for c in (goal.get("achievementStatus") or {}).get("coding", [])}
    return "achieved" in codes or goal.get("lifecycleStatus") == "completed"


def _goals(goals: list[dict[str, Any]]) -> dict[str, Any]:
    by_status: Counter[str] = Counter()
    for goal in goals:
        codes = [c.get("code") for c in (goal.get("achievementStatus") or {}).get("coding", [])]
        by_status[str(codes[0]) if codes else "not-recorded"] += 1
    attained = sum(1 for g in goals if _attained(g))
    return {
        "goals": len(goals),
        "attained": attained,
        "rate": round(attained / len(goals), 4) if goals else None,
        "by_achievement_status": dict(sorted(by_status.items())),
    }


def _case_reference(resource: dict[str, Any]) -> str | None:
    case_id = case_of(resource)
    return f"EpisodeOfCare/{case_id}" if case_id else None


def _late_reviews(plans: list[dict[str, Any]], today: dt.date) -> list[dict[str, Any]]:
    """Care plans in force past their review date, the latest first."""
    found = []
    for plan in plans:
        due = review_due(plan)
        if due is not None and review_overdue(plan, today):
            found.append(
                {
                    "care_plan": f"CarePlan/{plan.get('id')}",
                    "case": _case_reference(plan),
                    "review_due": due.isoformat(),
                    "days_overdue": (today - due).days,
                }
            )
    return sorted(found, key=lambda r: (-r["days_overdue"], r["care_plan"]))


def _late_goals(goals: list[dict[str, Any]], today: dt.date) -> list[dict[str, Any]]:
    """Goals still being worked on past their due date, the latest first."""
    found = []
    for goal in goals:
        due = goal_due(goal)
        if due is not None and goal_overdue(goal, today):
            found.append(
                {
                    "goal": f"Goal/{goal.get('id')}",
                    "case": _case_reference(goal),
                    "due": due,
                    "days_overdue": (today - dt.date.fromisoformat(due)).days,
                }
            )
    return sorted(found, key=lambda r: (-r["days_overdue"], r["goal"]))


def _overdue(tasks: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    found = []
    for task in tasks:
        if task.get("status") in _FINISHED:
            continue
        due = _moment(((task.get("restriction") or {}).get("period") or {}).get("end"))
        requested = _moment(task.get("authoredOn"))
        if due is not None:
            late = due < now
            days = _days(due, now)
        elif requested is not None and task.get("status") == "requested":
            limit = requested + dt.timedelta(days=ACCEPT_WITHIN_DAYS)
            late = limit < now
            days = _days(limit, now)
        else:
            continue
        if late:
            found.append(
                {
                    "task": f"Task/{task['id']}",
                    "agency": (task.get("owner") or {}).get("reference"),
                    "status": task.get("status"),
                    "due": due.date().isoformat() if due else None,
                    "days_overdue": days,
                }
            )
    return sorted(found, key=lambda r: (-r["days_overdue"], r["task"]))


def caseload_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one row per number (section, subject, measure, value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "subject", "measure", "value"])
    for row in report["caseload"]["by_case_manager"]:
        writer.writerow(["case_manager", row["case_manager"], "open_cases", row["open_cases"]])
    for row in report["caseload"]["by_model"]:
        for measure in ("open_cases", "case_managers", "cases_per_case_manager", "max_caseload"):
            writer.writerow(["model", row["model"], measure, _cell(row[measure])])
        writer.writerow(["model", row["model"], "over_ratio", " ".join(row["over_ratio"])])
        for measure in ("open_too_long", "contact_overdue"):
            writer.writerow(["model", row["model"], measure, " ".join(row[measure])])
    for row in report["referral_turnaround"]:
        for measure in (
            "referrals",
            "accepted",
            "completed",
            "median_days_to_accept",
            "median_days_to_complete",
        ):
            writer.writerow(["referral_turnaround", row["agency"], measure, _cell(row[measure])])
    goals = report["goal_attainment"]
    for measure in ("goals", "attained", "rate"):
        writer.writerow(["goal_attainment", "all", measure, _cell(goals[measure])])
    for status, count in goals["by_achievement_status"].items():
        writer.writerow(["goal_attainment", status, "goals", count])
    for row in report["overdue_reviews"]:
        writer.writerow(["overdue_review", row["care_plan"], "days_overdue", row["days_overdue"]])
    for row in report["overdue_goals"]:
        writer.writerow(["overdue_goal", row["goal"], "days_overdue", row["days_overdue"]])
    for row in report["overdue_referrals"]:
        writer.writerow(["overdue_referral", row["task"], "days_overdue", row["days_overdue"]])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


__all__ = ["ACCEPT_WITHIN_DAYS", "ReportService", "caseload_csv", "turnaround"]
