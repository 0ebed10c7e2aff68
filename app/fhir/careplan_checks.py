"""What a care plan lacks: pure rules over FHIR JSON, reported as OperationOutcome issues.

Warnings, not rejections (a plan may be saved incomplete). The rules follow the practice
the project serves (docs of issue 7, /work/shared/docs/DOMAIN.md):
- the plan is a contract: each action (CarePlan.activity.detail) states what (code), how
  (description) and where (location), the timeframe (scheduled[x]) and who is involved with
  what responsibility (performer, each with the project's responsibility extension);
- a plan has goals and actions: an empty one is a plan in name only;
- goals are SMART: Specific (a description of at least four words, two of them naming
  what will change rather than vague aims like "be a better person overall"), Measurable
  (target.measure naming something that can be counted or observed, not "feelings", and
  a target value), Achievable (agreed with
  the client, expressedBy, or a recorded reason it can be reached), Relevant (addresses a
  need or condition), Time-bound (target.dueDate or dueDuration); a goal still being
  worked on whose due date has passed is overdue for review;
- an action's timeframe does not end before it starts;
- models of practice (CarePlan.category or the case's EpisodeOfCare.type, CodeSystem
  case-management-model): brokerage plans at most two sessions; strengths-based goals are
  expressed by the client and strengths (and informal supports) are recorded and referenced;
  clinical plans include therapy or counselling (an action of a counselling, telephone
  counselling or rehabilitation service type);
  ACT and wraparound need a care team of two or more disciplines; case managers hold no
  more open cases than the model's max-caseload (one definition of
  a caseload, `caseload_limit`, for the checks and the caseload report); CTI plans have a
  period with both ends, phases that lie within it and a review date; brokerage (brief,
  link and close) and CTI cases close within the model's max-case-days; intensive case
  management and ACT meet the client at least every contact-within-days days (from the
  case's progress notes; a did-not-attend is no contact);
- a referral carrying security-labelled data needs an active Consent naming the receiving
  agency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from app.fhir.case_process import goal_due, goal_overdue, pace, review_due
from app.fhir.errors import Issue
from mappings.casework import ACT_CODE, ACT_REASON, CONSENT_USES, EXT, is_strength
from schemas.conformance import concept_property, system

_MODEL_SYSTEM: Final = system("case-management-model")
_SPECIFIC_WORDS: Final = 4
# Words that say nothing about what will change: a description made only of these (and
# small words) is not specific, however long.
_VAGUE_WORDS: Final = frozenset(
    (
        "a",
        "an",
        "the",
        "be",
        "to",
        "of",
        "and",
        "or",
        "for",
        "in",
        "on",
        "at",
        "with",
        "more",
        "less",
        "better",
        "best",
        "good",
        "well",
        "overall",
        "generally",
        "general",
        "person",
        "people",
        "life",
        "things",
        "stuff",
        "feel",
        "feeling",
        "feelings",
        "happier",
        "happy",
        "improve",
        "improved",
        "improvement",
        "get",
        "become",
        "make",
        "do",
        "my",
        "their",
        "his",
        "her",
        "them",
        "they",
        "it",
    )
)
_CONTENT_WORDS: Final = 2
# Goals still being worked on (Goal.lifecycleStatus).
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
    # The latest attended contact with the client the case's notes record.
    last_contact: dt.date | None = None


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
        period = detail.get("scheduledPeriod") or {}
        if _ends_before_start(period):
            issues.append(
                _warn(f"Action {what!r} ends before it starts", f"{where}.scheduledPeriod")
            )
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
    words = [w.strip(".,;:!?()\"'").lower() for w in text.split()]
    if len(words) < _SPECIFIC_WORDS:
        failures["S"] = (
            f"specific: the description {text!r} is too short to say what will change "
            f"(at least {_SPECIFIC_WORDS} words)"
        )
    elif len([w for w in words if w and w not in _VAGUE_WORDS]) < _CONTENT_WORDS:
        failures["S"] = (
            f"specific: the description {text!r} does not say what will change (name the "
            "behaviour, situation or service, e.g. 'keep a tenancy for six months')"
        )
    targets = goal.get("target", [])
    if not any(t.get("measure") and any(k.startswith("detail") for k in t) for t in targets):
        failures["M"] = "measurable: no target measure with a target value (Goal.target)"
    elif not any(_names_a_measure(t.get("measure")) for t in targets):
        measure = ((targets[0].get("measure") or {}).get("text")) if targets else None
        failures["M"] = (
            f"measurable: the measure {measure!r} does not name anything that can be counted "
            "or observed (e.g. 'nights in own tenancy', 'K10 score', 'standard drinks a day')"
        )
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


def _names_a_measure(measure: Any) -> bool:
    """A coded measure, or one whose text names something beyond vague words."""
    if not isinstance(measure, dict):
        return False
    if measure.get("coding"):
        return True
    words = [w.strip(".,;:!?()\"'").lower() for w in str(measure.get("text") or "").split()]
    return any(w and w not in _VAGUE_WORDS for w in words)


def check_goals(goals: dict[str, dict[str, Any]], today: dt.date | None = None) -> list[Issue]:
    """One warning per SMART letter a goal fails; one for a goal still being worked on
    whose due date has passed."""
    issues = []
    for reference, goal in goals.items():
        name = (goal.get("description") or {}).get("text") or reference
        for letter, reason in smart_failures(goal).items():
            issues.append(
                _warn(f"Goal {name!r} ({reference}) is not SMART: {letter} ({reason})", reference)
            )
        if today is not None and goal_overdue(goal, today):
            issues.append(
                _warn(
                    f"Goal {name!r} ({reference}) was due on {goal_due(goal)} and is still "
                    f"{goal.get('lifecycleStatus')}: review it (achieved, changed or a new date)",
                    reference,
                )
            )
    return issues


def _ends_before_start(period: dict[str, Any]) -> bool:
    start, end = period.get("start"), period.get("end")
    return isinstance(start, str) and isinstance(end, str) and end[:10] < start[:10]


def _phases(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, period) of each CTI phase the plan records."""
    found = []
    for extension in plan.get("extension", []):
        if extension.get("url") != EXT["phase"]:
            continue
        parts = {e.get("url"): e for e in extension.get("extension", [])}
        name = str((parts.get("name") or {}).get("valueString") or "a phase")
        found.append((name, (parts.get("period") or {}).get("valuePeriod") or {}))
    return found


def caseload_limit(model: str) -> int | None:
    """The most open cases a case manager of this model holds (its max-caseload), if the
    model sets one. A caseload is a case manager's open cases (active EpisodeOfCare whose
    careManager they are), of every model: one definition for $check and the reports."""
    most = concept_property("case-management-model", model, "max-caseload")
    return None if most is None else int(most)


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
    most = caseload_limit(model)
    if most is not None and context.caseload is not None and context.caseload > most:
        issues.append(
            _warn(
                f"The care manager holds {context.caseload} open cases; the {model} model "
                f"allows at most {most} per case manager",
                "EpisodeOfCare.careManager",
            )
        )
    issues += _model_pace(context, model)
    if model == "cti":
        if review_due(plan) is None:
            issues.append(
                _warn(
                    "Critical time intervention works with review points: the plan has no "
                    "review date (review_due; the care-plan-review-due extension)",
                    "CarePlan.extension",
                )
            )
        period = plan.get("period") or {}
        if not (period.get("start") and period.get("end")):
            issues.append(
                _warn(
                    "Critical time intervention is time-limited: the plan needs a period with "
                    "a start and an end",
                    "CarePlan.period",
                )
            )
        phases = _phases(plan)
        if not phases:
            issues.append(
                _warn(
                    "Critical time intervention works in phases: the plan records none",
                    "CarePlan.extension",
                )
            )
        for name, phase in phases:
            if _ends_before_start(phase):
                issues.append(
                    _warn(f"CTI phase {name!r} ends before it starts", "CarePlan.extension")
                )
            outside = []
            first, last = phase.get("start"), phase.get("end")
            if isinstance(first, str) and period.get("start") and first[:10] < period["start"][:10]:
                outside.append(f"start {first}")
            if isinstance(last, str) and period.get("end") and last[:10] > period["end"][:10]:
                outside.append(f"end {last}")
            if outside:
                issues.append(
                    _warn(
                        f"CTI phase {name!r} lies outside the plan's period "
                        f"({period.get('start')} to {period.get('end')}): {', '.join(outside)}",
                        "CarePlan.extension",
                    )
                )
    return issues


def _model_pace(context: PlanContext, model: str) -> list[Issue]:
    """How long the model keeps a case open and how often it meets the client
    (CodeSystem case-management-model: max-case-days, contact-within-days)."""
    episode, today = context.episode, context.today
    if episode is None or today is None:
        return []
    issues = []
    kept = pace(episode, model, context.last_contact, today)
    if kept.too_long and kept.opened:
        issues.append(
            _warn(
                f"The {model} model keeps a case open at most {kept.longest} days (brokerage: "
                f"brief, link and close; CTI: time-limited); this case opened {kept.opened} "
                f"({(today - kept.opened).days} days ago): close it or change the model",
                "EpisodeOfCare.period",
            )
        )
    if kept.out_of_touch and kept.since:
        seen = (
            f"the last contact recorded was on {context.last_contact}"
            if context.last_contact
            else f"no contact is recorded since the case opened on {kept.opened}"
        )
        issues.append(
            _warn(
                f"The {model} model meets the client at least every {kept.every} days; "
                f"{seen} ({(today - kept.since).days} days ago)",
                "DocumentReference",
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
    # Labelled records are released only for care (the access rule's purposes of use): a
    # consent without one leaves the receiving agency an empty inbox.
    purposes = {(p.get("system"), p.get("code")) for p in provision.get("purpose") or []}
    if not any((ACT_REASON, code) in purposes for code in CONSENT_USES.values()):
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
                    "active Consent of the client permits disclosure to it for care "
                    "(coordination, management or treatment): the agency cannot see it",
                    f"ServiceRequest/{referral.get('id')}",
                    "security",
                )
            )
    return issues


def check_contents(plan: dict[str, Any]) -> list[Issue]:
    """A plan says what the client works towards (goals) and what will be done (actions)."""
    issues = []
    if not plan.get("goal"):
        issues.append(
            _warn("The plan has no goals: what is the client working towards?", "CarePlan.goal")
        )
    if not plan.get("activity"):
        issues.append(
            _warn("The plan has no actions: nothing says what will be done", "CarePlan.activity")
        )
    return issues


def check_plan(context: PlanContext) -> list[Issue]:
    """Every rule over one care plan, in reading order: contents, actions, goals, model,
    consent."""
    return (
        check_contents(context.plan)
        + check_actions(context.plan)
        + check_goals(context.goals, context.today)
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
    "caseload_limit",
    "check_actions",
    "check_consent",
    "check_contents",
    "check_goals",
    "check_model",
    "check_plan",
    "model_of",
    "outcome",
    "smart_failures",
]
