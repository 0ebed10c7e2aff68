"""The referral rules as pure functions (app/fhir/referral.py): the whole transition table
for every side, element ownership, reasons, overdue arithmetic, stamping, action bodies.

The expected table is written out here from issue 5's text, independently of the module's
own table, so a slip in either shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.fhir.errors import Conflict, FHIRError, Forbidden, InvalidRequest, ResourceInvalid
from app.fhir.referral import (
    ACTIONS,
    ACTOR_EXTENSION,
    FLAG_SYSTEM,
    Party,
    actor_of,
    allowed_actions,
    business_cutoff,
    check_action,
    check_delete,
    check_elements,
    check_party,
    check_reason,
    check_transition,
    flag_overdue,
    is_referral,
    overdue_reason,
    parse_action_json,
    parse_action_parameters,
    stamp_referral,
)

REQ, OWN, OP = Party.REQUESTER, Party.OWNER, Party.OPERATOR
STATUSES = [
    "draft",
    "requested",
    "accepted",
    "rejected",
    "in-progress",
    "on-hold",
    "completed",
    "failed",
    "cancelled",
    "entered-in-error",
]
# Issue 5, "Referral = ServiceRequest + Task", as written there.
ISSUE_NEXT = {
    "draft": {"requested"},
    "requested": {"accepted", "rejected", "cancelled"},
    "accepted": {"in-progress", "on-hold", "completed", "failed", "cancelled"},
    "in-progress": {"on-hold", "completed", "failed", "cancelled"},
    "on-hold": {"in-progress", "completed", "failed", "cancelled"},
}
REQUESTER_SETS = {"draft", "requested", "entered-in-error", "cancelled"}
OWNER_SETS = {"accepted", "rejected", "in-progress", "on-hold", "failed", "completed", "cancelled"}
SIDES = {
    "requester": frozenset({REQ}),
    "owner": frozenset({OWN}),
    "both": frozenset({REQ, OWN}),
    "operator": frozenset({OP}),
}


def expected(old: str | None, new: str, parties: frozenset[Party]) -> type[FHIRError] | None:
    if new in ("received", "ready"):
        return ResourceInvalid
    may = set()
    if REQ in parties or OP in parties:
        may |= REQUESTER_SETS
    if OWN in parties or OP in parties:
        may |= OWNER_SETS
    if old is None:
        return None if new in ("draft", "requested") and new in may else Conflict
    if old == new:
        closed = old in ("rejected", "cancelled", "completed", "failed", "entered-in-error")
        return Conflict if closed else None
    nexts = ISSUE_NEXT.get(old, set()) | (
        set() if old == "entered-in-error" else {"entered-in-error"}
    )
    if new not in nexts or new not in may:
        return Conflict
    return None


TABLE = [
    pytest.param(old, new, side, id=f"{old or 'new'}->{new}-{side}")
    for old in [None, *STATUSES]
    for new in [*STATUSES, "received", "ready"]
    for side in SIDES
]


@pytest.mark.parametrize(("old", "new", "side"), TABLE)
def test_transition_table(old: str | None, new: str, side: str) -> None:
    want = expected(old, new, SIDES[side])
    if want is None:
        check_transition(old, new, SIDES[side])
        return
    with pytest.raises(want) as caught:
        check_transition(old, new, SIDES[side])
    assert type(caught.value) is want
    assert "Task.status" in caught.value.expression


def test_illegal_transition_names_the_rule() -> None:
    with pytest.raises(Conflict) as caught:
        check_transition("requested", "completed", SIDES["owner"])
    assert caught.value.diagnostics == (
        "Task.status requested -> completed is not allowed; allowed: accepted, cancelled, "
        "entered-in-error, rejected"
    )
    with pytest.raises(Conflict, match=r"Only the owner sets Task\.status accepted"):
        check_transition("requested", "accepted", SIDES["requester"])


def test_a_third_agency_is_forbidden() -> None:
    with pytest.raises(Forbidden, match="neither the requester nor the owner"):
        check_party(frozenset(), who="Organization/x")
    check_party(SIDES["owner"], who="Organization/x")


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_statuses_that_should_give_a_reason(status: str) -> None:
    # SDOHCC: statusReason.text SHOULD be given for these statuses (a warning) ...
    warning = check_reason({"status": status})
    assert warning is not None and warning.severity == "warning"
    assert warning.expression == ("Task.statusReason",)
    # ... and a statusReason given SHALL have text (statusReason.text 1..).
    for reason in ({}, {"text": ""}, {"text": "   "}, {"coding": [{"code": "x"}]}):
        with pytest.raises(ResourceInvalid, match=r"requires statusReason\.text"):
            check_reason({"status": status, "statusReason": reason})
    assert check_reason({"status": status, "statusReason": {"text": "client moved away"}}) is None


@pytest.mark.parametrize("status", ["requested", "accepted", "in-progress", "completed"])
def test_other_statuses_need_no_reason(status: str) -> None:
    assert check_reason({"status": status}) is None


SENT: dict[str, Any] = {
    "resourceType": "Task",
    "status": "accepted",
    "priority": "routine",
    "owner": {"reference": "Organization/b"},
    "requester": {"reference": "Organization/a"},
    "description": "AOD counselling",
}


@pytest.mark.parametrize(
    ("side", "change", "refused"),
    [
        ("owner", {"businessStatus": {"text": "Booked"}}, None),
        ("owner", {"output": [{"type": {"text": "x"}, "valueString": "y"}]}, None),
        ("owner", {"statusReason": {"text": "why"}}, None),
        ("owner", {"priority": "urgent"}, "priority"),
        ("owner", {"note": [{"text": "hi"}]}, "note"),
        ("owner", {"owner": {"reference": "Organization/c"}}, "owner"),
        ("requester", {"priority": "urgent"}, None),
        ("requester", {"note": [{"text": "please call first"}]}, None),
        ("requester", {"input": [{"type": {"text": "x"}, "valueString": "y"}]}, None),
        ("requester", {"businessStatus": {"text": "x"}}, "businessStatus"),
        ("requester", {"output": [{"type": {"text": "x"}, "valueString": "y"}]}, "output"),
        ("requester", {"owner": {"reference": "Organization/c"}}, "owner"),
        ("requester", {"description": "changed"}, "description"),
        ("operator", {"priority": "urgent", "businessStatus": {"text": "x"}}, None),
        ("operator", {"focus": {"reference": "ServiceRequest/other"}}, "focus"),
        # Server-owned and derived elements are never compared.
        ("owner", {"meta": {"tag": [{"code": "x"}]}, "lastModified": "2030-01-01"}, None),
        ("requester", {"text": {"status": "generated", "div": "<div/>"}}, None),
    ],
)
def test_element_ownership(side: str, change: dict[str, Any], refused: str | None) -> None:
    new = {**SENT, **change}
    if refused is None:
        check_elements(SENT, new, SIDES[side])
        return
    with pytest.raises(Conflict) as caught:
        check_elements(SENT, new, SIDES[side])
    assert f"Task.{refused}" in caught.value.expression
    assert refused in caught.value.diagnostics


def test_removing_an_element_is_a_change() -> None:
    new = {k: v for k, v in SENT.items() if k != "description"}
    with pytest.raises(Conflict, match="description"):
        check_elements(SENT, new, SIDES["owner"])


def test_a_draft_is_the_requesters_own() -> None:
    draft = {**SENT, "status": "draft"}
    check_elements(draft, {**draft, "description": "new", "owner": None}, SIDES["requester"])
    with pytest.raises(Conflict, match="another requester"):
        check_elements(
            draft, {**draft, "requester": {"reference": "Organization/z"}}, SIDES["requester"]
        )
    with pytest.raises(Conflict):
        check_elements(draft, {**draft, "description": "new"}, SIDES["owner"])


def test_delete_only_a_draft_by_its_requester() -> None:
    check_delete("draft", SIDES["requester"])
    check_delete("draft", SIDES["operator"])
    with pytest.raises(Conflict, match="entered-in-error"):
        check_delete("requested", SIDES["requester"])
    with pytest.raises(Conflict, match="Only the requester"):
        check_delete("draft", SIDES["owner"])


@pytest.mark.parametrize(
    ("status", "side", "actions"),
    [
        ("requested", "owner", ["accept", "decline", "cancel"]),
        ("requested", "requester", ["cancel"]),
        ("accepted", "owner", ["start", "hold", "complete", "fail", "cancel"]),
        ("in-progress", "owner", ["hold", "complete", "fail", "cancel"]),
        ("on-hold", "owner", ["resume", "complete", "fail", "cancel"]),
        ("on-hold", "requester", ["cancel"]),
        ("completed", "owner", []),
        ("cancelled", "requester", []),
        ("requested", "operator", ["accept", "decline", "cancel"]),
    ],
)
def test_allowed_actions(status: str, side: str, actions: list[str]) -> None:
    assert allowed_actions(status, SIDES[side]) == actions


def test_start_and_resume_keep_their_meaning() -> None:
    with pytest.raises(Conflict, match="start applies to a referral that is accepted"):
        check_action(ACTIONS["start"], "on-hold", SIDES["owner"])
    with pytest.raises(Conflict, match="resume applies"):
        check_action(ACTIONS["resume"], "accepted", SIDES["owner"])
    with pytest.raises(Conflict, match="already accepted"):
        check_action(ACTIONS["accept"], "accepted", SIDES["owner"])


def test_what_is_a_referral() -> None:
    code = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}
    task = {"resourceType": "Task", "code": code, "focus": {"reference": "ServiceRequest/1"}}
    assert is_referral(task)
    assert not is_referral({**task, "focus": {"reference": "CarePlan/1"}})
    assert not is_referral({**task, "code": {"coding": [{"code": "fulfill"}]}})
    assert not is_referral({k: v for k, v in task.items() if k != "focus"})
    assert not is_referral(None)


# -- overdue ---------------------------------------------------------------------------
FRIDAY_10 = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "days", "cutoff"),
    [
        # Wednesday 10:00: three weekdays back is the Friday before, same time.
        (datetime(2026, 1, 14, 10, 0, tzinfo=UTC), 3, datetime(2026, 1, 9, 10, 0, tzinfo=UTC)),
        # Thursday: Monday.
        (datetime(2026, 1, 15, 8, 30, tzinfo=UTC), 3, datetime(2026, 1, 12, 8, 30, tzinfo=UTC)),
        # During a weekend the clock stands still: Sunday noon counts as Friday midnight.
        (datetime(2026, 1, 11, 12, 0, tzinfo=UTC), 1, datetime(2026, 1, 9, 0, 0, tzinfo=UTC)),
        (datetime(2026, 1, 12, 0, 0, tzinfo=UTC), 1, datetime(2026, 1, 9, 0, 0, tzinfo=UTC)),
        (datetime(2026, 1, 12, 6, 0, tzinfo=UTC), 0, datetime(2026, 1, 12, 6, 0, tzinfo=UTC)),
        # Ten business days is two calendar weeks.
        (datetime(2026, 1, 23, 9, 0, tzinfo=UTC), 10, datetime(2026, 1, 9, 9, 0, tzinfo=UTC)),
    ],
)
def test_business_cutoff(now: datetime, days: int, cutoff: datetime) -> None:
    assert business_cutoff(now, days) == cutoff


def test_business_cutoff_is_monotonic_and_exact_on_weekdays() -> None:
    previous = None
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(24 * 21):
        cut = business_cutoff(moment, 3)
        if previous is not None:
            assert cut >= previous
        previous = cut
        weekday_hours = sum(
            1
            for h in range(int((moment - cut).total_seconds() // 3600))
            if (cut + timedelta(hours=h)).weekday() < 5
        )
        assert weekday_hours == 72
        moment += timedelta(hours=1)


def test_overdue_reason() -> None:
    cut = FRIDAY_10
    requested = {"status": "requested", "authoredOn": "2026-01-09T10:00:00.000000Z"}
    assert overdue_reason(requested, accept_cutoff=cut, start_cutoff=cut) == (
        "not accepted in time"
    )
    later = {**requested, "authoredOn": "2026-01-09T10:00:00.001000Z"}
    assert overdue_reason(later, accept_cutoff=cut, start_cutoff=cut) is None
    accepted = {"status": "accepted", "executionPeriod": {"start": "2026-01-08T10:00:00Z"}}
    assert overdue_reason(accepted, accept_cutoff=cut, start_cutoff=cut) == "not started in time"
    started = {**accepted, "status": "in-progress"}
    assert overdue_reason(started, accept_cutoff=cut, start_cutoff=cut) is None


# -- stamping --------------------------------------------------------------------------
def test_stamp_sets_server_owned_elements() -> None:
    new: dict[str, Any] = {
        "status": "requested",
        "authoredOn": "1999-01-01T00:00:00Z",
        "executionPeriod": {"start": "1999-01-01"},
        "meta": {"tag": [{"system": FLAG_SYSTEM, "code": "overdue"}, {"code": "keep"}]},
    }
    stamp_referral(None, new, now="2026-01-05T09:00:00Z", agency="Organization/a", client_id="c1")
    assert new["authoredOn"] == "2026-01-05T09:00:00Z"
    assert "executionPeriod" not in new
    assert new["lastModified"] == "2026-01-05T09:00:00Z"
    assert new["meta"]["tag"] == [{"code": "keep"}]
    assert actor_of(new) == ("Organization/a", "c1")

    accepted = {**new, "status": "accepted", "authoredOn": "2030-01-01T00:00:00Z"}
    stamp_referral(
        new, accepted, now="2026-01-06T09:00:00Z", agency="Organization/b", client_id=None
    )
    assert accepted["authoredOn"] == "2026-01-05T09:00:00Z"
    assert accepted["executionPeriod"] == {"start": "2026-01-06T09:00:00Z"}
    assert actor_of(accepted) == ("Organization/b", None)
    assert [e["url"] for e in accepted["meta"]["extension"]] == [ACTOR_EXTENSION]

    done = {**accepted, "status": "completed"}
    stamp_referral(accepted, done, now="2026-01-07T09:00:00Z", agency=None, client_id=None)
    assert done["executionPeriod"] == {
        "start": "2026-01-06T09:00:00Z",
        "end": "2026-01-07T09:00:00Z",
    }
    assert actor_of(done) == ("local operator", None)


def test_flag_overdue_adds_a_tag() -> None:
    task: dict[str, Any] = {"meta": {"tag": [{"code": "x"}]}}
    flag_overdue(task)
    assert task["meta"]["tag"][-1]["system"] == FLAG_SYSTEM


# -- action bodies ---------------------------------------------------------------------
def test_action_json() -> None:
    found = parse_action_json({"reason": " client declined "}, ACTIONS["decline"])
    assert found.reason == "client declined"
    done = parse_action_json(
        {
            "outcome": {
                "summary": "Four sessions",
                "resources": [{"resourceType": "Procedure"}],
                "references": ["Observation/o1"],
                "goals": [{"goal": "Goal/g1", "achievementStatus": "improving"}],
            }
        },
        ACTIONS["complete"],
    )
    assert done.summary == "Four sessions"
    assert done.references == ["Observation/o1"]
    assert done.goals == [("Goal/g1", "improving")]
    assert parse_action_json(None, ACTIONS["accept"]).reason is None


@pytest.mark.parametrize(
    ("body", "action", "error", "text"),
    [
        ([], "accept", InvalidRequest, "JSON object"),
        ({"why": "x"}, "accept", InvalidRequest, "Unknown member"),
        ({"reason": 3}, "decline", InvalidRequest, "non-empty string"),
        ({"outcome": {"summary": "x"}}, "accept", InvalidRequest, "only complete"),
        ({}, "complete", ResourceInvalid, "records what was done"),
        (
            {"outcome": {"goals": [{"goal": "Goal/g", "achievementStatus": "achieved"}]}},
            "complete",
            ResourceInvalid,
            "records what was done",
        ),
        (
            {"outcome": {"summary": "x", "references": ["Patient/p"]}},
            "complete",
            ResourceInvalid,
            "Observation or Procedure",
        ),
        (
            {"outcome": {"summary": "x", "resources": [{"resourceType": "Patient"}]}},
            "complete",
            ResourceInvalid,
            "Observation or Procedure",
        ),
        (
            {
                "outcome": {
                    "summary": "x",
                    "goals": [{"goal": "Goal/g", "achievementStatus": "yes"}],
                }
            },
            "complete",
            ResourceInvalid,
            "goal-achievement",
        ),
        ({"outcome": {"summary": "x", "extra": 1}}, "complete", InvalidRequest, "Unknown outcome"),
    ],
)
def test_action_json_refusals(body: Any, action: str, error: type[FHIRError], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_action_json(body, ACTIONS[action])


def test_action_parameters() -> None:
    found = parse_action_parameters(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "summary", "valueString": "Attended"},
                {"name": "reference", "valueReference": {"reference": "Procedure/p1"}},
                {
                    "name": "goal",
                    "part": [
                        {"name": "goal", "valueReference": {"reference": "Goal/g1"}},
                        {"name": "achievementStatus", "valueCode": "achieved"},
                    ],
                },
            ],
        },
        ACTIONS["complete"],
    )
    assert (found.summary, found.references, found.goals) == (
        "Attended",
        ["Procedure/p1"],
        [("Goal/g1", "achieved")],
    )
    with pytest.raises(InvalidRequest, match="takes a Parameters resource"):
        parse_action_parameters({"reason": "x"}, ACTIONS["decline"])
    with pytest.raises(InvalidRequest, match="unknown parameter"):
        parse_action_parameters(
            {"resourceType": "Parameters", "parameter": [{"name": "why"}]}, ACTIONS["decline"]
        )
