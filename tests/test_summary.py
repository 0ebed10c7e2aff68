"""Unit tests for app.fhir.summary: _summary and _elements subsets (spec search.html)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.jsonio import dumps, parse_json
from app.fhir.summary import (
    MAX_ELEMENTS,
    SUBSETTED_CODE,
    SUBSETTED_SYSTEM,
    SUMMARY_MODES,
    TABLE_PATH,
    ElementSelection,
    is_subsetted,
    parse_elements,
    parse_summary,
    select_elements,
    summarize,
)
from tests.support.fhir_package import r4b_package

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = Path(__file__).parent / "fixtures" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
TABLE: dict[str, Any] = orjson.loads(TABLE_PATH.read_bytes())["types"]


def _parse(body: dict[str, Any] | str | bytes) -> Any:
    """Decode like the server does (decimals become ExactDecimal)."""
    if isinstance(body, dict):
        body = orjson.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    return parse_json(raw, max_depth=64)


def _example(name: str) -> Any:
    return _parse((EXAMPLES_DIR / name).read_bytes())


def _tags(resource: dict[str, Any]) -> list[Any]:
    tags: list[Any] = resource.get("meta", {}).get("tag", [])
    return tags


def _subsetted_count(resource: dict[str, Any]) -> int:
    return sum(
        1
        for t in _tags(resource)
        if t.get("system") == SUBSETTED_SYSTEM and t["code"] == "SUBSETTED"
    )


def _without_tag(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with the SUBSETTED tag (and a meta holding only it) taken out again."""
    out = dict(resource)
    meta = dict(out.get("meta", {}))
    tags = [t for t in meta.get("tag", []) if t.get("code") != SUBSETTED_CODE]
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


# --- the generated table ------------------------------------------------------------------


def test_table_covers_every_concrete_resource_type() -> None:
    json_types = orjson.loads((ROOT / "schemas" / "fhir" / "json_types.json").read_bytes())
    assert sorted(TABLE) == json_types["resourceTypes"]
    assert len(TABLE) == 141


def test_table_entries_are_consistent() -> None:
    for name, entry in TABLE.items():
        elements = entry["elements"]
        assert len(set(elements)) == len(elements), name
        assert set(entry["summary"]) <= set(elements), name
        assert set(entry["mandatory"]) <= set(elements), name
        for base, keys in entry["choices"].items():
            assert base not in elements, name
            assert all(k.startswith(base) and k in elements for k in keys), name
        # Resource.id and Resource.meta are summary elements of every resource.
        assert {"id", "meta", "implicitRules"} <= set(entry["summary"]), name


def test_table_patient_follows_the_definitions() -> None:
    patient = TABLE["Patient"]
    assert patient["summary"] == [
        "id",
        "meta",
        "implicitRules",
        "identifier",
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "deceasedBoolean",
        "deceasedDateTime",
        "address",
        "managingOrganization",
        "link",
    ]
    assert patient["mandatory"] == []
    assert patient["choices"] == {
        "deceased": ["deceasedBoolean", "deceasedDateTime"],
        "multipleBirth": ["multipleBirthBoolean", "multipleBirthInteger"],
    }
    assert {"text", "contained", "extension", "modifierExtension", "language"}.isdisjoint(
        patient["summary"]
    )


def test_table_mandatory_choice_elements_are_expanded() -> None:
    assert TABLE["Observation"]["mandatory"] == ["status", "code"]
    assert TABLE["MedicationRequest"]["mandatory"] == [
        "status",
        "intent",
        "medicationCodeableConcept",
        "medicationReference",
        "subject",
    ]
    assert TABLE["Bundle"]["mandatory"] == ["type"]
    assert "text" not in TABLE["Bundle"]["elements"]  # Bundle is not a DomainResource
    assert len(TABLE["Observation"]["choices"]["value"]) == 11


def test_generator_reproduces_the_committed_file(tmp_path: Path) -> None:
    package = r4b_package()
    out = tmp_path / "summary_elements.json"
    script = ROOT / "scripts" / "gen_summary_elements.py"
    subprocess.run(
        [sys.executable, str(script), str(package), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == TABLE_PATH.read_bytes()


# --- parse_summary --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SUMMARY_MODES)
def test_parse_summary_accepts_the_five_codes(mode: str) -> None:
    assert parse_summary(mode) == mode


@pytest.mark.parametrize("raw", ["", "TRUE", "True", "yes", "1", "true ", "summary", "text,data"])
def test_parse_summary_refuses_anything_else(raw: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_summary(raw)
    assert info.value.status == 400
    assert info.value.code == "invalid"
    assert info.value.expression == ("_summary",)


# --- summarize ------------------------------------------------------------------------------


def test_summary_true_keeps_only_summary_elements_of_patient() -> None:
    patient = _example("Patient-example.json")
    before = copy.deepcopy(patient)
    out = summarize(patient, "true")
    assert list(out) == [
        "resourceType",
        "id",
        "meta",
        "identifier",
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "_birthDate",  # the extension of birthDate goes with it
        "deceasedBoolean",
        "address",
        "managingOrganization",
    ]
    assert out["name"] is patient["name"]  # nested values are returned whole
    assert _subsetted_count(out) == 1
    assert patient == before  # the input is never changed


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_summary_true_on_every_example(path: Path) -> None:
    resource = _parse(path.read_bytes())
    summary = set(TABLE[resource["resourceType"]]["summary"])
    out = summarize(resource, "true")
    for key in out:
        assert key == "resourceType" or key.lstrip("_") in summary, key
    for key in resource:
        if key.lstrip("_") in summary:
            assert out[key] is resource[key]
    # Every example has a narrative, which is never a summary element.
    assert "text" in resource and "text" not in out
    assert _subsetted_count(out) == 1


def test_summary_true_keeps_the_present_choice_type() -> None:
    observation = _example("Observation-example.json")
    out = summarize(observation, "true")
    assert "valueQuantity" in out and "effectiveDateTime" in out
    assert "category" not in out  # Observation.category is not a summary element


def test_summary_true_without_removal_adds_no_tag() -> None:
    bundle = {"resourceType": "Bundle", "id": "b", "type": "searchset", "total": 0}
    out = summarize(bundle, "true")
    assert out == bundle and out is not bundle
    assert "meta" not in out


def test_summary_text_keeps_id_meta_text_and_mandatory_elements() -> None:
    observation = _example("Observation-example.json")
    observation["meta"] = {"versionId": "3"}
    out = summarize(observation, "text")
    assert list(out) == ["resourceType", "id", "text", "status", "code", "meta"]
    assert out["meta"]["versionId"] == "3"
    assert _subsetted_count(out) == 1


def test_summary_text_keeps_a_mandatory_choice_element() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "paracetamol"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2024-01-02",
        "note": [{"text": "with food"}],
    }
    out = summarize(request, "text")
    assert set(out) == {
        "resourceType",
        "id",
        "meta",
        "status",
        "intent",
        "medicationCodeableConcept",
        "subject",
    }


def test_summary_text_drops_primitive_extensions_of_dropped_elements() -> None:
    patient = _example("Patient-example.json")
    out = summarize(patient, "text")
    assert list(out) == ["resourceType", "id", "meta", "text"]


def test_summary_text_on_a_resource_without_narrative() -> None:
    binary = {"resourceType": "Binary", "id": "x", "contentType": "text/plain", "data": "aGk="}
    out = summarize(binary, "text")
    assert _without_tag(out) == {"resourceType": "Binary", "id": "x", "contentType": "text/plain"}


def test_summary_data_removes_only_the_narrative() -> None:
    careplan = _example("CarePlan-example.json")
    out = summarize(careplan, "data")
    assert "text" not in out
    assert _without_tag(out) == {k: v for k, v in careplan.items() if k != "text"}
    assert _subsetted_count(out) == 1


def test_summary_data_without_narrative_is_unchanged_and_untagged() -> None:
    patient = {"resourceType": "Patient", "id": "p", "active": True, "extension": []}
    out = summarize(patient, "data")
    assert out == patient and out is not patient
    assert not is_subsetted(out)


def test_summary_false_is_the_resource_itself() -> None:
    patient = _example("Patient-example.json")
    assert summarize(patient, "false") is patient


@pytest.mark.parametrize("mode", ["count", "TRUE", "", "elements"])
def test_summary_refuses_modes_it_does_not_apply(mode: str) -> None:
    with pytest.raises(ValueError):
        summarize({"resourceType": "Patient"}, mode)


def test_summary_of_an_unknown_resource_type_is_a_bug() -> None:
    with pytest.raises(ValueError):
        summarize({"resourceType": "NotAType", "id": "x"}, "true")
    with pytest.raises(ValueError):
        summarize({"id": "x"}, "data")


def test_summary_drops_unknown_keys_except_under_data() -> None:
    patient = {"resourceType": "Patient", "id": "p", "fhir_comments": ["x"], "gender": "male"}
    assert "fhir_comments" not in summarize(patient, "true")
    assert "fhir_comments" in summarize(patient, "data")


# --- the SUBSETTED tag ------------------------------------------------------------------------


def test_subsetted_tag_is_added_to_a_new_meta_after_the_id() -> None:
    out = summarize(_example("Observation-example.json"), "data")
    assert list(out)[:3] == ["resourceType", "id", "meta"]
    assert out["meta"] == {
        "tag": [{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED", "display": "subsetted"}]
    }
    assert is_subsetted(out)


def test_existing_meta_and_tags_are_kept_and_not_mutated() -> None:
    patient = _example("Patient-example.json")
    work = {"system": "http://example.org/tags", "code": "needs-review"}
    patient["meta"] = {"versionId": "7", "lastUpdated": "2024-05-01T00:00:00Z", "tag": [work]}
    before = copy.deepcopy(patient)
    for out in (summarize(patient, "true"), select_elements(patient, ["name"])):
        assert out["meta"]["versionId"] == "7"
        assert out["meta"]["lastUpdated"] == "2024-05-01T00:00:00Z"
        assert out["meta"]["tag"][0] == work
        assert out["meta"]["tag"][1]["code"] == "SUBSETTED"
        assert len(out["meta"]["tag"]) == 2
    assert patient == before
    assert patient["meta"]["tag"] == [work]


def test_subsetted_tag_is_not_added_twice() -> None:
    tag = {"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}
    patient = {"resourceType": "Patient", "meta": {"tag": [tag]}, "text": {"status": "empty"}}
    out = summarize(patient, "data")
    assert out["meta"]["tag"] == [tag]
    # A SUBSETTED code from another system is a different tag.
    other = {"system": "http://example.org", "code": "SUBSETTED"}
    patient["meta"] = {"tag": [other]}
    assert not is_subsetted(patient)
    assert summarize(patient, "data")["meta"]["tag"][0] == other
    assert _subsetted_count(summarize(patient, "data")) == 1


# --- decimals ---------------------------------------------------------------------------------


def test_decimals_keep_their_exact_text() -> None:
    raw = (
        b'{"resourceType":"Observation","id":"d","status":"final","code":{"text":"x"},'
        b'"text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\">x</div>"},'
        b'"valueQuantity":{"value":1.50,"unit":"mg"},'
        b'"referenceRange":[{"low":{"value":1.0E+2}}],'
        b'"component":[{"code":{"text":"y"},"valueQuantity":{"value":0.000}}]}'
    )
    observation = _parse(raw)
    for out in (
        summarize(observation, "true"),
        summarize(observation, "data"),
        select_elements(observation, ["value", "referenceRange", "component"]),
    ):
        text = dumps(out)
        assert b'"value":1.50' in text
        assert b'"value":0.000' in text
    assert b'"value":1.0E+2' in dumps(summarize(observation, "data"))


def test_decimals_of_an_official_example_survive() -> None:
    out = summarize(_example("Observation-bmd.json"), "true")
    assert b'"value":0.887' in dumps(out)


# --- parse_elements -----------------------------------------------------------------------------


def test_parse_elements_splits_known_and_unknown_names() -> None:
    selection = parse_elements("Patient", "identifier,active")
    assert selection == ElementSelection(("identifier", "active"), ())
    assert parse_elements("Patient", "name,foo,name.given,_birthDate,resourceType") == (
        ("name",),
        ("foo", "name.given", "_birthDate", "resourceType"),
    )


def test_parse_elements_strips_blanks_and_duplicates() -> None:
    assert parse_elements("Patient", " identifier , ,active,identifier,,foo,foo") == (
        ("identifier", "active"),
        ("foo",),
    )


def test_parse_elements_choice_names() -> None:
    assert parse_elements("Observation", "value,value[x],effective[x]").names == (
        "value",
        "effective",
    )
    assert parse_elements("Observation", "valueQuantity").names == ("valueQuantity",)
    # [x] only fits a choice element; a choice name is not an element with [x].
    assert parse_elements("Observation", "status[x],valueQuantity[x]").unknown == (
        "status[x]",
        "valueQuantity[x]",
    )


def test_parse_elements_base_resource_elements_are_known() -> None:
    names = "id,meta,implicitRules,language,text,contained,extension,modifierExtension"
    assert parse_elements("Observation", names).unknown == ()
    # Bundle is not a DomainResource: it has no text.
    assert parse_elements("Bundle", "text,entry").unknown == ("text",)


def test_parse_elements_bounds_the_number_of_names() -> None:
    assert len(parse_elements("Patient", ",".join(["name"] * MAX_ELEMENTS)).names) == 1
    with pytest.raises(TooCostly) as info:
        parse_elements("Patient", ",".join(["name"] * (MAX_ELEMENTS + 1)))
    assert info.value.status == 400
    assert info.value.expression == ("_elements",)


@pytest.mark.parametrize("raw", ["", ",", " , ,"])
def test_parse_elements_needs_a_name(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_elements("Patient", raw)


def test_parse_elements_of_an_unknown_type_is_a_bug() -> None:
    with pytest.raises(ValueError):
        parse_elements("Resource", "id")


# --- select_elements ----------------------------------------------------------------------------


def test_select_elements_keeps_the_named_and_the_identifying_elements() -> None:
    patient = _example("Patient-example.json")
    before = copy.deepcopy(patient)
    out = select_elements(patient, parse_elements("Patient", "identifier,active").names)
    assert list(out) == ["resourceType", "id", "meta", "identifier", "active"]
    assert out["identifier"] is patient["identifier"]
    assert _subsetted_count(out) == 1
    assert patient == before


def test_select_elements_always_keeps_mandatory_elements() -> None:
    observation = _example("Observation-example.json")
    out = select_elements(observation, ["subject"])
    assert list(out) == ["resourceType", "id", "meta", "status", "code", "subject"]


@pytest.mark.parametrize("name", ["value", "value[x]", "valueQuantity"])
def test_select_elements_choice_selects_the_present_type(name: str) -> None:
    observation = _example("Observation-example.json")
    out = select_elements(observation, [name])
    assert out["valueQuantity"] is observation["valueQuantity"]
    assert "effectiveDateTime" not in out


def test_select_elements_other_choice_type_selects_nothing() -> None:
    observation = _example("Observation-example.json")
    assert "valueQuantity" not in select_elements(observation, ["valueString"])


def test_select_elements_keeps_primitive_extensions_with_their_element() -> None:
    patient = _example("Patient-example.json")
    out = select_elements(patient, ["birthDate"])
    assert out["_birthDate"] is patient["_birthDate"]
    assert "_birthDate" not in select_elements(patient, ["gender"])


def test_select_elements_ignores_unknown_names() -> None:
    patient = _example("Patient-example.json")
    assert select_elements(patient, ["nope", "name.given"]) == select_elements(patient, [])


def test_select_elements_with_everything_present_adds_no_tag() -> None:
    patient = {"resourceType": "Patient", "id": "p", "gender": "female"}
    out = select_elements(patient, ["gender"])
    assert out == patient
    assert not is_subsetted(out)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_select_elements_on_every_example(path: Path) -> None:
    resource = _parse(path.read_bytes())
    entry = TABLE[resource["resourceType"]]
    out = select_elements(resource, ["text"])
    keep = {"resourceType", "id", "meta", "text", *entry["mandatory"]}
    expected = {k: v for k, v in resource.items() if k in keep}
    assert _without_tag(out) == expected
    assert is_subsetted(out) == (len(expected) < len(resource))
