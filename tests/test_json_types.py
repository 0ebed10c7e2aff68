"""Unit tests for app.fhir.json_types: FHIR JSON representation of primitives and arrays."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from app.fhir.json_types import TABLE_PATH, JsonTypeViolation, check_json_types
from app.fhir.jsonio import parse_json

EXAMPLES = sorted((Path(__file__).parent / "fixtures" / "examples").glob("*.json"))


def _parse(body: dict[str, Any] | str) -> Any:
    """Decode like the server does (floats become Decimals)."""
    raw = body if isinstance(body, str) else orjson.dumps(body).decode()
    return parse_json(raw.encode(), max_depth=64)


def _check(text: str) -> list[JsonTypeViolation]:
    body = _parse(text)
    return check_json_types(body["resourceType"], body)


def _only(text: str) -> JsonTypeViolation:
    found = _check(text)
    assert len(found) == 1, found
    return found[0]


# (id, body, expression, message)
BAD_VALUES = [
    (
        "boolean-as-string",
        '{"resourceType": "Patient", "active": "yes"}',
        "Patient.active",
        "expected a JSON boolean, got a string",
    ),
    (
        "boolean-as-integer",
        '{"resourceType": "Patient", "active": 1}',
        "Patient.active",
        "expected a JSON boolean, got an integer",
    ),
    (
        "integer-as-string",
        '{"resourceType": "Patient", "multipleBirthInteger": "2"}',
        "Patient.multipleBirthInteger",
        "expected a JSON integer, got a string",
    ),
    (
        "integer-as-decimal",
        '{"resourceType": "Patient", "multipleBirthInteger": 2.0}',
        "Patient.multipleBirthInteger",
        "expected a JSON integer, got a decimal number (2.0)",
    ),
    (
        "integer-as-boolean",
        '{"resourceType": "Patient", "multipleBirthInteger": true}',
        "Patient.multipleBirthInteger",
        "expected a JSON integer, got a boolean",
    ),
    (
        "decimal-as-string",
        '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
        ' "valueQuantity": {"value": "1.5"}}',
        "Observation.valueQuantity.value",
        "expected a JSON number, got a string",
    ),
    (
        "decimal-as-boolean",
        '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
        ' "valueQuantity": {"value": false}}',
        "Observation.valueQuantity.value",
        "expected a JSON number, got a boolean",
    ),
    (
        "extension-valueInteger-as-decimal",
        '{"resourceType": "Patient",'
        ' "extension": [{"url": "http://e.org/x", "valueInteger": 1.0}]}',
        "Patient.extension[0].valueInteger",
        "expected a JSON integer, got a decimal number (1.0)",
    ),
    (
        "code-as-number",
        '{"resourceType": "Patient", "gender": 1}',
        "Patient.gender",
        "expected a JSON string, got an integer",
    ),
    (
        "date-as-number",
        '{"resourceType": "Patient", "birthDate": 19740612}',
        "Patient.birthDate",
        "expected a JSON string, got an integer",
    ),
    (
        "string-as-number",
        '{"resourceType": "Patient", "name": [{"family": 5.5}]}',
        "Patient.name[0].family",
        "expected a JSON string, got a decimal number (5.5)",
    ),
    (
        "repeating-string-item-as-number",
        '{"resourceType": "Patient", "name": [{"given": ["Jim", 7]}]}',
        "Patient.name[0].given[1]",
        "expected a JSON string, got an integer",
    ),
    (
        "id-as-number",
        '{"resourceType": "Patient", "id": 123}',
        "Patient.id",
        "expected a JSON string, got an integer",
    ),
    (
        "positiveInt-deep-in-careplan",
        '{"resourceType": "CarePlan", "status": "active", "intent": "plan",'
        ' "subject": {"reference": "Patient/1"}, "activity": [{"detail": {"status": "scheduled",'
        ' "scheduledTiming": {"repeat": {"frequency": "1", "period": 1, "periodUnit": "d"}}}}]}',
        "CarePlan.activity[0].detail.scheduledTiming.repeat.frequency",
        "expected a JSON integer, got a string",
    ),
    (
        "unsignedInt-as-string",
        '{"resourceType": "Patient", "photo": [{"size": "10"}]}',
        "Patient.photo[0].size",
        "expected a JSON integer, got a string",
    ),
    (
        "xhtml-as-number",
        '{"resourceType": "Patient", "text": {"status": "generated", "div": 1}}',
        "Patient.text.div",
        "expected a JSON string, got an integer",
    ),
    (
        "complex-as-string",
        '{"resourceType": "Patient", "maritalStatus": "married"}',
        "Patient.maritalStatus",
        "expected a JSON object, got a string",
    ),
    (
        "null-property",
        '{"resourceType": "Patient", "active": null}',
        "Patient.active",
        "expected a JSON boolean, got null",
    ),
    (
        "empty-object",
        '{"resourceType": "Patient", "maritalStatus": {}}',
        "Patient.maritalStatus",
        "expected a non-empty JSON object, got an empty object",
    ),
]


@pytest.mark.parametrize(
    ("body", "expression", "message"),
    [case[1:] for case in BAD_VALUES],
    ids=[case[0] for case in BAD_VALUES],
)
def test_bad_primitive_is_caught(body: str, expression: str, message: str) -> None:
    assert _only(body) == JsonTypeViolation(expression, message)


# (id, body, expression, message fragment)
BAD_CARDINALITY = [
    (
        "repeating-as-object",
        '{"resourceType": "Patient", "name": {"family": "x"}}',
        "Patient.name",
        "expected a JSON array (the element repeats), got an object",
    ),
    (
        "repeating-primitive-as-string",
        '{"resourceType": "Patient", "name": [{"given": "Jim"}]}',
        "Patient.name[0].given",
        "expected a JSON array (the element repeats), got a string",
    ),
    (
        "single-as-array",
        '{"resourceType": "Patient", "gender": ["male"]}',
        "Patient.gender",
        "expected a single JSON string, got an array (the element does not repeat)",
    ),
    (
        "single-complex-as-array",
        '{"resourceType": "Patient", "maritalStatus": [{"text": "married"}]}',
        "Patient.maritalStatus",
        "expected a single JSON object, got an array (the element does not repeat)",
    ),
    (
        "empty-array",
        '{"resourceType": "Patient", "name": []}',
        "Patient.name",
        "expected a non-empty JSON array, got an empty array",
    ),
    (
        "repeating-as-null",
        '{"resourceType": "Patient", "identifier": null}',
        "Patient.identifier",
        "expected a JSON array (the element repeats), got null",
    ),
    (
        "null-item-in-complex-array",
        '{"resourceType": "Patient", "name": [{"family": "x"}, null]}',
        "Patient.name[1]",
        "expected a JSON object, got null",
    ),
]


@pytest.mark.parametrize(
    ("body", "expression", "message"),
    [case[1:] for case in BAD_CARDINALITY],
    ids=[case[0] for case in BAD_CARDINALITY],
)
def test_array_versus_single_is_caught(body: str, expression: str, message: str) -> None:
    assert _only(body) == JsonTypeViolation(expression, message)


@pytest.mark.parametrize(
    ("body", "expression", "message"),
    [
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "extension": [{"url": "http://e.org/b", "valueBoolean": "true"}]}',
            "Observation.extension[0].valueBoolean",
            "expected a JSON boolean, got a string",
            id="valueBoolean-as-string",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueString": 5}',
            "Observation.valueString",
            "expected a JSON string, got an integer",
            id="valueString-as-number",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueInteger": "5"}',
            "Observation.valueInteger",
            "expected a JSON integer, got a string",
            id="valueInteger-as-string",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueCodeableConcept": [{"text": "x"}]}',
            "Observation.valueCodeableConcept",
            "expected a single JSON object, got an array (the element does not repeat)",
            id="valueCodeableConcept-as-array",
        ),
        pytest.param(
            '{"resourceType": "Patient", "deceasedBoolean": "false"}',
            "Patient.deceasedBoolean",
            "expected a JSON boolean, got a string",
            id="deceasedBoolean-as-string",
        ),
    ],
)
def test_choice_types(body: str, expression: str, message: str) -> None:
    assert _only(body) == JsonTypeViolation(expression, message)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueBoolean": true, "extension": [{"url": "http://e.org/s", "valueString": "5"}]}',
            id="valueBoolean-and-valueString",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueQuantity": {"value": 1.50, "unit": "mg"}}',
            id="decimal-with-fraction",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueQuantity": {"value": 2}}',
            id="decimal-written-as-integer",
        ),
        pytest.param(
            '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
            ' "valueQuantity": {"value": 1e3}}',
            id="decimal-with-exponent",
        ),
    ],
)
def test_valid_values_pass(body: str) -> None:
    assert _check(body) == []


def test_float_decimal_from_other_decoders_passes() -> None:
    # orjson/json give floats; they are JSON numbers all the same.
    body = orjson.loads(b'{"resourceType": "Observation", "valueQuantity": {"value": 1.5}}')
    assert check_json_types("Observation", body) == []


def test_float_integer_from_other_decoders_is_caught() -> None:
    body = orjson.loads(b'{"resourceType": "Patient", "multipleBirthInteger": 1.0}')
    assert check_json_types("Patient", body) == [
        JsonTypeViolation(
            "Patient.multipleBirthInteger", "expected a JSON integer, got a decimal number (1.0)"
        )
    ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '{"resourceType": "Patient", "active": true, "_active": {"id": "a1"}}',
            id="single-primitive-extension",
        ),
        pytest.param(
            '{"resourceType": "Patient", "_birthDate": {"extension":'
            ' [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",'
            ' "valueCode": "unknown"}]}}',
            id="extension-without-value",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim", null, "Bob"],'
            ' "_given": [null, {"id": "g2"}, null]}]}',
            id="repeating-with-null-placeholders",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim", "Bob"],'
            ' "_given": [null, {"extension":'
            ' [{"url": "http://e.org/x", "valueBoolean": true}]}]}]}',
            id="repeating-extension-only",
        ),
        pytest.param(
            '{"resourceType": "Patient", "id": "p1", "_id": {"id": "x"}}',
            id="resource-id-extension",
        ),
    ],
)
def test_primitive_extension_objects_accepted(body: str) -> None:
    assert _check(body) == []


@pytest.mark.parametrize(
    ("body", "expression", "message"),
    [
        pytest.param(
            '{"resourceType": "Patient", "active": true, "_active": "x"}',
            "Patient._active",
            "expected a JSON object, got a string",
            id="extension-as-string",
        ),
        pytest.param(
            '{"resourceType": "Patient", "active": true, "_active": [{"id": "a"}]}',
            "Patient._active",
            "expected a single JSON object, got an array (the element does not repeat)",
            id="single-extension-as-array",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim"], "_given": {"id": "g"}}]}',
            "Patient.name[0]._given",
            "expected a JSON array (the element repeats), got an object",
            id="repeating-extension-as-object",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim", null]}]}',
            "Patient.name[0].given[1]",
            "null is only allowed as a placeholder for a non-null item at _given[1]",
            id="null-without-extension",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim", null],'
            ' "_given": [null, null]}]}',
            "Patient.name[0].given[1]",
            "null is only allowed as a placeholder for a non-null item at _given[1]",
            id="null-on-both-sides",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"_given": [null, {"id": "g"}]}]}',
            "Patient.name[0]._given[0]",
            "null is only allowed as a placeholder for a non-null item at given[0]",
            id="extension-null-without-value",
        ),
        pytest.param(
            '{"resourceType": "Patient", "name": [{"given": ["Jim", "Bob"],'
            ' "_given": [{"id": "g"}]}]}',
            "Patient.name[0]._given",
            "expected 2 items to match given, got 1",
            id="extension-array-length-mismatch",
        ),
        pytest.param(
            '{"resourceType": "Patient", "_active": {"id": 5}}',
            "Patient._active.id",
            "expected a JSON string, got an integer",
            id="extension-object-content",
        ),
    ],
)
def test_primitive_extension_mistakes(body: str, expression: str, message: str) -> None:
    assert _only(body) == JsonTypeViolation(expression, message)


def test_contained_resource_checked_as_its_own_type() -> None:
    found = _check(
        '{"resourceType": "CarePlan", "status": "active", "intent": "plan",'
        ' "subject": {"reference": "#p"},'
        ' "contained": [{"resourceType": "Patient", "id": "p", "active": "yes"},'
        ' {"resourceType": "Organization", "id": "o", "active": "yes"}]}'
    )
    assert found == [
        JsonTypeViolation("CarePlan.contained[0].active", "expected a JSON boolean, got a string"),
        JsonTypeViolation("CarePlan.contained[1].active", "expected a JSON boolean, got a string"),
    ]


def test_contained_resource_uses_its_own_elements() -> None:
    # "status" is a code on Observation but not an element of Patient: skipped there.
    found = _check(
        '{"resourceType": "CarePlan", "contained": [{"resourceType": "Observation",'
        ' "status": 1}, {"resourceType": "Patient", "status": 1}]}'
    )
    assert found == [
        JsonTypeViolation("CarePlan.contained[0].status", "expected a JSON string, got an integer")
    ]


def test_bundle_entry_resource_checked_as_its_own_type() -> None:
    found = _check(
        '{"resourceType": "Bundle", "type": "transaction", "entry": ['
        ' {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "active": true},'
        '  "request": {"method": "POST", "url": "Patient"}},'
        ' {"resource": {"resourceType": "Observation", "valueQuantity": {"value": "7"}},'
        '  "request": {"method": "POST", "url": "Observation"}}]}'
    )
    assert found == [
        JsonTypeViolation(
            "Bundle.entry[1].resource.valueQuantity.value", "expected a JSON number, got a string"
        )
    ]


def test_parameters_resource_and_nested_bundle() -> None:
    found = _check(
        '{"resourceType": "Parameters", "parameter": [{"name": "r", "resource":'
        ' {"resourceType": "Bundle", "type": "collection", "total": "1",'
        ' "entry": [{"resource": {"resourceType": "Patient", "gender": ["male"]}}]}},'
        ' {"name": "n", "valueInteger": "3"}]}'
    )
    assert found == [
        JsonTypeViolation(
            "Parameters.parameter[0].resource.total", "expected a JSON integer, got a string"
        ),
        JsonTypeViolation(
            "Parameters.parameter[0].resource.entry[0].resource.gender",
            "expected a single JSON string, got an array (the element does not repeat)",
        ),
        JsonTypeViolation(
            "Parameters.parameter[1].valueInteger", "expected a JSON integer, got a string"
        ),
    ]


def test_content_reference_recurses() -> None:
    # Questionnaire.item.item is a contentReference to Questionnaire.item.
    found = _check(
        '{"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "1",'
        ' "type": "group", "item": [{"linkId": "1.1", "type": "integer", "required": "true",'
        ' "item": [{"linkId": 5, "type": "string"}]}]}]}'
    )
    assert found == [
        JsonTypeViolation(
            "Questionnaire.item[0].item[0].required", "expected a JSON boolean, got a string"
        ),
        JsonTypeViolation(
            "Questionnaire.item[0].item[0].item[0].linkId", "expected a JSON string, got an integer"
        ),
    ]


def test_unknown_keys_and_types_are_skipped() -> None:
    body = _parse(
        '{"resourceType": "Patient", "fhir_comments": 5, "bogus": true, "_bogus": 1,'
        ' "name": [{"fhir_comments": ["x"], "nickname": 3}], "_div": 1}'
    )
    assert check_json_types("Patient", body) == []
    assert check_json_types("NoSuchType", body) == []
    assert check_json_types("Resource", body) == []  # abstract: not a checkable type


def test_nested_resource_without_a_concrete_type_is_refused() -> None:
    found = _check(
        '{"resourceType": "Bundle", "entry": [{"resource": {"active": "x"}},'
        ' {"resource": {"resourceType": 5, "active": "x"}},'
        ' {"resource": {"resourceType": "Nope", "active": "x"}},'
        ' {"resource": {"resourceType": "Resource"}}]}'
    )
    assert [v.expression for v in found] == [f"Bundle.entry[{i}].resource" for i in range(4)]
    assert all("concrete resourceType" in v.message for v in found)


def test_violations_are_reported_in_body_order() -> None:
    found = _check('{"resourceType": "Patient", "gender": 1, "active": "y", "birthDate": 2}')
    assert [v.expression for v in found] == [
        "Patient.gender",
        "Patient.active",
        "Patient.birthDate",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_official_examples_have_no_violations(path: Path) -> None:
    body = parse_json(path.read_bytes(), max_depth=64)
    assert check_json_types(body["resourceType"], body) == []


def _leaves(value: Any, expression: str) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Yield (FHIRPath-like expression, JSON path) of every primitive leaf."""
    stack: list[tuple[Any, str, tuple[str | int, ...]]] = [(value, expression, ())]
    while stack:
        node, expr, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key != "resourceType":
                    stack.append((child, f"{expr}.{key}", (*path, key)))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                stack.append((child, f"{expr}[{index}]", (*path, index)))
        elif node is not None:
            yield expr, path


def _wrong(value: Any) -> Any:
    """A value of the wrong JSON type for whatever primitive ``value`` is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    return 1


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_leaf_of_the_examples_is_checked(path: Path) -> None:
    """Mutate each primitive of each example in turn: exactly that one must be reported."""
    raw = path.read_bytes()
    original = parse_json(raw, max_depth=64)
    resource_type = original["resourceType"]
    leaves = list(_leaves(original, resource_type))
    assert leaves
    for expression, json_path in leaves:
        body = parse_json(raw, max_depth=64)
        node = body
        for step in json_path[:-1]:
            node = node[step]
        node[json_path[-1]] = _wrong(node[json_path[-1]])
        found = check_json_types(resource_type, body)
        assert [v.expression for v in found] == [expression], (expression, found)


def _keys(value: Any, expression: str) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Yield (FHIRPath-like expression, JSON path) of every object member but resourceType."""
    stack: list[tuple[Any, str, tuple[str | int, ...]]] = [(value, expression, ())]
    while stack:
        node, expr, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key != "resourceType":
                    yield f"{expr}.{key}", (*path, key)
                    stack.append((child, f"{expr}.{key}", (*path, key)))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                stack.append((child, f"{expr}[{index}]", (*path, index)))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_key_of_the_examples_has_its_cardinality_checked(path: Path) -> None:
    """Wrap each single value in an array, or unwrap each array: that key must be reported."""
    raw = path.read_bytes()
    original = parse_json(raw, max_depth=64)
    resource_type = original["resourceType"]
    keys = list(_keys(original, resource_type))
    assert keys
    for expression, json_path in keys:
        body = parse_json(raw, max_depth=64)
        node = body
        for step in json_path[:-1]:
            node = node[step]
        value = node[json_path[-1]]
        node[json_path[-1]] = value[0] if isinstance(value, list) else [value]
        found = check_json_types(resource_type, body)
        # Unwrapping a one-item "_given" also unaligns it from "given": two reports there.
        assert expression in [v.expression for v in found], (expression, found)
        assert all(v.expression.startswith(expression.rpartition(".")[0]) for v in found), found


def test_table_matches_fhir_resources_cardinality() -> None:
    """Top-level keys of every resource agree with fhir.resources on array-ness."""
    document = orjson.loads(TABLE_PATH.read_bytes())
    types = document["types"]
    assert len(document["resourceTypes"]) == 141
    compared = 0
    for resource_type in document["resourceTypes"]:
        entry = types[resource_type]
        for name, field in get_fhir_model_class(resource_type).model_fields.items():
            key = field.alias or name
            if key in ("resourceType", "fhir_comments") or key.startswith("_"):
                continue
            repeats = "List[" in str(field.annotation)
            assert key in entry["array" if repeats else "single"], (resource_type, key)
            compared += 1
    assert compared > 3500


def test_table_references_resolve() -> None:
    document = orjson.loads(TABLE_PATH.read_bytes())
    types = document["types"]
    kinds = {"boolean", "integer", "decimal", "string", "resource"}
    for name, entry in types.items():
        assert set(entry) == {"single", "array"}, name
        for group in entry.values():
            for key, kind in group.items():
                if kind.startswith(("complex:", "backbone:")):
                    assert kind.partition(":")[2] in types, (name, key, kind)
                else:
                    assert kind in kinds, (name, key, kind)
    assert types["Questionnaire#item"]["array"]["item"] == "backbone:Questionnaire#item"
    assert types["Timing#repeat"]["single"]["frequency"] == "integer"
    assert types["Narrative"]["single"]["div"] == "string"
    assert "_div" not in types["Narrative"]["single"]  # xhtml takes no extensions
    assert "_id" not in types["Element"]["single"]  # element ids are XML attributes
