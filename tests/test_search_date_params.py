"""Date search over HTTP (spec search.html#date), on both databases.

A stored value is the range [low, high) its precision implies (2025-03 = the whole month; a
Period runs from start to end, an open end unbounded); the search value likewise [sl, sh).
Project decisions: eq = target range inside the search range; ne = not eq; gt = high > sh;
lt = low < sl; ge = gt or eq; le = lt or eq; sa = low >= sh; eb = high <= sl; ap = overlaps
the search range widened by 10% of its distance from now. Search values without a zone are
UTC. Resources without a value never match a prefix.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    ids,
    update,
)


@pytest.fixture
def births(client: httpx.Client) -> dict[str, str]:
    made = {
        name: create(client, {"resourceType": "Patient", "birthDate": value})
        for name, value in [
            ("feb28", "2025-02-28"),
            ("mar01", "2025-03-01"),
            ("mar31", "2025-03-31"),
            ("apr01", "2025-04-01"),
            ("march", "2025-03"),
            ("year", "2025"),
            ("moved", "2025-03-15"),
        ]
    }
    made["none"] = create(client, {"resourceType": "Patient", "gender": "other"})
    update(client, "Patient", made["moved"], birthDate="1990-01-01")
    gone = create(client, {"resourceType": "Patient", "birthDate": "2025-03-10"})
    delete(client, "Patient", gone)
    return made


BIRTHDATE_CASES: list[Case] = [
    ("eq-month", "2025-03", {"mar01", "mar31", "march"}),
    ("eq-prefix", "eq2025-03", {"mar01", "mar31", "march"}),
    ("eq-year", "2025", {"feb28", "mar01", "mar31", "apr01", "march", "year"}),
    ("eq-day-excludes-month", "2025-03-01", {"mar01"}),
    ("old-value-of-updated", "2025-03-15", set()),
    ("deleted", "2025-03-10", set()),
    ("new-value-of-updated", "1990", {"moved"}),
    ("ne", "ne2025-03", {"feb28", "apr01", "year", "moved"}),
    ("gt-month", "gt2025-03", {"apr01", "year"}),
    ("lt-month", "lt2025-03", {"feb28", "year", "moved"}),
    ("ge-month", "ge2025-03", {"mar01", "mar31", "apr01", "march", "year"}),
    ("le-month", "le2025-03", {"feb28", "mar01", "mar31", "march", "year", "moved"}),
    ("sa-month", "sa2025-03", {"apr01"}),
    ("eb-month", "eb2025-03", {"feb28", "moved"}),
    ("gt-day-month-not-after", "gt2025-03-31", {"apr01", "year"}),
    ("lt-day", "lt2025-03-01", {"feb28", "year", "moved"}),
    ("ge-day", "ge2025-03-31", {"mar31", "apr01", "year"}),
    ("le-day", "le2025-03-01", {"feb28", "mar01", "year", "moved"}),
    ("sa-day", "sa2025-02-28", {"mar01", "mar31", "apr01", "march"}),
    ("eb-day", "eb2025-04-01", {"feb28", "mar01", "mar31", "march", "moved"}),
    ("or", "2025-02-28,2025-04-01", {"feb28", "apr01"}),
    (
        "and-window",
        "ge2025-03-01&birthdate=lt2025-04-01",
        {"mar01", "mar31", "march", "year"},
    ),
    ("second-inside-day-not-eq", "2025-03-01T00:00:00Z", set()),
    (
        "ge-second",
        "ge2025-03-01T00:00:00Z",
        {"mar01", "mar31", "apr01", "march", "year"},
    ),
]


def test_birthdate(client: httpx.Client, births: dict[str, str]) -> None:
    check(client, births, BIRTHDATE_CASES, "Patient?birthdate=")


def _obs(**effective: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        **effective,
    }


@pytest.fixture
def effective(client: httpx.Client) -> dict[str, str]:
    return {
        # 2025-04-01T04:30Z in UTC
        "tz": create(client, _obs(effectiveDateTime="2025-03-31T23:30:00-05:00")),
        "utc": create(client, _obs(effectiveDateTime="2025-03-31T10:00:00Z")),
        "period": create(
            client,
            _obs(
                effectivePeriod={
                    "start": "2025-03-30T00:00:00Z",
                    "end": "2025-04-02T00:00:00Z",
                }
            ),
        ),
        "open_end": create(client, _obs(effectivePeriod={"start": "2025-03-31T12:00:00Z"})),
        "open_start": create(client, _obs(effectivePeriod={"end": "2025-03-01"})),
        "instant": create(client, _obs(effectiveInstant="2025-03-31T23:59:59.500Z")),
        "none": create(client, _obs()),
    }


OBSERVATION_DATE_CASES: list[Case] = [
    ("eq-day-in-utc", "2025-03-31", {"utc", "instant"}),
    ("eq-offset-converted", "2025-04-01", {"tz"}),
    ("eq-second", "2025-03-31T10:00:00Z", {"utc"}),
    ("eq-second-offset-zero", "2025-03-31T10:00:00+00:00", {"utc"}),
    ("eq-second-other-offset", "2025-03-31T20:00:00+10:00", {"utc"}),
    ("eq-minute-no-zone-is-utc", "2025-03-31T10:00", {"utc"}),
    ("eq-next-second", "2025-03-31T10:00:01Z", set()),
    ("eq-month", "2025-03", {"utc", "instant"}),
    ("eq-year-excludes-open", "2025", {"tz", "utc", "period", "instant"}),
    ("gt", "gt2025-03-31", {"tz", "period", "open_end"}),
    ("lt", "lt2025-03-31", {"period", "open_start"}),
    ("sa", "sa2025-03-31", {"tz"}),
    ("eb", "eb2025-03-31", {"open_start"}),
    ("ge", "ge2025-03-31", {"tz", "period", "open_end", "utc", "instant"}),
    ("le", "le2025-03-31", {"period", "open_start", "utc", "instant"}),
    ("ne", "ne2025-03-31", {"tz", "period", "open_end", "open_start"}),
    ("gt-second-excludes-eq", "gt2025-03-31T23:59:59Z", {"tz", "period", "open_end"}),
    ("eq-second-contains-millis", "2025-03-31T23:59:59Z", {"instant"}),
    ("lt-second-excludes-equal", "lt2025-03-31T10:00:00Z", {"period", "open_start"}),
    ("le-second", "le2025-03-31T10:00:00Z", {"period", "open_start", "utc"}),
    ("open-end-is-unbounded", "gt3000-01-01", {"open_end"}),
    ("open-start-is-unbounded", "lt1000-01-01", {"open_start"}),
]


def test_observation_date(client: httpx.Client, effective: dict[str, str]) -> None:
    check(client, effective, OBSERVATION_DATE_CASES, "Observation?date=")


@pytest.fixture
def periods(client: httpx.Client) -> dict[str, str]:
    def plan(period: dict[str, str]) -> str:
        return create(
            client,
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "Patient/p1"},
                "period": period,
            },
        )

    made = {
        "closed": plan({"start": "2025-01-10", "end": "2025-01-20"}),
        "open_end": plan({"start": "2025-01-15"}),
        "open_start": plan({"end": "2025-01-05"}),
        "moved": plan({"start": "2025-01-10", "end": "2025-01-20"}),
    }
    update(
        client,
        "CarePlan",
        made["moved"],
        period={"start": "2024-06-01", "end": "2024-06-30"},
    )
    return made


CAREPLAN_PERIOD_CASES: list[Case] = [
    ("eq-contained", "2025-01", {"closed"}),
    ("eq-period-wider-than-day", "2025-01-15", set()),
    ("gt", "gt2025-01-31", {"open_end"}),
    ("lt", "lt2025-01-01", {"open_start", "moved"}),
    ("sa", "sa2025-01-12", {"open_end"}),
    ("eb", "eb2025-01-12", {"open_start", "moved"}),
    ("ge", "ge2025-01-15", {"closed", "open_end"}),
    ("le", "le2025-01-15", {"closed", "open_start", "moved"}),
    ("updated", "2024-06", {"moved"}),
    ("ne", "ne2025-01", {"open_end", "open_start", "moved"}),
]


def test_careplan_period(client: httpx.Client, periods: dict[str, str]) -> None:
    check(client, periods, CAREPLAN_PERIOD_CASES, "CarePlan?date=")


def test_approximately(client: httpx.Client) -> None:
    """ap, loosely: the same day and a few days off match; months or years off do not."""
    same = create(client, _obs(effectiveDateTime="2025-06-01T12:00:00Z"))
    near = create(client, _obs(effectiveDateTime="2025-06-04"))
    create(client, _obs(effectiveDateTime="2025-09-15"))
    create(client, _obs(effectiveDateTime="2010-06-01"))
    create(client, _obs(effectiveDateTime="2040-06-01"))
    assert ids(client, "Observation?date=ap2025-06-01") == {same, near}


def test_dates_of_other_types(client: httpx.Client) -> None:
    def goal(*dues: str) -> str:
        return create(
            client,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Stable housing"},
                "subject": {"reference": "Patient/p1"},
                "target": [{"dueDate": due} for due in dues],
            },
        )

    june30 = goal("2025-06-30")
    july01 = goal("2025-07-01")
    both = goal("2025-05-01", "2025-08-01")
    assert ids(client, "Goal?target-date=2025-06") == {june30}
    assert ids(client, "Goal?target-date=lt2025-06") == {both}
    assert ids(client, "Goal?target-date=gt2025-06") == {july01, both}
    # AND over a multi-valued element: each condition may hold on a different value.
    assert ids(client, "Goal?target-date=ge2025-06-30&target-date=le2025-06-30") == {
        june30,
        both,
    }

    task = create(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "authoredOn": "2025-03-01T09:00:00+10:00",
            "lastModified": "2025-03-02T00:00:00Z",
        },
    )
    create(client, {"resourceType": "Task", "status": "requested", "intent": "order"})
    assert ids(client, "Task?authored-on=2025-02-28") == {task}
    assert ids(client, "Task?authored-on=2025-03-01") == set()
    assert ids(client, "Task?modified=2025-03-02") == {task}
    assert ids(client, "Task?modified=lt2025-03-02") == set()

    request = create(
        client,
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2025-05-05",
        },
    )
    assert ids(client, "ServiceRequest?authored=2025-05") == {request}
    assert ids(client, "ServiceRequest?authored=gt2025-05-05") == set()


MALFORMED_DATES = [
    "2025-13",
    "2025-02-30",
    "xx2025",
    "2025-03-01T25:00",
    "2025-03-01T10",
    "2025-03-01T10:00:00+25:00",
    "2025-3-1",
    "yesterday",
    "2025'",
    "2025;",
    "gt",
    "ge2025,",
]


def test_malformed_dates(client: httpx.Client) -> None:
    check_refused(client, [f"Patient?birthdate={value}" for value in MALFORMED_DATES])
    check_refused(client, [f"Observation?date={value}" for value in MALFORMED_DATES[:4]])
