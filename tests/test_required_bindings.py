"""Unit tests for the pure required-binding checker in app.fhir.bindings."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.fhir.bindings import (
    TABLE_PATH,
    BindingViolation,
    allowed_codes,
    check_required_bindings,
)

VS = "http://hl7.org/fhir/ValueSet/"

VALID_CAREPLAN: dict[str, Any] = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "status": "active",
    "_status": {"extension": [{"url": "http://example.org/x", "valueString": "bogus"}]},
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
    "activity": [
        {"detail": {"kind": "Appointment", "status": "scheduled", "doNotPerform": False}},
        {"detail": {"status": "in-progress"}},
    ],
    "contained": [{"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active"}],
}


def _one(resource_type: str, body: dict[str, Any]) -> BindingViolation:
    violations = check_required_bindings(resource_type, body)
    assert len(violations) == 1, violations
    return violations[0]


@pytest.mark.parametrize(
    ("resource_type", "body", "expected"),
    [
        pytest.param(
            "CarePlan",
            {"resourceType": "CarePlan", "status": "bogus", "intent": "plan"},
            BindingViolation("CarePlan.status", "bogus", VS + "request-status"),
            id="careplan-status",
        ),
        pytest.param(
            "CarePlan",
            {"resourceType": "CarePlan", "status": "active", "intent": "order-ish"},
            BindingViolation("CarePlan.intent", "order-ish", VS + "care-plan-intent"),
            id="careplan-intent",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "activity": [{"detail": {"status": "done"}}],
            },
            BindingViolation(
                "CarePlan.activity[0].detail.status", "done", VS + "care-plan-activity-status"
            ),
            id="careplan-activity-detail-status",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "activity": [{"detail": {"kind": "Task"}}, {"detail": {"kind": "Nope"}}],
            },
            BindingViolation(
                "CarePlan.activity[1].detail.kind", "Nope", VS + "care-plan-activity-kind"
            ),
            id="nested-array-index",
        ),
        pytest.param(
            "Goal",
            {"resourceType": "Goal", "lifecycleStatus": "ongoing"},
            BindingViolation("Goal.lifecycleStatus", "ongoing", VS + "goal-status"),
            id="goal-lifecyclestatus",
        ),
        pytest.param(
            "ServiceRequest",
            {"resourceType": "ServiceRequest", "status": "open", "intent": "order"},
            BindingViolation("ServiceRequest.status", "open", VS + "request-status"),
            id="servicerequest-status",
        ),
        pytest.param(
            "ServiceRequest",
            {"resourceType": "ServiceRequest", "status": "active", "intent": "wish"},
            BindingViolation("ServiceRequest.intent", "wish", VS + "request-intent"),
            id="servicerequest-intent",
        ),
        pytest.param(
            "Task",
            {"resourceType": "Task", "status": "pending", "intent": "order"},
            BindingViolation("Task.status", "pending", VS + "task-status"),
            id="task-status",
        ),
        pytest.param(
            "Task",
            {"resourceType": "Task", "status": "requested", "intent": "directive"},
            BindingViolation("Task.intent", "directive", VS + "task-intent"),
            id="task-intent",
        ),
        pytest.param(
            "Observation",
            {"resourceType": "Observation", "status": "done", "code": {"text": "x"}},
            BindingViolation("Observation.status", "done", VS + "observation-status"),
            id="observation-status",
        ),
        pytest.param(
            "Consent",
            {"resourceType": "Consent", "status": "signed"},
            BindingViolation("Consent.status", "signed", VS + "consent-state-codes"),
            id="consent-status",
        ),
        pytest.param(
            "EpisodeOfCare",
            {"resourceType": "EpisodeOfCare", "status": "open"},
            BindingViolation("EpisodeOfCare.status", "open", VS + "episode-of-care-status"),
            id="episodeofcare-status",
        ),
        pytest.param(
            "EpisodeOfCare",
            {
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "statusHistory": [
                    {"status": "planned"},
                    {"status": "waitlist"},
                    {"status": "paused"},
                ],
            },
            BindingViolation(
                "EpisodeOfCare.statusHistory[2].status", "paused", VS + "episode-of-care-status"
            ),
            id="episodeofcare-statushistory-array",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "contained": [
                    {"resourceType": "Goal", "lifecycleStatus": "active"},
                    {"resourceType": "ServiceRequest", "status": "bogus", "intent": "order"},
                ],
            },
            BindingViolation("CarePlan.contained[1].status", "bogus", VS + "request-status"),
            id="contained-resource",
        ),
        pytest.param(
            "Bundle",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": {"resourceType": "Task", "status": "ready", "intent": "order"}},
                    {"resource": {"resourceType": "Task", "status": "ready", "intent": "bogus"}},
                ],
            },
            BindingViolation("Bundle.entry[1].resource.intent", "bogus", VS + "task-intent"),
            id="bundle-entry-resource",
        ),
        pytest.param(
            "Parameters",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "outer",
                        "part": [
                            {
                                "name": "inner",
                                "resource": {"resourceType": "Consent", "status": "x"},
                            }
                        ],
                    }
                ],
            },
            BindingViolation(
                "Parameters.parameter[0].part[0].resource.status", "x", VS + "consent-state-codes"
            ),
            id="parameters-part-resource-via-contentreference",
        ),
        pytest.param(
            "Questionnaire",
            {
                "resourceType": "Questionnaire",
                "status": "active",
                "item": [
                    {
                        "linkId": "1",
                        "type": "group",
                        "item": [
                            {
                                "linkId": "1.1",
                                "type": "group",
                                "item": [
                                    {"linkId": "1.1.1", "type": "text-ish"},
                                ],
                            }
                        ],
                    }
                ],
            },
            BindingViolation(
                "Questionnaire.item[0].item[0].item[0].type", "text-ish", VS + "item-type"
            ),
            id="questionnaire-recursive-item",
        ),
        pytest.param(
            "SearchParameter",
            {
                "resourceType": "SearchParameter",
                "status": "active",
                "type": "token",
                "base": ["Patient", "Pateint"],
            },
            BindingViolation("SearchParameter.base[1]", "Pateint", VS + "resource-types"),
            id="repeating-code-element",
        ),
    ],
)
def test_single_violation(
    resource_type: str, body: dict[str, Any], expected: BindingViolation
) -> None:
    assert _one(resource_type, body) == expected


def test_valid_resource_has_no_violations() -> None:
    assert check_required_bindings("CarePlan", VALID_CAREPLAN) == []


def test_primitive_extension_sibling_is_ignored() -> None:
    body = {"resourceType": "Goal", "_lifecycleStatus": {"id": "bogus"}}
    assert check_required_bindings("Goal", body) == []


def test_multiple_violations_are_all_reported() -> None:
    body = {
        "resourceType": "CarePlan",
        "status": "bogus",
        "intent": "bogus",
        "activity": [{"detail": {"status": "bogus"}}],
    }
    expressions = {v.expression for v in check_required_bindings("CarePlan", body)}
    assert expressions == {
        "CarePlan.status",
        "CarePlan.intent",
        "CarePlan.activity[0].detail.status",
    }


def test_unknown_resource_type_and_unknown_contained_type_are_ignored() -> None:
    assert check_required_bindings("NotAType", {"status": "bogus"}) == []
    body = {"resourceType": "CarePlan", "contained": [{"resourceType": "Nope", "status": "x"}]}
    assert check_required_bindings("CarePlan", body) == []


def test_table_has_careplan_status() -> None:
    codes = allowed_codes("CarePlan", "status")
    assert codes is not None
    assert "active" in codes
    assert "bogus" not in codes
    table = orjson.loads(TABLE_PATH.read_bytes())
    assert table["source"] == "hl7.fhir.r4b.core@4.3.0"
    entry = table["bindings"]["CarePlan"]["status"]
    assert entry["valueSet"] == VS + "request-status"
    assert entry["codes"] == sorted(entry["codes"])


def test_unenumerable_bindings_are_skipped_not_checked() -> None:
    # Mime types (urn:ietf:bcp:13) cannot be enumerated from the package.
    assert allowed_codes("Binary", "contentType") is None
    assert check_required_bindings("Binary", {"resourceType": "Binary", "contentType": "x/y"}) == []
