"""The case-management process, enforced lightly: pure rules over EpisodeOfCare JSON.

A case moves engagement -> assessment -> planning -> implementation -> monitoring ->
evaluation -> closure (CodeSystem case-stage, the EpisodeOfCare's case-stage extension).
Going back is allowed (a plan that fails is re-assessed); moving on past a stage is allowed
with a warning naming what was skipped. Closing a case (stage closure, or status finished or
cancelled) needs a closure reason and a summary (the case-closure-reason and
case-closure-summary extensions): the one refusal here, so a closed case always says why.

Only cases carry the stage extension: an EpisodeOfCare an EHR writes without it is not run
through the process (the EHR has its own).

Also here, what is overdue in a case: a care plan past its review date (the
care-plan-review-due extension) and a goal still being worked on past its due date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from app.fhir.errors import Issue, ResourceInvalid
from mappings.casework import EXT, case_of, contact_of
from schemas.conformance import codes, concept_property, system

STAGES: Final = codes("case-stage")
CLOSED_STATUSES: Final = frozenset({"finished", "cancelled"})
# Care plans still in force: a case closing with one of these is warned.
OPEN_PLAN_STATUSES: Final = frozenset({"draft", "active", "on-hold"})
# A goal in these lifecycle states is still being worked on.
GOAL_WORKING: Final = frozenset({"proposed", "planned", "accepted", "active", "on-hold"})
_STAGE_SYSTEM: Final = system("case-stage")
_REASON_SYSTEM: Final = system("case-closure-reason")


def _extension(resource: dict[str, Any], key: str) -> dict[str, Any] | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == EXT[key]:
            return extension
    return None


def stage_of(episode: dict[str, Any] | None) -> str | None:
    """The case's stage, None for an EpisodeOfCare that is not a case (no stage)."""
    if episode is None:
        return None
    extension = _extension(episode, "stage")
    coding = (extension or {}).get("valueCoding") or {}
    code = coding.get("code")
    if coding.get("system") == _STAGE_SYSTEM and code in STAGES:
        return str(code)
    return None


def is_closed(episode: dict[str, Any]) -> bool:
    """A case is closed at stage closure or with status finished or cancelled."""
    return stage_of(episode) == "closure" or episode.get("status") in CLOSED_STATUSES


def closure_of(episode: dict[str, Any]) -> tuple[str | None, str | None]:
    """The closure reason code and summary, each None when not recorded."""
    reason = _extension(episode, "closure-reason")
    codings = ((reason or {}).get("valueCodeableConcept") or {}).get("coding") or []
    code = next(
        (
            c.get("code")
            for c in codings
            if isinstance(c, dict) and c.get("system") == _REASON_SYSTEM
        ),
        None,
    )
    summary = (_extension(episode, "closure-summary") or {}).get("valueString")
    text = summary.strip() if isinstance(summary, str) else ""
    return (str(code) if code else None), (text or None)


def check_stage_change(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[list[Issue], bool]:
    """The warnings a change of a case's stage earns, and whether it closes the case.
    Raises ResourceInvalid (422) for a closing without a reason and a summary."""
    stage = stage_of(new)
    if stage is None:
        return [], False
    warnings: list[Issue] = []
    before = stage_of(old)
    if before is not None and STAGES.index(stage) > STAGES.index(before) + 1:
        skipped = STAGES[STAGES.index(before) + 1 : STAGES.index(stage)]
        warnings.append(
            Issue(
                "business-rule",
                f"The case moved from {before} to {stage}, skipping {', '.join(skipped)}",
                "warning",
                ("EpisodeOfCare.extension",),
            )
        )
    closing = is_closed(new) and (old is None or not is_closed(old))
    if is_closed(new):
        reason, summary = closure_of(new)
        missing = [
            name
            for name, value in (("a closure reason", reason), ("a closure summary", summary))
            if value is None
        ]
        if missing and (closing or closure_of(old or {}) != (reason, summary)):
            raise ResourceInvalid(
                f"Closing a case needs {' and '.join(missing)} (closure_reason and "
                f"closure_summary; in FHIR the extensions {EXT['closure-reason']} and "
                f"{EXT['closure-summary']})",
                expression=("EpisodeOfCare.extension",),
            )
        if stage != "closure":
            warnings.append(
                Issue(
                    "business-rule",
                    f"The case is {new.get('status')} but its stage is {stage}, not closure",
                    "warning",
                    ("EpisodeOfCare.extension",),
                )
            )
        elif new.get("status") not in CLOSED_STATUSES:
            warnings.append(
                Issue(
                    "business-rule",
                    f"The case is at closure but its status is still {new.get('status')}; "
                    "a closed case is finished (or cancelled)",
                    "warning",
                    ("EpisodeOfCare.status",),
                )
            )
    return warnings, closing


def open_items_warnings(plans: list[str], referrals: list[str]) -> list[Issue]:
    """Warnings for a case closing with plans or referrals still open."""
    found = []
    if plans:
        found.append(
            Issue(
                "business-rule",
                f"The case closed with care plans still open: {', '.join(sorted(plans))}",
                "warning",
                ("CarePlan.status",),
            )
        )
    if referrals:
        found.append(
            Issue(
                "business-rule",
                f"The case closed with referrals still open: {', '.join(sorted(referrals))}",
                "warning",
                ("Task.status",),
            )
        )
    return found


def review_due(plan: dict[str, Any]) -> dt.date | None:
    """The plan's next review date, if recorded."""
    value = (_extension(plan, "review") or {}).get("valueDate")
    try:
        return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def review_overdue(plan: dict[str, Any], today: dt.date) -> bool:
    """A plan in force whose review date has passed."""
    due = review_due(plan)
    return plan.get("status") in ("active", "on-hold") and due is not None and due < today


def goal_due(goal: dict[str, Any]) -> str | None:
    """The latest due date of a goal's targets (YYYY-MM-DD), if any."""
    due = [
        t["dueDate"][:10]
        for t in goal.get("target") or []
        if isinstance(t, dict) and isinstance(t.get("dueDate"), str)
    ]
    return max(due) if due else None


def goal_overdue(goal: dict[str, Any], today: dt.date) -> bool:
    """A goal still being worked on whose (latest) due date has passed: the one definition
    the plan checks, the caseload and the case list share."""
    due = goal_due(goal)
    return (
        due is not None and goal.get("lifecycleStatus") in GOAL_WORKING and due < today.isoformat()
    )


@dataclass(frozen=True, slots=True)
class Pace:
    """An open case against its model's pace (CodeSystem case-management-model:
    max-case-days, contact-within-days)."""

    opened: dt.date | None
    # The model's longest case in days, and most days between contacts (None: no limit).
    longest: int | None
    every: int | None
    # The latest contact, else the day the case opened.
    since: dt.date | None
    too_long: bool
    out_of_touch: bool


def pace(
    episode: dict[str, Any], model: str | None, last_contact: dt.date | None, today: dt.date
) -> Pace:
    """How an open case keeps its model's pace: brokerage and CTI are time-limited, the
    intensive models meet the client often."""
    start = str((episode.get("period") or {}).get("start") or "")[:10]
    try:
        opened = dt.date.fromisoformat(start) if len(start) == 10 else None
    except ValueError:
        opened = None
    longest = every = None
    if model is not None and model in codes("case-management-model"):
        longest = concept_property("case-management-model", model, "max-case-days")
        every = concept_property("case-management-model", model, "contact-within-days")
    since = last_contact or opened
    open_case = not is_closed(episode)
    return Pace(
        opened,
        longest,
        every,
        since,
        open_case and bool(longest and opened and (today - opened).days > longest),
        open_case and bool(every and since and (today - since).days > every),
    )


def last_contacts(documents: Iterable[dict[str, Any]]) -> dict[str, dt.date]:
    """The latest attended contact per case (EpisodeOfCare id), from progress notes
    (DocumentReference with a contact type and no did-not-attend)."""
    latest: dict[str, dt.date] = {}
    for document in documents:
        case_id = case_of(document)
        contact, missed = contact_of(document)
        date = str(document.get("date") or "")[:10]
        if case_id is None or contact is None or missed or len(date) != 10:
            continue
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            continue
        if case_id not in latest or day > latest[case_id]:
            latest[case_id] = day
    return latest


__all__ = [
    "CLOSED_STATUSES",
    "GOAL_WORKING",
    "OPEN_PLAN_STATUSES",
    "STAGES",
    "Pace",
    "check_stage_change",
    "closure_of",
    "goal_due",
    "goal_overdue",
    "is_closed",
    "last_contacts",
    "open_items_warnings",
    "pace",
    "review_due",
    "review_overdue",
    "stage_of",
]
