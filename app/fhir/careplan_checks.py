"""What a care plan lacks: pure rules over FHIR JSON, reported as OperationOutcome issues.

Warnings, not rejections (a plan may be saved incomplete). The rules follow the practice
the project serves (docs of issue 7, /work/shared/docs/DOMAIN.md):
- the plan is a contract: each action (CarePlan.activity.detail) states what (code), how
  (description) and where (location), the timeframe (scheduled[x]) and who is involved with
  what responsibility (performer, each with the project's responsibility extension);
- goals are SMART: Specific (a description of at least four words), Measurable
  (target.measure and a target.detail[x]), Achievable (agreed with the client, expressedBy,
  or a recorded reason it can be reached), Relevant (addresses a need or condition),
  Time-bound (target.dueDate or dueDuration);
- models of practice (CarePlan.category or the case's EpisodeOfCare.type, CodeSystem
  case-management-model): brokerage plans at most two sessions; strengths-based goals are
  expressed by the client and strengths (and informal supports) are recorded and referenced;
  clinical plans include therapy or counselling (an action of a counselling, telephone
  counselling or rehabilitation service type);
  ACT and wraparound need a care team of two or more disciplines; ICM, ACT and wraparound
  case managers hold no more open cases than the model's max-caseload; CTI plans have a
  period with both ends and phases;
- a referral carrying security-labelled data needs an active Consent naming the receiving
  agency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from app.fhir.errors import Issue
from mappings.casework import ACT_CODE, EXT, is_strength
from schemas.conformance import concept_property, system

_MODEL_SYSTEM: Final = system("case-management-model")
_SPECIFIC_WORDS: Final = 4
_RATIO_MODELS: Final = frozenset({"intensive", "act", "wraparound"})
_TEAM_MODELS: Final = frozenset({"act", "wraparound"})
_THERAPY: Final = frozenset({"counselling", "telephone-counselling", "rehabilitation"})


@dataclass(frozen=True, slots=True)
class PlanContext:
    """A care plan and the records its rules look at (gathered by the service)."""

    plan: dict[str, Any]
    # The Goals the plan references, by "Goal/id".
    goals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The supportingInfo resources the plan references that exist, by "Type/id".
    supporting: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The case the plan belongs to, if any, and the CareTeams of plan and case.
    episode: dict[str, Any] | None = None
    care_teams: Sequence[dict[str, Any]] = ()
    # Open cases held by the case's care manager (None: not measurable).
    caseload: int | None = None
    # The client's referrals (ServiceRequests) and Consents.
    referrals: Sequence[dict[str, Any]] = ()
    consents: Sequence[dict[str, Any]] = ()
    today: dt.date | None = None


def model_of(plan: dict[str, Any], episode: dict[str, Any] | None = None) -> str | None:
    """The model of practice: the plan's category, else the case's type."""
    for concepts in (plan.get("category"), (episode or {}).get("type")):
        for concept in concepts or []:
            for coding in concept.get("coding", []):
                if coding.get("system") == _MODEL_SYSTEM:
                    return str(coding["code"])
    return None


def _warn(message: str, where: str, code: str = "business-rule") -> Issue:
    return Issue(code, message, "warning", (where,))


# -- actions -----------------------------------------------------------------------------------
def check_actions(plan: dict[str, Any]) -> list[Issue]:
    """Each action states how, where, when and who is responsible for what."""
    issues = []
    for index, activity in enumerate(plan.get("activity", [])):
        detail = activity.get("detail")
        where = f"CarePlan.activity[{index}].detail"
        if detail is None:
            continue
        what = (detail.get("code") or {}).get("text") or f"action {index + 1}"
        if not detail.get("description"):
            issues.append(_warn(f"Action {what!r} does not say how it will be done", where))
        if not detail.get("location"):
            issues.append(_warn(f"Action {what!r} does not say where it takes place", where))
        if not any(k in detail for k in ("scheduledPeriod", "scheduledTiming", "scheduledString")):
            issues.append(_warn(f"Action {what!r} has no timeframe", where))
        performers = detail.get("performer", [])
        if not performers:
            issues.append(_warn(f"Action {what!r} names nobody responsible", where))
        for number, performer in enumerate(performers):
            has = any(
                e.get("url") == EXT["responsibility"] and e.get("valueString")
                for e in performer.get("extension", [])
            )
            if not has:
                who = performer.get("display") or performer.get("reference") or "a performer"
                issues.append(
                    _warn(
                        f"Action {what!r}: {who} is involved but their responsibility is not "
                        "stated",
                        f"{where}.performer[{number}]",
                    )
                )
    return issues


# -- SMART goals -------------------------------------------------------------------------------
def smart_failures(goal: dict[str, Any]) -> dict[str, str]:
    """The SMART letters a Goal fails, each with the reason."""
    failures = {}
    text = (goal.get("description") or {}).get("text") or ""
    if len(text.split()) < _SPECIFIC_WORDS:
        failures["S"] = (
            f"specific: the description {text!r} is too short to say what will change "
            f"(at least {_SPECIFIC_WORDS} words)"
        )
    targets = goal.get("target", [])
    if not any(t.get("measure") and any(k.startswith("detail") for k in t) for t in targets):
        failures["M"] = "measurable: no target measure with a target value (Goal.target)"
    achievable = any(e.get("url") == EXT["achievable"] for e in goal.get("extension", [])) or bool(
        goal.get("expressedBy")
    )
    if not achievable:
        failures["A"] = (
            "achievable: not agreed with the client (expressedBy) and no reason it can be "
            "reached is recorded"
        )
    if not goal.get("addresses"):
        failures["R"] = "relevant: linked to no need or condition (Goal.addresses)"
    if not any("dueDate" in t or "dueDuration" in t for t in targets):
        failures["T"] = "time-bound: no due date (Goal.target.dueDate)"
    return failures


def check_goals(goals: dict[str, dict[str, Any]]) -> list[Issue]:
    """One warning per SMART letter a goal fails."""
    issues = []
    for reference, goal in goals.items():
        name = (goal.get("description") or {}).get("text") or reference
        for letter, reason in smart_failures(goal).items():
            issues.append(
                _warn(f"Goal {name!r} ({reference}) is not SMART: {letter} ({reason})", reference)
            )
    return issues


# -- models of practice ------------------------------------------------------------------------
def _planned_sessions(plan: dict[str, Any]) -> int:
    total = 0
    for activity in plan.get("activity", []):
        for extension in (activity.get("detail") or {}).get("extension", []):
            if extension.get("url") == EXT["sessions"]:
                total += int(extension.get("valueInteger", 0))
    return total


def _disciplines(teams: Sequence[dict[str, Any]]) -> set[str]:
    found = set()
    for team in teams:
        for participant in team.get("participant", []):
            for role in participant.get("role", []):
                label = role.get("text") or next(
                    (c.get("code") for c in role.get("coding", [])), None
                )
                if label:
                    found.add(str(label).strip().lower())
    return found


def check_model(context: PlanContext) -> list[Issue]:
    """The rules of the plan's model of practice."""
    plan = context.plan
    model = model_of(plan, context.episode)
    if model is None:
        return [
            Issue(
                "informational",
                "The plan names no model of practice (CarePlan.category from "
                f"{_MODEL_SYSTEM}); model rules were not checked",
                "information",
                ("CarePlan.category",),
            )
        ]
    issues = []
    if model == "brokerage":
        limit = int(concept_property("case-management-model", "brokerage", "max-sessions"))
        sessions = _planned_sessions(plan)
        if sessions > limit:
            issues.append(
                _warn(
                    f"Brokerage plans one or two sessions; this plan plans {sessions}",
                    "CarePlan.activity",
                )
            )
    if model == "strengths-based":
        subject = (plan.get("subject") or {}).get("reference")
        for reference, goal in context.goals.items():
            expressed = (goal.get("expressedBy") or {}).get("reference")
            if expressed is None or expressed != subject:
                issues.append(
                    _warn(
                        f"Strengths-based plan: goal {reference} was not expressed by the client "
                        "(Goal.expressedBy is not the client)",
                        reference,
                    )
                )
        if not any(is_strength(r) for r in context.supporting.values()):
            issues.append(
                _warn(
                    "Strengths-based plan: no strengths of the client are recorded and "
                    "referenced (CarePlan.supportingInfo)",
                    "CarePlan.supportingInfo",
                )
            )
        if not any(r.startswith("RelatedPerson/") for r in context.supporting):
            issues.append(
                Issue(
                    "informational",
                    "Strengths-based plan: no informal supports are referenced",
                    "information",
                    ("CarePlan.supportingInfo",),
                )
            )
    if model == "clinical":
        services = {
            coding.get("code")
            for activity in plan.get("activity", [])
            for coding in ((activity.get("detail") or {}).get("code") or {}).get("coding", [])
            if coding.get("system") == system("aod-service-type")
        }
        if not services & _THERAPY:
            issues.append(
                _warn(
                    "Clinical case management provides therapy or counselling alongside "
                    "coordination: no action of a counselling, telephone counselling or "
                    "rehabilitation service type is planned",
                    "CarePlan.activity",
                )
            )
    if model in _TEAM_MODELS:
        disciplines = _disciplines(context.care_teams)
        if len(disciplines) < 2:
            issues.append(
                _warn(
                    f"{model.upper() if model == 'act' else 'Wraparound'} needs a "
                    "multidisciplinary care team (two or more disciplines); the team has "
                    f"{len(disciplines)}",
                    "CarePlan.careTeam",
                )
            )
    if model in _RATIO_MODELS and context.caseload is not None:
        limit = int(concept_property("case-management-model", model, "max-caseload"))
        if context.caseload > limit:
            issues.append(
                _warn(
                    f"The care manager holds {context.caseload} open cases; the {model} model "
                    f"allows at most {limit} per case manager",
                    "EpisodeOfCare.careManager",
                )
            )
    if model == "cti":
        period = plan.get("period") or {}
        if not (period.get("start") and period.get("end")):
            issues.append(
                _warn(
                    "Critical time intervention is time-limited: the plan needs a period with "
                    "a start and an end",
                    "CarePlan.period",
                )
            )
        if not any(e.get("url") == EXT["phase"] for e in plan.get("extension", [])):
            issues.append(
                _warn(
                    "Critical time intervention works in phases: the plan records none",
                    "CarePlan.extension",
                )
            )
    return issues


# -- consent for labelled referrals ------------------------------------------------------------
def _consent_permits(consent: dict[str, Any], agency: str, today: dt.date | None) -> bool:
    if consent.get("status") != "active":
        return False
    provision = consent.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        return False
    period = provision.get("period") or {}
    if today is not None:
        end = period.get("end")
        if end and dt.date.fromisoformat(end[:10]) < today:
            return False
    return any(
        (actor.get("reference") or {}).get("reference") == agency
        for actor in provision.get("actor", [])
    )


def check_consent(context: PlanContext) -> list[Issue]:
    """A referral labelled sensitive (meta.security) needs an active Consent naming the
    agency it goes to (DS4P; 42 CFR Part 2 style disclosure rules)."""
    issues = []
    for referral in context.referrals:
        labels = (referral.get("meta") or {}).get("security", [])
        if not labels:
            continue
        if referral.get("status") in ("revoked", "completed", "entered-in-error"):
            continue
        for performer in referral.get("performer", []) or [{}]:
            agency = performer.get("reference")
            if agency and any(_consent_permits(c, agency, context.today) for c in context.consents):
                continue
            sensitive = any(label.get("system") == ACT_CODE for label in labels)
            issues.append(
                _warn(
                    f"Referral ServiceRequest/{referral.get('id')} to {agency or 'an agency'} "
                    f"carries {'substance-use ' if sensitive else ''}labelled data but no "
                    "active Consent of the client permits disclosure to it",
                    f"ServiceRequest/{referral.get('id')}",
                    "security",
                )
            )
    return issues


def check_plan(context: PlanContext) -> list[Issue]:
    """Every rule over one care plan, in reading order: actions, goals, model, consent."""
    return (
        check_actions(context.plan)
        + check_goals(context.goals)
        + check_model(context)
        + check_consent(context)
    )


def outcome(issues: list[Issue], subject: str) -> dict[str, Any]:
    """The OperationOutcome of a check; "nothing found" as information when all is well."""
    if not issues:
        issues = [Issue("informational", f"{subject}: no problems found", "information")]
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


__all__ = [
    "PlanContext",
    "check_actions",
    "check_consent",
    "check_goals",
    "check_model",
    "check_plan",
    "model_of",
    "outcome",
    "smart_failures",
]
