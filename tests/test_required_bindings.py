"""Unit tests for the pure required-binding checker in app.fhir.bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import app.fhir.bindings as bindings_module
from app.fhir.bindings import (
    TABLE_PATH,
    BindingViolation,
    allowed_codes,
    check_required_bindings,
)
from app.fhir.jsonio import parse_json

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


# --- Codes inside datatypes (Identifier.use, Quantity.comparator, Timing.repeat, ...) ---

EXAMPLES_DIR = Path(__file__).resolve().parent / "fixtures" / "examples"
JSON_TYPES_PATH = TABLE_PATH.parent / "json_types.json"
_EXT = "http://example.org/fhir/StructureDefinition/x"


@pytest.mark.parametrize(
    ("resource_type", "body", "expected"),
    [
        pytest.param(
            "Patient",
            {"resourceType": "Patient", "identifier": [{"use": "bogus", "value": "1"}]},
            BindingViolation("Patient.identifier[0].use", "bogus", VS + "identifier-use"),
            id="patient-identifier-use",
        ),
        pytest.param(
            "Patient",
            {"resourceType": "Patient", "name": [{"use": "alias", "family": "X"}]},
            BindingViolation("Patient.name[0].use", "alias", VS + "name-use"),
            id="patient-name-use",
        ),
        pytest.param(
            "Patient",
            {"resourceType": "Patient", "telecom": [{"system": "telex", "value": "1"}]},
            BindingViolation("Patient.telecom[0].system", "telex", VS + "contact-point-system"),
            id="patient-telecom-system",
        ),
        pytest.param(
            "Patient",
            {
                "resourceType": "Patient",
                "address": [{"use": "home", "type": "both"}, {"use": "holiday"}],
            },
            BindingViolation("Patient.address[1].use", "holiday", VS + "address-use"),
            id="patient-address-use",
        ),
        pytest.param(
            "Patient",
            {"resourceType": "Patient", "contact": [{"name": {"use": "maiden-ish"}}]},
            BindingViolation("Patient.contact[0].name.use", "maiden-ish", VS + "name-use"),
            id="backbone-contact-name-use",
        ),
        pytest.param(
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": 5, "comparator": "~"},
            },
            BindingViolation(
                "Observation.valueQuantity.comparator", "~", VS + "quantity-comparator"
            ),
            id="observation-valuequantity-comparator",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "activity": [
                    {
                        "detail": {
                            "status": "scheduled",
                            "scheduledTiming": {"repeat": {"period": 2, "periodUnit": "week"}},
                        }
                    }
                ],
            },
            BindingViolation(
                "CarePlan.activity[0].detail.scheduledTiming.repeat.periodUnit",
                "week",
                VS + "units-of-time",
            ),
            id="careplan-activity-timing-periodunit",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "text": {
                    "status": "complete",
                    "div": "<div xmlns='http://www.w3.org/1999/xhtml'/>",
                },
            },
            BindingViolation("CarePlan.text.status", "complete", VS + "narrative-status"),
            id="narrative-text-status",
        ),
        pytest.param(
            "MedicationRequest",
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "dosageInstruction": [
                    {"timing": {"repeat": {"when": ["ACM", "LUNCH"], "dayOfWeek": ["mon"]}}}
                ],
            },
            BindingViolation(
                "MedicationRequest.dosageInstruction[0].timing.repeat.when[1]",
                "LUNCH",
                VS + "event-timing",
            ),
            id="dosage-timing-repeating-code",
        ),
        pytest.param(
            "MedicationRequest",
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "dosageInstruction": [
                    {"timing": {"repeat": {"boundsDuration": {"value": 1, "comparator": "=="}}}}
                ],
            },
            BindingViolation(
                "MedicationRequest.dosageInstruction[0].timing.repeat.boundsDuration.comparator",
                "==",
                VS + "quantity-comparator",
            ),
            id="duration-inside-timing-inside-dosage",
        ),
        pytest.param(
            "Condition",
            {"resourceType": "Condition", "subject": {}, "onsetAge": {"comparator": "about"}},
            BindingViolation("Condition.onsetAge.comparator", "about", VS + "quantity-comparator"),
            id="age-choice-comparator",
        ),
        pytest.param(
            "Patient",
            {
                "resourceType": "Patient",
                "extension": [{"url": _EXT, "valueIdentifier": {"use": "primary"}}],
            },
            BindingViolation(
                "Patient.extension[0].valueIdentifier.use", "primary", VS + "identifier-use"
            ),
            id="extension-valueidentifier-use",
        ),
        pytest.param(
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "component": [
                    {
                        "code": {"text": "c"},
                        "modifierExtension": [
                            {"url": _EXT, "extension": [{"url": "a", "valueCount": {"value": 1}}]},
                            {
                                "url": _EXT,
                                "extension": [{"url": "b", "valueAge": {"comparator": "!"}}],
                            },
                        ],
                    }
                ],
            },
            BindingViolation(
                "Observation.component[0].modifierExtension[1].extension[0].valueAge.comparator",
                "!",
                VS + "quantity-comparator",
            ),
            id="nested-extension-in-backbone",
        ),
        pytest.param(
            "Patient",
            {
                "resourceType": "Patient",
                "birthDate": "1970",
                "_birthDate": {"extension": [{"url": _EXT, "valueQuantity": {"comparator": "~"}}]},
            },
            BindingViolation(
                "Patient.birthDate.extension[0].valueQuantity.comparator",
                "~",
                VS + "quantity-comparator",
            ),
            id="primitive-extension-sibling",
        ),
        pytest.param(
            "Patient",
            {
                "resourceType": "Patient",
                "name": [
                    {
                        "given": ["A", "B"],
                        "_given": [
                            None,
                            {"extension": [{"url": _EXT, "valueHumanName": {"use": "x"}}]},
                        ],
                    }
                ],
            },
            BindingViolation(
                "Patient.name[0].given[1].extension[0].valueHumanName.use", "x", VS + "name-use"
            ),
            id="primitive-array-extension-sibling",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"identifier": {"use": "bogus", "value": "1"}},
            },
            BindingViolation("CarePlan.subject.identifier.use", "bogus", VS + "identifier-use"),
            id="reference-identifier-use",
        ),
        pytest.param(
            "CarePlan",
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "contained": [{"resourceType": "Patient", "telecom": [{"use": "cell"}]}],
            },
            BindingViolation(
                "CarePlan.contained[0].telecom[0].use", "cell", VS + "contact-point-use"
            ),
            id="contained-resource-datatype",
        ),
        pytest.param(
            "Bundle",
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "Patient", "identifier": [{"use": "usual"}]}},
                    {"resource": {"resourceType": "Patient", "identifier": [{"use": "main"}]}},
                ],
            },
            BindingViolation(
                "Bundle.entry[1].resource.identifier[0].use", "main", VS + "identifier-use"
            ),
            id="bundle-entry-resource-datatype",
        ),
        pytest.param(
            "Parameters",
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "a", "part": [{"name": "b", "valueQuantity": {"comparator": "<>"}}]}
                ],
            },
            BindingViolation(
                "Parameters.parameter[0].part[0].valueQuantity.comparator",
                "<>",
                VS + "quantity-comparator",
            ),
            id="parameters-part-value-choice",
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
                                "type": "quantity",
                                "initial": [{"valueQuantity": {"comparator": "="}}],
                            }
                        ],
                    }
                ],
            },
            BindingViolation(
                "Questionnaire.item[0].item[0].initial[0].valueQuantity.comparator",
                "=",
                VS + "quantity-comparator",
            ),
            id="datatype-under-contentreference",
        ),
        pytest.param(
            "ActivityDefinition",
            {
                "resourceType": "ActivityDefinition",
                "status": "draft",
                "contact": [{"telecom": [{"system": "url"}, {"system": "web"}]}],
            },
            BindingViolation(
                "ActivityDefinition.contact[0].telecom[1].system",
                "web",
                VS + "contact-point-system",
            ),
            id="contactdetail-telecom-system",
        ),
        pytest.param(
            "PlanDefinition",
            {
                "resourceType": "PlanDefinition",
                "status": "draft",
                "relatedArtifact": [{"type": "citation"}, {"type": "reference"}],
            },
            BindingViolation(
                "PlanDefinition.relatedArtifact[1].type", "reference", VS + "related-artifact-type"
            ),
            id="relatedartifact-type",
        ),
        pytest.param(
            "PlanDefinition",
            {
                "resourceType": "PlanDefinition",
                "status": "draft",
                "action": [{"trigger": [{"type": "on-create"}]}],
            },
            BindingViolation(
                "PlanDefinition.action[0].trigger[0].type", "on-create", VS + "trigger-type"
            ),
            id="triggerdefinition-type",
        ),
        pytest.param(
            "Library",
            {
                "resourceType": "Library",
                "status": "draft",
                "type": {"text": "x"},
                "dataRequirement": [
                    {"type": "Patient", "sort": [{"path": "birthDate", "direction": "up"}]}
                ],
            },
            BindingViolation(
                "Library.dataRequirement[0].sort[0].direction", "up", VS + "sort-direction"
            ),
            id="datarequirement-sort-direction",
        ),
        pytest.param(
            "Library",
            {
                "resourceType": "Library",
                "status": "draft",
                "type": {"text": "x"},
                "parameter": [{"use": "inout", "type": "string"}],
            },
            BindingViolation("Library.parameter[0].use", "inout", VS + "operation-parameter-use"),
            id="parameterdefinition-use",
        ),
        pytest.param(
            "StructureDefinition",
            {
                "resourceType": "StructureDefinition",
                "status": "draft",
                "kind": "resource",
                "derivation": "constraint",
                "snapshot": {"element": [{"path": "Patient", "binding": {"strength": "strong"}}]},
            },
            BindingViolation(
                "StructureDefinition.snapshot.element[0].binding.strength",
                "strong",
                VS + "binding-strength",
            ),
            id="elementdefinition-binding-strength",
        ),
    ],
)
def test_datatype_code_violation(
    resource_type: str, body: dict[str, Any], expected: BindingViolation
) -> None:
    assert _one(resource_type, body) == expected


def test_valid_datatype_codes_have_no_violations() -> None:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'/>"},
        "identifier": [{"use": "official", "value": "1"}, {"use": "old", "value": "2"}],
        "name": [{"use": "maiden", "given": ["A"], "_given": [{"id": "g"}]}],
        "telecom": [{"system": "phone", "use": "mobile", "value": "1"}],
        "address": [{"use": "billing", "type": "postal"}],
        "_birthDate": {"extension": [{"url": _EXT, "valueQuantity": {"comparator": ">="}}]},
        "extension": [
            {"url": _EXT, "valueTiming": {"repeat": {"when": ["HS"], "periodUnit": "d"}}}
        ],
    }
    assert check_required_bindings("Patient", body) == []


def test_all_violations_inside_datatypes_are_reported() -> None:
    body = {
        "resourceType": "Patient",
        "identifier": [{"use": "a"}, {"use": "b"}],
        "telecom": [{"system": "c", "use": "d"}],
    }
    expressions = [v.expression for v in check_required_bindings("Patient", body)]
    assert expressions == [
        "Patient.identifier[0].use",
        "Patient.identifier[1].use",
        "Patient.telecom[0].system",
        "Patient.telecom[0].use",
    ]


def test_simple_quantity_uses_its_own_snapshot() -> None:
    # Range.low/high, Dosage doseQuantity, referenceRange.low are SimpleQuantity, whose
    # snapshot prohibits comparator (max 0): cardinality is not this checker's business.
    assert allowed_codes("Observation", "referenceRange.low.comparator") is None
    assert allowed_codes("Observation", "valueQuantity.comparator") == frozenset(
        {"<", "<=", ">=", ">"}
    )
    body = {
        "resourceType": "Observation",
        "referenceRange": [{"low": {"value": 1, "comparator": "bogus"}}],
    }
    assert check_required_bindings("Observation", body) == []
    table = orjson.loads(TABLE_PATH.read_bytes())
    assert table["datatypes"]["SimpleQuantity"] == "Quantity"
    assert table["elementTypes"]["Range"]["low"] == "SimpleQuantity"
    assert "comparator" in table["skipped"]["SimpleQuantity"]


@pytest.mark.parametrize(
    ("type_name", "path", "needle"),
    [
        pytest.param("Attachment", "contentType", "urn:ietf:bcp:13", id="attachment-mime"),
        pytest.param("Signature", "sigFormat", "urn:ietf:bcp:13", id="signature-mime"),
        pytest.param("Money", "currency", "urn:iso:std:iso:4217", id="money-currency"),
        pytest.param("Patient", "language", "urn:ietf:bcp:47", id="resource-language"),
        pytest.param("Attachment", "language", "urn:ietf:bcp:47", id="attachment-language"),
        pytest.param("Binary", "contentType", "urn:ietf:bcp:13", id="binary-mime"),
    ],
)
def test_unenumerable_datatype_elements_are_listed_as_skipped(
    type_name: str, path: str, needle: str
) -> None:
    table = orjson.loads(TABLE_PATH.read_bytes())
    assert needle in table["skipped"][type_name][path]["reason"]
    assert allowed_codes(type_name, path) is None


def test_skipped_datatype_elements_are_not_checked() -> None:
    body = {
        "resourceType": "Patient",
        "language": "xx-nonsense",
        "photo": [{"contentType": "not/a-mime", "language": "zz"}],
        "extension": [{"url": _EXT, "valueMoney": {"value": 1, "currency": "XXX1"}}],
    }
    assert check_required_bindings("Patient", body) == []


def test_allowed_codes_through_datatypes() -> None:
    use = allowed_codes("Patient", "identifier.use")
    assert use is not None and "official" in use
    assert allowed_codes("Identifier", "use") == use
    assert allowed_codes("Patient", "contact.name.use") == allowed_codes("HumanName", "use")
    periods = allowed_codes("CarePlan", "activity.detail.scheduledTiming.repeat.periodUnit")
    assert periods == frozenset({"s", "min", "h", "d", "wk", "mo", "a"})
    assert allowed_codes("Patient", "identifier") is None  # an object, not a code
    assert allowed_codes("Patient", "nope.use") is None
    assert allowed_codes("NotAType", "use") is None


def test_wrong_json_shapes_are_skipped_not_crashing() -> None:
    body = {
        "resourceType": "Patient",
        "identifier": ["official", None, 3, {"use": 5}],
        "name": {"use": {"value": "x"}},
        "text": "generated",
        "_gender": "x",
        "": {"use": "x"},
    }
    assert check_required_bindings("Patient", body) == []
    assert check_required_bindings("Patient", []) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.stem) for p in sorted(EXAMPLES_DIR.glob("*.json"))],
)
def test_official_examples_have_no_violations(path: Path) -> None:
    body = parse_json(path.read_bytes(), max_depth=64)
    assert isinstance(body, dict)
    assert check_required_bindings(body["resourceType"], body) == []


def test_element_types_agree_with_json_types_table() -> None:
    """Every key of the binding tables is a key json_types.json gives the same type."""
    json_types = orjson.loads(JSON_TYPES_PATH.read_bytes())
    types: dict[str, dict[str, dict[str, str]]] = json_types["types"]
    document = orjson.loads(TABLE_PATH.read_bytes())
    bases: dict[str, str] = document["datatypes"]
    tables = bindings_module._load()
    names = {id(table): name for name, table in tables.datatypes.items()}
    stack = [(name, tables.resources[name]) for name in json_types["resourceTypes"]]
    stack += [(bases[name], table) for name, table in tables.datatypes.items()]
    seen: set[tuple[str, int]] = set()
    linked = 0
    while stack:
        type_name, table = stack.pop()
        if (type_name, id(table)) in seen:
            continue
        seen.add((type_name, id(table)))
        kinds = {**types[type_name]["single"], **types[type_name]["array"]}
        assert set(table) <= set(kinds), (type_name, set(table) - set(kinds))
        for key, kind in kinds.items():
            spec = table.get(key)
            if key.startswith("_"):
                assert spec is None  # "_x" siblings are handled generically as Element
            elif kind.startswith(("complex:", "backbone:")):
                assert spec is not None and spec[0] == bindings_module._OBJECT, (type_name, key)
                target = kind.partition(":")[2]
                if kind.startswith("complex:"):
                    assert bases[names[id(spec[1])]] == target, (type_name, key)
                stack.append((target, spec[1]))
                linked += 1
            elif kind == "resource":
                assert spec is not None and spec[0] == bindings_module._RESOURCE
            elif spec is not None:
                assert spec[0] == bindings_module._CODE and kind == "string", (type_name, key)
    assert linked > 3000
