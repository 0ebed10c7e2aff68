"""Reference search over HTTP (spec search.html#reference, #chaining, #has), on both databases.

Forms: ``Type/id``, a bare ``id`` (any target type), an absolute URL under the server's own
base (the same as relative), a foreign absolute URL (exact), the ``:Type`` modifier,
``:identifier``; chains (typed; untyped over every target type that has the chained
parameter: Patient and Group share ``identifier``, only Patient has ``name``; multi-level);
reverse chains ``_has`` (also nested). Chains follow the current version of the target: a
renamed or deleted target must not be found by its old name.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import care_plan
from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    put,
    update,
)

CLIENTS = "https://agency.example.org/clients"
FOREIGN = "http://other.example.org/fhir"
C1 = [{"system": CLIENTS, "value": "C-1"}]


def _patient(pid: str, family: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}], **more}


def _plan(subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": subject,
    }


def _ref(value: str) -> dict[str, str]:
    return {"reference": value}


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


@pytest.fixture
def plans(client: httpx.Client) -> dict[str, str]:
    base = _base(client)
    put(client, _patient("pa", "Rivera", gender="female", identifier=C1))
    put(client, _patient("pb", "Nguyen"))
    put(client, _patient("shared", "Okafor"))
    put(client, _patient("px", "Rivera", gender="female", identifier=C1))
    put(
        client,
        {
            "resourceType": "Group",
            "id": "shared",
            "type": "person",
            "actual": True,
            "name": "Rivera household",  # Group has no "name" search parameter
            "identifier": C1,
        },
    )
    made = {
        "cp_pa": create(client, _plan(_ref("Patient/pa"))),
        "cp_abs": create(client, _plan(_ref(f"{base}/Patient/pa"))),
        "cp_pb": create(client, _plan(_ref("Patient/pb"))),
        "cp_pshared": create(client, _plan(_ref("Patient/shared"))),
        "cp_gshared": create(client, _plan(_ref("Group/shared"))),
        "cp_foreign": create(client, _plan(_ref(f"{FOREIGN}/Patient/pa"))),
        "cp_ident": create(
            client,
            _plan(
                {
                    "identifier": {"system": CLIENTS, "value": "C-9"},
                    "display": "Client C-9",
                }
            ),
        ),
        "cp_px": create(client, _plan(_ref("Patient/px"))),
        "cp_moved": create(client, _plan(_ref("Patient/pa"))),
    }
    update(client, "CarePlan", made["cp_moved"], subject=_ref("Patient/pb"))
    gone = create(client, _plan(_ref("Patient/pa")))
    delete(client, "CarePlan", gone)
    # Chains must see the current target: pb renamed, px deleted.
    update(client, "Patient", "pb", name=[{"family": "Tran"}])
    delete(client, "Patient", "px")
    return made


CAREPLAN_REFERENCES_CASES: list[Case] = [
    ("relative", "subject=Patient/pa", {"cp_pa", "cp_abs"}),
    ("bare-id", "subject=pa", {"cp_pa", "cp_abs"}),
    ("own-absolute-url", "subject={base}/Patient/pa", {"cp_pa", "cp_abs"}),
    ("foreign-url-exact", f"subject={FOREIGN}/Patient/pa", {"cp_foreign"}),
    ("updated-reference", "subject=Patient/pb", {"cp_pb", "cp_moved"}),
    ("bare-id-any-type", "subject=shared", {"cp_pshared", "cp_gshared"}),
    ("type-modifier", "subject:Patient=shared", {"cp_pshared"}),
    ("type-modifier-group", "subject:Group=shared", {"cp_gshared"}),
    ("typed-group", "subject=Group/shared", {"cp_gshared"}),
    ("patient-param", "patient=shared", {"cp_pshared"}),
    ("patient-param-typed", "patient=Patient/pa", {"cp_pa", "cp_abs"}),
    ("reference-to-deleted-target", "subject=Patient/px", {"cp_px"}),
    ("or", "subject=Patient/pa,Group/shared", {"cp_pa", "cp_abs", "cp_gshared"}),
    ("and", "subject=Patient/pa&subject=pa", {"cp_pa", "cp_abs"}),
    ("and-disjoint", "subject=Patient/pa&subject=Patient/pb", set()),
    ("identifier", f"subject:identifier={CLIENTS}|C-9", {"cp_ident"}),
    ("identifier-any-system", "subject:identifier=C-9", {"cp_ident"}),
    ("identifier-other", f"subject:identifier={CLIENTS}|C-8", set()),
    ("no-prefix-match", "subject=Patient/p", set()),
    ("chain-typed", "subject:Patient.name=rivera", {"cp_pa", "cp_abs"}),
    ("chain-untyped", "subject.name=rivera", {"cp_pa", "cp_abs"}),
    ("chain-every-target", "subject.identifier=C-1", {"cp_pa", "cp_abs", "cp_gshared"}),
    ("chain-group", "subject:Group.identifier=C-1", {"cp_gshared"}),
    ("chain-patient", "subject:Patient.identifier=C-1", {"cp_pa", "cp_abs"}),
    ("chain-only-patient-has-it", "subject.family=okafor", {"cp_pshared"}),
    ("chain-old-name-of-renamed-target", "patient.family=nguyen", set()),
    ("chain-new-name", "patient.family=tran", {"cp_pb", "cp_moved"}),
    ("chain-token", "subject:Patient.gender=female", {"cp_pa", "cp_abs"}),
    ("chain-id", "subject:Patient._id=pa", {"cp_pa", "cp_abs"}),
    (
        "chain-or",
        "subject:Patient.name=rivera,okafor",
        {"cp_pa", "cp_abs", "cp_pshared"},
    ),
    (
        "chain-and",
        "subject:Patient.name=rivera&subject:Patient.gender=female",
        {"cp_pa", "cp_abs"},
    ),
    (
        "chain-and-none",
        "subject:Patient.name=rivera&subject:Patient.name=okafor",
        set(),
    ),
    ("chain-exact", "subject.name:exact=Rivera", {"cp_pa", "cp_abs"}),
]


def test_careplan_references(client: httpx.Client, plans: dict[str, str]) -> None:
    check(client, plans, CAREPLAN_REFERENCES_CASES, "CarePlan?", base=_base(client))


@pytest.fixture
def tasks(client: httpx.Client) -> dict[str, str]:
    put(client, _patient("pa", "Rivera"))
    put(client, _patient("pb", "Nguyen"))

    def request(subject: str) -> str:
        return create(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": _ref(subject),
            },
        )

    def task(status: str, focus: str) -> str:
        return create(
            client,
            {
                "resourceType": "Task",
                "status": status,
                "intent": "order",
                "focus": _ref(focus),
            },
        )

    made = {
        "pa": "pa",
        "pb": "pb",
        "sr_pa": request("Patient/pa"),
        "sr_pb": request("Patient/pb"),
        "cp_pa": create(client, _plan(_ref("Patient/pa"))),
        "cp_pb": create(client, _plan(_ref("Patient/pb"))),
        "cp_idle": create(client, _plan(_ref("Patient/pb"))),
    }
    made["t_sr_pa"] = task("requested", f"ServiceRequest/{made['sr_pa']}")
    made["t_sr_pb"] = task("completed", f"ServiceRequest/{made['sr_pb']}")
    made["t_cp_pa"] = task("requested", f"CarePlan/{made['cp_pa']}")
    made["t_cp_pa_done"] = task("completed", f"CarePlan/{made['cp_pa']}")
    made["t_cp_pb"] = task("requested", f"CarePlan/{made['cp_pb']}")
    # The requested task on cp_pb is now completed; the one on cp_idle is deleted.
    update(client, "Task", made["t_cp_pb"], status="completed")
    gone = task("requested", f"CarePlan/{made['cp_idle']}")
    delete(client, "Task", gone)
    # A focus written as an absolute URL on this server's own base counts like a relative one.
    made["cp_abs"] = create(client, _plan(_ref("Patient/pa")))
    made["t_abs"] = task("requested", f"{_base(client)}/CarePlan/{made['cp_abs']}")
    # A task whose focus was deleted: chains through the focus find nothing.
    sr_gone = request("Patient/pa")
    made["t_sr_gone"] = task("requested", f"ServiceRequest/{sr_gone}")
    delete(client, "ServiceRequest", sr_gone)
    return made


CHAINS_AND_REVERSE_CHAINS_CASES: list[Case] = [
    (
        "two-levels",
        "Task?focus:ServiceRequest.subject:Patient.family=rivera",
        {"t_sr_pa"},
    ),
    ("two-b", "Task?focus:ServiceRequest.subject:Patient.family=nguyen", {"t_sr_pb"}),
    (
        "two-levels-other-type",
        "Task?focus:CarePlan.subject:Patient.family=rivera",
        {"t_cp_pa", "t_cp_pa_done", "t_abs"},
    ),
    (
        "two-levels-untyped",
        "Task?focus:ServiceRequest.patient.family=rivera",
        {"t_sr_pa"},
    ),
    ("has", "CarePlan?_has:Task:focus:status=requested", {"cp_pa", "cp_abs"}),
    ("has-updated", "CarePlan?_has:Task:focus:status=completed", {"cp_pa", "cp_pb"}),
    (
        "has-and",
        "CarePlan?_has:Task:focus:status=requested&_has:Task:focus:status=completed",
        {"cp_pa"},
    ),
    (
        "has-or",
        "ServiceRequest?_has:Task:focus:status=requested,completed",
        {"sr_pa", "sr_pb"},
    ),
    (
        "has-and-ref",
        "CarePlan?_has:Task:focus:status=requested&subject=Patient/pb",
        set(),
    ),
    ("has-sr", "ServiceRequest?_has:Task:focus:status=requested", {"sr_pa"}),
    ("has-sr-completed", "ServiceRequest?_has:Task:focus:status=completed", {"sr_pb"}),
    (
        "nested",
        "Patient?_has:CarePlan:subject:_has:Task:focus:status=requested",
        {"pa"},
    ),
    (
        "nested-updated",
        "Patient?_has:CarePlan:subject:_has:Task:focus:status=completed",
        {"pa", "pb"},
    ),
    ("has-by-id", "Patient?_has:CarePlan:patient:_id={cp_idle}", {"pb"}),
    ("has-service-request", "Patient?_has:ServiceRequest:patient:status=active", {"pa", "pb"}),
    (
        "has-with-chain-inside",
        "CarePlan?_has:Task:focus:status=requested&subject:Patient.family=nguyen",
        set(),
    ),
    ("has-wrong-target", "Patient?_has:Task:focus:status=requested", set()),
]


def test_chains_and_reverse_chains(client: httpx.Client, tasks: dict[str, str]) -> None:
    check(client, tasks, CHAINS_AND_REVERSE_CHAINS_CASES, "")


@pytest.fixture
def links(client: httpx.Client) -> dict[str, str]:
    """Reference parameters of the case-management types, each with a decoy."""

    def task(**more: Any) -> str:
        return create(
            client, {"resourceType": "Task", "status": "requested", "intent": "order", **more}
        )

    return {
        "p_gp": create(
            client,
            {
                "resourceType": "Patient",
                "generalPractitioner": [_ref("Practitioner/gp1"), _ref("Organization/clinic")],
                "managingOrganization": _ref("Organization/agency"),
            },
        ),
        "p_other": create(
            client,
            {
                "resourceType": "Patient",
                "generalPractitioner": [_ref("Practitioner/gp2")],
                "managingOrganization": _ref("Organization/other"),
            },
        ),
        "t_a": task(
            owner=_ref("Practitioner/cm7"),
            requester=_ref("Organization/agency"),
            **{"for": _ref("Patient/pa")},
        ),
        "t_b": task(
            owner=_ref("Organization/agency"),
            requester=_ref("Practitioner/cm7"),
            **{"for": _ref("Group/g1")},
        ),
        "o_pa": create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": _ref("Patient/pa"),
            },
        ),
        "o_group": create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": _ref("Group/pa"),
            },
        ),
        "sr_a": create(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": _ref("Patient/pa"),
                "requester": _ref("Practitioner/cm7"),
            },
        ),
        "g_a": create(
            client,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Stable housing"},
                "subject": _ref("Patient/pa"),
            },
        ),
        "cp_full": create(client, care_plan()),  # goal, careTeam from the factory
        "cp_bare": create(client, _plan(_ref("Patient/pa"))),
    }


OTHER_TYPES_CASES: list[Case] = [
    ("gp", "Patient?general-practitioner=Practitioner/gp1", {"p_gp"}),
    ("gp-second", "Patient?general-practitioner=Organization/clinic", {"p_gp"}),
    ("gp-typed", "Patient?general-practitioner:Practitioner=gp2", {"p_other"}),
    ("gp-wrong-type", "Patient?general-practitioner:Organization=gp1", set()),
    ("organization", "Patient?organization=agency", {"p_gp"}),
    ("task-owner", "Task?owner=Practitioner/cm7", {"t_a"}),
    ("task-owner-any-type", "Task?owner=agency", {"t_b"}),
    ("task-requester", "Task?requester=Organization/agency", {"t_a"}),
    ("task-subject", "Task?subject=Group/g1", {"t_b"}),
    ("task-patient", "Task?patient=pa", {"t_a"}),
    ("task-patient-not-group", "Task?patient=g1", set()),
    ("obs-subject", "Observation?subject=pa", {"o_pa", "o_group"}),
    ("obs-patient", "Observation?patient=pa", {"o_pa"}),
    ("sr-requester", "ServiceRequest?requester=Practitioner/cm7", {"sr_a"}),
    ("sr-subject", "ServiceRequest?subject:Patient=pa", {"sr_a"}),
    ("goal-subject", "Goal?subject=Patient/pa", {"g_a"}),
    ("goal-patient", "Goal?patient=pa", {"g_a"}),
    ("careplan-goal", "CarePlan?goal=Goal/goal-housing", {"cp_full"}),
    ("careplan-goal-or", "CarePlan?goal=goal-audit,nothing", {"cp_full"}),
    ("careplan-care-team", "CarePlan?care-team=CareTeam/team-3", {"cp_full"}),
    ("careplan-subject", "CarePlan?subject=Patient/pa", {"cp_bare"}),
]


def test_reference_parameters_of_other_types(client: httpx.Client, links: dict[str, str]) -> None:
    check(client, links, OTHER_TYPES_CASES, "")


def test_malformed_reference_queries(client: httpx.Client) -> None:
    check_refused(
        client,
        [
            "CarePlan?status.name=x",  # a chain through a token parameter
            "CarePlan?subject:Practitioner=x",  # not a target type of subject
            "CarePlan?subject:Practitioner.name=x",
            "CarePlan?_has:Task:focus=x",  # _has without a parameter
            "CarePlan?_has:Nope:focus:status=x",
            "CarePlan?_has:Task:status:status=x",  # _has through a token parameter
            "CarePlan?subject:exact=Patient/pa",  # a string modifier
            "CarePlan?subject.=x",
        ],
    )


def test_malformed_chain_and_has_names_are_refused_not_ignored(client: httpx.Client) -> None:
    """Like ``subject.=x`` and ``_has:Task:focus=x`` (refused above), these are a known
    parameter written wrongly, not an unknown parameter to ignore."""
    check_refused(
        client,
        [
            "CarePlan?subject:Patient.=x",  # a typed chain with no parameter
            "CarePlan?_has=x",  # _has without type, reference and parameter
        ],
    )
