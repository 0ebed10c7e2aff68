"""Referral Tasks: the rules of the Gravity SDOH Clinical Care referral pattern, pure.

A referral is a ServiceRequest (what is asked for) and a Task that asks another agency to
fulfil it: Task.code = task-code#fulfill, Task.focus = the ServiceRequest (SDOH CC IG,
SDOHCC Task For Referral Management, "Checking Task Status":
https://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition-SDOHCC-TaskForReferralManagement.html).
Other Tasks are not referrals and none of these rules apply to them.

Every function here is pure: the services resolve references (a PractitionerRole to its
organization) and pass the parties in. Each violated rule raises an error naming the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from app.fhir.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    Issue,
    PreconditionRequired,
    ResourceInvalid,
)

TASK_CODE_SYSTEM: Final = "http://hl7.org/fhir/CodeSystem/task-code"
FULFILL: Final = "fulfill"
# The project's own canonical URLs (extensions, tags, code systems).
CANONICAL: Final = "https://casebridge.org/fhir"
# meta.extension on every version of a referral Task: who wrote it (agency, client).
ACTOR_EXTENSION: Final = f"{CANONICAL}/StructureDefinition/referral-actor"
# A meta.tag added when a referral is shown overdue (never stored: see README, Referrals).
FLAG_SYSTEM: Final = f"{CANONICAL}/CodeSystem/referral-flag"
OVERDUE: Final = "overdue"
# Task.output types of a completed referral.
OUTPUT_SYSTEM: Final = f"{CANONICAL}/CodeSystem/referral-output"
GOAL_ACHIEVEMENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
GOAL_ACHIEVEMENT: Final = frozenset(
    {
        "in-progress",
        "improving",
        "worsening",
        "no-change",
        "achieved",
        "sustaining",
        "not-achieved",
        "no-progress",
        "not-attainable",
    }
)


class Party(StrEnum):
    """The sides of a referral a caller can act as."""

    REQUESTER = "requester"
    OWNER = "owner"
    # The unconfined local operator (auth off, no agency): acts for either side.
    OPERATOR = "operator"


# The state machine (issue 5; SDOH CC IG task status table without received and ready).
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "draft": frozenset({"requested", "entered-in-error"}),
    "requested": frozenset({"accepted", "rejected", "cancelled", "entered-in-error"}),
    "accepted": frozenset(
        {"in-progress", "on-hold", "completed", "failed", "cancelled", "entered-in-error"}
    ),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled", "entered-in-error"}),
    "on-hold": frozenset({"in-progress", "completed", "failed", "cancelled", "entered-in-error"}),
    "rejected": frozenset({"entered-in-error"}),
    "cancelled": frozenset({"entered-in-error"}),
    "completed": frozenset({"entered-in-error"}),
    "failed": frozenset({"entered-in-error"}),
    "entered-in-error": frozenset(),
}
INITIAL: Final = frozenset({"draft", "requested"})
# A closed referral changes no more (except being marked entered-in-error).
CLOSED: Final = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
UNUSED: Final = frozenset({"received", "ready"})
# Who may set each status.
SETTERS: Final[Mapping[str, frozenset[Party]]] = {
    "draft": frozenset({Party.REQUESTER}),
    "requested": frozenset({Party.REQUESTER}),
    "entered-in-error": frozenset({Party.REQUESTER}),
    "accepted": frozenset({Party.OWNER}),
    "rejected": frozenset({Party.OWNER}),
    "in-progress": frozenset({Party.OWNER}),
    "on-hold": frozenset({Party.OWNER}),
    "failed": frozenset({Party.OWNER}),
    "completed": frozenset({Party.OWNER}),
    "cancelled": frozenset({Party.REQUESTER, Party.OWNER}),
}
# SDOHCC TaskForReferralManagement: "If the Task.status is rejected, cancelled, on-hold, or
# failed, then Task.statusReason.text should be included" (a SHOULD: warned, not refused,
# on FHIR writes; the plain referral actions ask for the reason), and a statusReason given
# has text (statusReason.text 1..).
NEEDS_REASON: Final = frozenset({"rejected", "cancelled", "on-hold", "failed"})
# Open: work may still happen on the referral.
OPEN: Final = frozenset({"requested", "accepted", "in-progress", "on-hold"})
# Elements each side may change once the referral is sent (issue 5). statusReason goes with
# the requester's status changes too: its cancellation needs a reason.
MAY_CHANGE: Final[Mapping[Party, frozenset[str]]] = {
    Party.OWNER: frozenset({"status", "businessStatus", "statusReason", "output"}),
    Party.REQUESTER: frozenset({"status", "statusReason", "priority", "note", "input"}),
}
# What a write without If-Match may change (issue 18): published SDOHCC clients (the Gravity
# reference apps) PUT the whole Task and never send If-Match. The state machine guards such a
# write instead of the version: it must change the status to one this side may set from the
# current one, and touch nothing but the status and what goes with it, so that a body read
# before another change cannot silently undo that change.
UNCONDITIONAL: Final[Mapping[Party, frozenset[str]]] = {
    Party.OWNER: frozenset({"status", "statusReason", "businessStatus", "output"}),
    Party.REQUESTER: frozenset({"status", "statusReason"}),
}
# Never compared: server-stamped (meta, lastModified, authoredOn, executionPeriod) or
# derived (text). The server sets lastModified on every write, authoredOn when the
# referral is requested, executionPeriod.start when accepted and .end when it closes.
SERVER_OWNED: Final = frozenset({"lastModified", "authoredOn", "executionPeriod"})
_NOT_COMPARED: Final = frozenset({"id", "meta", "text"}) | SERVER_OWNED
# The ServiceRequest follows its Task (SDOH CC IG: completed when the Task completes,
# revoked when it ends without fulfilment; a new referral is a new ServiceRequest).
SERVICE_REQUEST_STATUS: Final[Mapping[str, str]] = {
    "draft": "draft",
    "requested": "active",
    "accepted": "active",
    "in-progress": "active",
    "on-hold": "active",
    "completed": "completed",
    "cancelled": "revoked",
    "rejected": "revoked",
    "failed": "revoked",
    "entered-in-error": "entered-in-error",
}


@dataclass(frozen=True, slots=True)
class Action:
    """A referral endpoint / FHIR operation: the status it sets and where it applies."""

    name: str
    status: str
    # None: wherever the state machine allows the status.
    only_from: frozenset[str] | None = None


ACTIONS: Final[Mapping[str, Action]] = {
    a.name: a
    for a in (
        Action("accept", "accepted"),
        Action("decline", "rejected"),
        Action("start", "in-progress", frozenset({"accepted"})),
        Action("hold", "on-hold"),
        Action("resume", "in-progress", frozenset({"on-hold"})),
        Action("complete", "completed"),
        Action("fail", "failed"),
        Action("cancel", "cancelled"),
    )
}


# -- what a referral is ----------------------------------------------------------------
def reference_of(value: Any) -> str | None:
    """Reference.reference of an element, if it holds one."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            return ref
    return None


def focus_service_request(task: Mapping[str, Any]) -> str | None:
    """ "ServiceRequest/{id}" when Task.focus names a ServiceRequest."""
    ref = reference_of(task.get("focus"))
    if ref is not None and ref.startswith("ServiceRequest/") and ref.count("/") == 1:
        return ref
    return None


def is_referral(task: Mapping[str, Any] | None) -> bool:
    """True for a referral Task: code task-code#fulfill and focus a ServiceRequest."""
    if task is None or task.get("resourceType") != "Task":
        return False
    code = task.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    fulfil = isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == TASK_CODE_SYSTEM and c.get("code") == FULFILL
        for c in codings
    )
    return fulfil and focus_service_request(task) is not None


def is_closed(status: str) -> bool:
    """True when a referral in this status is over."""
    return status in CLOSED


# -- the state machine -----------------------------------------------------------------
def _names(values: Iterable[str]) -> str:
    ordered = sorted(values)
    return ", ".join(ordered) if ordered else "none"


def check_party(parties: frozenset[Party], *, who: str) -> None:
    """A caller that is neither requester nor owner may not write a referral Task: 403."""
    if not parties:
        raise Forbidden(
            f"{who} is neither the requester nor the owner of this referral Task; "
            "only they may change it",
            expression=("Task.requester", "Task.owner"),
        )


def check_transition(old: str | None, new: str, parties: frozenset[Party]) -> None:
    """The Task.status change old -> new (None: creation) is allowed for these parties.

    409 for a transition the state machine or the caller's side does not allow; 422 for
    statuses referrals do not use (SDOH CC IG: received and ready are excluded).
    """
    if new in UNUSED:
        raise ResourceInvalid(
            f"Task.status {new} is not used for referrals; use {_names(TRANSITIONS)}",
            expression=("Task.status",),
        )
    if new not in SETTERS:
        raise ResourceInvalid(
            f"Task.status {new!r} is not a referral status", expression=("Task.status",)
        )
    if old is None:
        if new not in INITIAL:
            raise Conflict(
                f"A referral Task starts as draft or requested, not {new}",
                expression=("Task.status",),
            )
    elif old == new:
        if old in CLOSED:
            raise Conflict(
                f"The referral is {old}: a closed referral Task is not changed any more"
                + ("" if old == "entered-in-error" else " (except to entered-in-error)"),
                expression=("Task.status",),
            )
        return
    elif new not in TRANSITIONS.get(old, frozenset()):
        raise Conflict(
            f"Task.status {old} -> {new} is not allowed; allowed: "
            f"{_names(TRANSITIONS.get(old, frozenset()))}",
            expression=("Task.status",),
        )
    setters = SETTERS[new]
    if Party.OPERATOR in parties or parties & setters:
        return
    side = " and ".join(sorted(p.value for p in parties))
    raise Conflict(
        f"Only the {' or the '.join(sorted(p.value for p in setters))} sets Task.status {new}; "
        f"the caller is the {side}",
        expression=("Task.status",),
    )


def check_reason(task: Mapping[str, Any]) -> Issue | None:
    """A statusReason given says why in text (422 otherwise); rejected, cancelled, on-hold
    and failed without one answer a warning (SDOHCC: SHOULD)."""
    status = task.get("status")
    reason = task.get("statusReason")
    if reason is not None:
        text = reason.get("text") if isinstance(reason, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ResourceInvalid(
                "Task.statusReason requires statusReason.text saying why",
                expression=("Task.statusReason.text",),
            )
        return None
    if status in NEEDS_REASON:
        return Issue(
            "business-rule",
            f"Task.status {status} should give statusReason.text saying why (SDOHCC); the "
            "other agency sees no reason",
            "warning",
            ("Task.statusReason",),
        )
    return None


def check_unconditional(
    old: Mapping[str, Any], new: Mapping[str, Any] | None, parties: frozenset[Party]
) -> None:
    """A referral write without If-Match (428 otherwise): a status change that touches
    nothing beyond UNCONDITIONAL (its legality is check_transition's)."""
    hint = 'send If-Match with the ETag of the version it changes (e.g. If-Match: W/"3")'
    if new is None:
        raise PreconditionRequired(
            f"Deleting a referral names the version it deletes: {hint}",
            expression=("If-Match",),
        )
    if old.get("status") == new.get("status"):
        raise PreconditionRequired(
            f"A write to a referral that does not change its status must name the version it "
            f"changes: {hint}",
            expression=("If-Match",),
        )
    if Party.OPERATOR in parties:
        allowed = frozenset().union(*UNCONDITIONAL.values())
    else:
        allowed = frozenset().union(*(UNCONDITIONAL.get(p, frozenset()) for p in parties))
    beyond = changed_elements(old, new) - allowed
    if beyond:
        raise PreconditionRequired(
            f"Without If-Match a referral write may change only {_names(allowed)}; this one "
            f"also changes {_names(beyond)} (perhaps the Task changed since it was read): "
            f"read it again, or {hint}",
            expression=("If-Match", *(f"Task.{name}" for name in sorted(beyond))),
        )


def changed_elements(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """Top-level elements whose values differ, ignoring server-owned and derived ones."""
    keys = (set(old) | set(new)) - _NOT_COMPARED
    return {k for k in keys if old.get(k) != new.get(k)}


def check_elements(
    old: Mapping[str, Any], new: Mapping[str, Any], parties: frozenset[Party]
) -> None:
    """Each side changes only its own elements (issue 5); a draft is the requester's own,
    except Task.requester itself. 409 naming the elements otherwise."""
    changed = changed_elements(old, new)
    if not changed:
        return
    if old.get("status") == "draft" and parties & {Party.REQUESTER, Party.OPERATOR}:
        if "requester" in changed and Party.OPERATOR not in parties:
            raise Conflict(
                "The requester may not hand a draft referral to another requester",
                expression=("Task.requester",),
            )
        return
    if Party.OPERATOR in parties:
        allowed = MAY_CHANGE[Party.OWNER] | MAY_CHANGE[Party.REQUESTER]
    else:
        allowed = frozenset().union(*(MAY_CHANGE[p] for p in parties))
    refused = changed - allowed
    if refused:
        side = " and ".join(sorted(p.value for p in parties))
        raise Conflict(
            f"The {side} of a referral may change only {_names(allowed)}; "
            f"this change touches {_names(refused)}",
            expression=tuple(f"Task.{name}" for name in sorted(refused)),
        )


def check_output(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], parties: frozenset[Party]
) -> None:
    """Task.output is the receiving agency's report (its records, which the referral shares
    with the requester): nobody else writes it, not even the requester of a draft or of a
    new referral. 409 otherwise."""
    before = old.get("output") if old is not None else None
    if before and old is not None and new.get("owner") != old.get("owner"):
        # What was reported was the receiving agency's: handing the referral to another
        # agency would make that report look like the new receiver's (and share it as such).
        raise Conflict(
            "A referral with output keeps its receiving agency (Task.owner)",
            expression=("Task.owner",),
        )
    if new.get("output") == before or parties & {Party.OWNER, Party.OPERATOR}:
        return
    raise Conflict(
        "Only the receiving agency (Task.owner) reports a referral's output",
        expression=("Task.output",),
    )


def check_delete(status: str, parties: frozenset[Party]) -> None:
    """Only a draft is deleted (by its requester); a sent referral is marked
    entered-in-error instead, so both sides keep its history."""
    if status != "draft":
        raise Conflict(
            f"A referral Task that was sent ({status}) is not deleted; "
            "set its status to entered-in-error",
            expression=("Task.status",),
        )
    if not parties & {Party.REQUESTER, Party.OPERATOR}:
        raise Conflict("Only the requester deletes a draft referral", expression=("Task",))


def check_action(action: Action, status: str, parties: frozenset[Party]) -> None:
    """An action (accept, start, ...) applies to the current status and caller; it is
    always a transition (accepting an accepted referral is a conflict, not a no-op)."""
    if status == action.status:
        raise Conflict(
            f"The referral is already {status}; {action.name} changes nothing",
            expression=("Task.status",),
        )
    if action.only_from is not None and status not in action.only_from:
        raise Conflict(
            f"{action.name} applies to a referral that is {_names(action.only_from)}, not {status}",
            expression=("Task.status",),
        )
    check_transition(status, action.status, parties)


def allowed_actions(status: str, parties: frozenset[Party]) -> list[str]:
    """The actions this caller may take on a referral in this status."""
    out = []
    for name, action in ACTIONS.items():
        try:
            check_action(action, status, parties)
        except (Conflict, ResourceInvalid):
            continue
        out.append(name)
    return out


# -- server-owned elements -------------------------------------------------------------
def stamp_referral(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    now: str,
    agency: str | None,
    client_id: str | None,
) -> None:
    """Set the server-owned elements of a referral Task version in place.

    lastModified: now. authoredOn: when the referral was requested (overdue counts from
    it). executionPeriod: start when accepted (overdue-to-start counts from it), end when
    closed. meta.extension referral-actor: the agency and client that wrote this version
    (the referral history reads it). The overdue flag tag is dropped: it is shown, never
    stored.
    """
    old_status = old.get("status") if old is not None else None
    status = new.get("status")
    for name in SERVER_OWNED:
        if old is not None and name in old:
            new[name] = old[name]
        else:
            new.pop(name, None)
    new["lastModified"] = now
    if status != old_status:
        if status in INITIAL:
            new["authoredOn"] = now
        period = dict(new.get("executionPeriod") or {})
        if status == "accepted":
            period["start"] = now
        elif isinstance(status, str) and status in CLOSED:
            period["end"] = now
        if period:
            new["executionPeriod"] = period
    meta = dict(new.get("meta") or {})
    extensions = [
        e
        for e in meta.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") == ACTOR_EXTENSION)
    ]
    actor: list[dict[str, Any]] = [
        {"url": "agency", "valueReference": {"reference": agency}}
        if agency
        else {"url": "agency", "valueString": "local operator"}
    ]
    if client_id:
        actor.append({"url": "client", "valueString": client_id})
    extensions.append({"url": ACTOR_EXTENSION, "extension": actor})
    meta["extension"] = extensions
    tags = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, dict) and t.get("system") == FLAG_SYSTEM)
    ]
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    new["meta"] = meta


def actor_of(task: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(agency, client) recorded on a referral Task version by stamp_referral."""
    meta = task.get("meta")
    for ext in (meta.get("extension") or []) if isinstance(meta, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == ACTOR_EXTENSION:
            agency = client = None
            for part in ext.get("extension") or []:
                if part.get("url") == "agency":
                    agency = reference_of(part.get("valueReference")) or part.get("valueString")
                elif part.get("url") == "client":
                    client = part.get("valueString")
            return agency, client
    return None, None


# -- overdue ---------------------------------------------------------------------------
def business_cutoff(now: datetime, days: int) -> datetime:
    """The latest instant t such that [t, now] holds `days` x 24 h of weekday time (UTC).

    A referral requested (or accepted) at or before the cutoff has waited `days` business
    days: Saturdays and Sundays do not count; public holidays are not known here.
    """
    remaining = timedelta(days=days)
    cursor = now
    while True:
        day_start = cursor.replace(hour=0, minute=0, second=0, microsecond=0)
        if day_start == cursor:  # midnight belongs to the day before
            day_start -= timedelta(days=1)
        if day_start.weekday() < 5:
            available = cursor - day_start
            if available >= remaining:
                return cursor - remaining
            remaining -= available
        cursor = day_start


def overdue_reason(
    task: Mapping[str, Any], *, accept_cutoff: datetime, start_cutoff: datetime
) -> str | None:
    """Why a referral is overdue (None if it is not): still requested since before the
    accept cutoff, or accepted and not started since before the start cutoff."""
    status = task.get("status")
    if status == "requested":
        since = _instant(task.get("authoredOn"))
        if since is not None and since <= accept_cutoff:
            return "not accepted in time"
    elif status == "accepted":
        period = task.get("executionPeriod")
        since = _instant(period.get("start")) if isinstance(period, dict) else None
        if since is not None and since <= start_cutoff:
            return "not started in time"
    return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def flag_overdue(task: dict[str, Any]) -> None:
    """Add the overdue meta.tag to a Task about to be shown (not stored)."""
    meta = dict(task.get("meta") or {})
    meta["tag"] = [
        *(meta.get("tag") or []),
        {"system": FLAG_SYSTEM, "code": OVERDUE, "display": "Overdue referral"},
    ]
    task["meta"] = meta


# -- closing the loop ------------------------------------------------------------------
def output_summary(text: str) -> dict[str, Any]:
    """A Task.output holding the text summary of what was done."""
    return {
        "type": {"coding": [{"system": OUTPUT_SYSTEM, "code": "summary"}], "text": "Summary"},
        "valueString": text,
    }


def output_reference(reference: str) -> dict[str, Any]:
    """A Task.output naming a resulting Procedure or Observation (SDOH CC IG: the Task's
    output returns what was performed in fulfilment of the referral)."""
    return {
        "type": {
            "coding": [{"system": OUTPUT_SYSTEM, "code": "resulting-activity"}],
            "text": "Resulting activity",
        },
        "valueReference": {"reference": reference},
    }


def check_achievement(code: Any, where: str) -> str:
    """A goal-achievement code (http://terminology.hl7.org/CodeSystem/goal-achievement)."""
    if not isinstance(code, str) or code not in GOAL_ACHIEVEMENT:
        raise ResourceInvalid(
            f"{where} must be a goal-achievement code: {_names(GOAL_ACHIEVEMENT)}",
            expression=(where,),
        )
    return code


# -- what an action carries ------------------------------------------------------------
OUTCOME_TYPES: Final = frozenset({"Procedure", "Observation"})


@dataclass
class ActionInput:
    """The body of an action: why (reason), and for complete what was done (outcome)."""

    reason: str | None = None
    summary: str | None = None
    # Procedures and Observations to create in the same transaction.
    resources: list[dict[str, Any]] = field(default_factory=list)
    # Existing Procedures and Observations ("Type/id").
    references: list[str] = field(default_factory=list)
    # (Goal/id, goal-achievement code) for Goals of the referral.
    goals: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_outcome(self) -> bool:
        """True when the action reports what was done."""
        return bool(self.summary or self.resources or self.references or self.goals)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where} must be a non-empty string", expression=(where,))
    return value.strip()


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be an array", expression=(where,))
    return value


def _outcome_reference(value: Any, where: str) -> str:
    ref = _text(value, where)
    kind, _, rid = ref.partition("/")
    if kind not in OUTCOME_TYPES or not rid or "/" in rid:
        raise ResourceInvalid(
            f"{where} must name a {' or '.join(sorted(OUTCOME_TYPES))} as Type/id, "
            f"not {ref[:80]!r}",
            expression=(where,),
        )
    return ref


def parse_action_json(data: Any, action: Action) -> ActionInput:
    """The plain JSON body of POST /referrals/{id}/{action}:
    {"reason": "..."} or {"outcome": {"summary", "resources", "references", "goals"}}."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest("The body of a referral action is a JSON object")
    unknown = sorted(set(data) - {"reason", "outcome"})
    if unknown:
        raise InvalidRequest(
            f"Unknown member(s) {', '.join(unknown)[:100]}: a referral action takes "
            "reason and (for complete) outcome",
            expression=tuple(unknown[:5]),
        )
    found = ActionInput()
    if data.get("reason") is not None:
        found.reason = _text(data["reason"], "reason")
    outcome = data.get("outcome")
    if outcome is not None:
        if not isinstance(outcome, dict):
            raise InvalidRequest("outcome must be an object", expression=("outcome",))
        extra = sorted(set(outcome) - {"summary", "resources", "references", "goals"})
        if extra:
            raise InvalidRequest(
                f"Unknown outcome member(s) {', '.join(extra)[:100]}; use summary, resources, "
                "references, goals",
                expression=tuple(f"outcome.{e}" for e in extra[:5]),
            )
        if outcome.get("summary") is not None:
            found.summary = _text(outcome["summary"], "outcome.summary")
        for i, item in enumerate(_list(outcome.get("resources", []), "outcome.resources")):
            where = f"outcome.resources[{i}]"
            if not isinstance(item, dict) or item.get("resourceType") not in OUTCOME_TYPES:
                raise ResourceInvalid(
                    f"{where} must be a {' or '.join(sorted(OUTCOME_TYPES))} resource",
                    expression=(where,),
                )
            found.resources.append(item)
        for i, item in enumerate(_list(outcome.get("references", []), "outcome.references")):
            found.references.append(_outcome_reference(item, f"outcome.references[{i}]"))
        for i, item in enumerate(_list(outcome.get("goals", []), "outcome.goals")):
            where = f"outcome.goals[{i}]"
            if not isinstance(item, dict):
                raise InvalidRequest(f"{where} must be an object", expression=(where,))
            goal = _text(item.get("goal"), f"{where}.goal")
            kind, _, gid = goal.partition("/")
            if kind != "Goal" or not gid or "/" in gid:
                raise ResourceInvalid(f"{where}.goal must be Goal/{{id}}", expression=(where,))
            code = check_achievement(item.get("achievementStatus"), f"{where}.achievementStatus")
            found.goals.append((goal, code))
    check_input(found, action)
    return found


def check_input(found: ActionInput, action: Action) -> None:
    """complete needs an outcome, and only complete takes one; decline, cancel, hold and
    fail need a reason (422 otherwise)."""
    if action.status in NEEDS_REASON and not found.reason:
        raise ResourceInvalid(
            f"{action.name} requires a reason saying why (Task.status {action.status} "
            "requires statusReason.text)",
            expression=("reason",),
        )
    if action.name == "complete" and not (found.summary or found.resources or found.references):
        raise ResourceInvalid(
            "complete records what was done: give outcome.summary, outcome.resources or "
            "outcome.references",
            expression=("outcome",),
        )
    if action.name != "complete" and found.has_outcome:
        raise InvalidRequest(
            f"{action.name} takes no outcome; only complete does", expression=("outcome",)
        )


def parse_action_parameters(data: Any, action: Action) -> ActionInput:
    """The Parameters body of POST /fhir/Task/{id}/${action} (spec operations.html):
    reason (string), summary (string), resource (Procedure/Observation, repeating),
    reference (Reference, repeating), goal (parts goal: Reference, achievementStatus: code)."""
    if data is None:
        data = {"resourceType": "Parameters"}
    if not isinstance(data, dict) or data.get("resourceType") != "Parameters":
        raise InvalidRequest(f"${action.name} takes a Parameters resource")
    plain: dict[str, Any] = {}
    outcome: dict[str, Any] = {}
    for i, param in enumerate(_list(data.get("parameter", []), "Parameters.parameter")):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(param, dict):
            raise InvalidRequest(f"{where} must be an object", expression=(where,))
        name = param.get("name")
        if name == "reason":
            plain["reason"] = param.get("valueString")
        elif name == "summary":
            outcome["summary"] = param.get("valueString")
        elif name == "resource":
            outcome.setdefault("resources", []).append(param.get("resource"))
        elif name == "reference":
            outcome.setdefault("references", []).append(reference_of(param.get("valueReference")))
        elif name == "goal":
            parts = {
                p.get("name"): p
                for p in _list(param.get("part", []), f"{where}.part")
                if isinstance(p, dict)
            }
            outcome.setdefault("goals", []).append(
                {
                    "goal": reference_of(parts.get("goal", {}).get("valueReference")),
                    "achievementStatus": parts.get("achievementStatus", {}).get("valueCode"),
                }
            )
        else:
            raise InvalidRequest(
                f"{where}: unknown parameter {str(name)[:40]!r} of ${action.name}; use reason, "
                "summary, resource, reference, goal",
                expression=(where,),
            )
    if outcome:
        plain["outcome"] = outcome
    return parse_action_json(plain, action)


__all__ = [
    "ACTIONS",
    "CLOSED",
    "FULFILL",
    "NEEDS_REASON",
    "OPEN",
    "OUTCOME_TYPES",
    "SERVICE_REQUEST_STATUS",
    "TASK_CODE_SYSTEM",
    "TRANSITIONS",
    "UNCONDITIONAL",
    "Action",
    "ActionInput",
    "Party",
    "actor_of",
    "allowed_actions",
    "business_cutoff",
    "changed_elements",
    "check_achievement",
    "check_action",
    "check_delete",
    "check_elements",
    "check_party",
    "check_reason",
    "check_transition",
    "check_unconditional",
    "flag_overdue",
    "focus_service_request",
    "is_referral",
    "overdue_reason",
    "parse_action_json",
    "parse_action_parameters",
    "stamp_referral",
]
