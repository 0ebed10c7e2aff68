"""Unit tests for the search parameter registry and its FHIRPath compiler (pure, no server).

app.search.registry reads schemas/fhir/search_parameters.json (generated from the R4B
SearchParameter definitions by scripts/gen_search_parameters.py); app.search.fhirpath_compile
turns the expressions into walkers. Where fhirpathpy is installed, the walkers are checked
against it on the official examples in tests/fixtures/examples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.fhir.jsonio import parse_json
from app.fhir.registry import resource_types as fhir_resource_types
from app.search.fhirpath_compile import (
    CompiledComposite,
    CompiledPath,
    CompileError,
    compile_expression,
    parse,
    reference_type_check,
    split_union,
    strip_parens,
)
from app.search.registry import (
    MODIFIERS_BY_TYPE,
    PARAM_TYPES,
    REGISTRY_PATH,
    SearchParam,
    compiled,
    element_model,
    extractors,
    load_registry,
    param,
    params_for,
    resource_types,
)

EXAMPLES = sorted((Path(__file__).parent / "fixtures" / "examples").glob("*.json"))
ALL_PARAMS = [p for rt in sorted(resource_types()) for p in params_for(rt).values()]
COMMON = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
ANY_TARGET = {
    "Bundle.composition",
    "Bundle.message",
    "Ingredient.manufacturer",
    "RequestGroup.instantiates-canonical",
}


def _example(name: str) -> dict[str, Any]:
    path = Path(__file__).parent / "fixtures" / "examples" / name
    resource: dict[str, Any] = parse_json(path.read_bytes(), max_depth=64)
    return resource


def _values(resource_type: str, code: str, resource: dict[str, Any]) -> list[Any]:
    search_param = param(resource_type, code)
    assert search_param is not None
    extractor = compiled(search_param)
    assert isinstance(extractor, CompiledPath)
    return [value for _, value in extractor(resource)]


# --- contents ---------------------------------------------------------------------------

CAREPLAN_PARAMS = [
    ("subject", "reference"),
    ("patient", "reference"),
    ("status", "token"),
    ("category", "token"),
    ("date", "date"),
    ("activity-code", "token"),
    ("activity-date", "date"),
    ("activity-reference", "reference"),
    ("goal", "reference"),
    ("care-team", "reference"),
    ("encounter", "reference"),
    ("intent", "token"),
    ("identifier", "token"),
    ("condition", "reference"),
    ("performer", "reference"),
    ("based-on", "reference"),
    ("part-of", "reference"),
    ("replaces", "reference"),
    ("instantiates-canonical", "reference"),
    ("instantiates-uri", "uri"),
    ("_id", "token"),
    ("_lastUpdated", "date"),
    ("_tag", "token"),
    ("_profile", "uri"),
    ("_security", "token"),
    ("_source", "uri"),
]


@pytest.mark.parametrize(
    ("code", "param_type"), CAREPLAN_PARAMS, ids=[c for c, _ in CAREPLAN_PARAMS]
)
def test_careplan_has_parameter(code: str, param_type: str) -> None:
    search_param = param("CarePlan", code)
    assert search_param is not None
    assert search_param.type == param_type
    assert search_param.indexed


EXPECTED_CODES = {
    "Goal": {"patient", "subject", "lifecycle-status", "achievement-status", "category"},
    "ServiceRequest": {"patient", "subject", "status", "intent", "code", "requester", "performer"},
    "Task": {"patient", "subject", "status", "owner", "requester", "focus", "code", "period"},
    "Observation": {"patient", "subject", "code", "value-quantity", "code-value-quantity"},
    "Patient": {"name", "family", "given", "birthdate", "gender", "phone", "email", "deceased"},
    "Consent": {"patient", "status", "category", "scope", "actor", "period"},
    "EpisodeOfCare": {"patient", "status", "type", "care-manager", "incoming-referral"},
}


@pytest.mark.parametrize("resource_type", sorted(EXPECTED_CODES))
def test_types_have_their_parameters(resource_type: str) -> None:
    codes = set(params_for(resource_type))
    assert EXPECTED_CODES[resource_type] <= codes
    assert set(COMMON) <= codes


def test_every_resource_type_is_covered() -> None:
    assert resource_types() == fhir_resource_types()
    for resource_type in resource_types():
        assert set(COMMON) <= set(params_for(resource_type)), resource_type


def _problems(search_param: SearchParam) -> list[str]:
    problems = []
    if search_param.type not in PARAM_TYPES:
        problems.append(f"type {search_param.type}")
    if not search_param.url.startswith("http://hl7.org/fhir/SearchParameter/"):
        problems.append("url")
    if search_param.expression is None and search_param.special is None:
        problems.append("neither expression nor special")
    if search_param.type == "composite" and len(search_param.components) < 2:
        problems.append("composite without components")
    if search_param.type == "reference":
        # Empty targets = any type (SearchParameter.target), only where the definition names
        # none and the element allows any resource.
        any_type = f"{search_param.resource_type}.{search_param.code}" in ANY_TARGET
        if bool(search_param.targets) == any_type:
            problems.append(f"targets {search_param.targets}")
    return [f"{search_param.code}: {problem}" for problem in problems]


@pytest.mark.parametrize("resource_type", sorted(resource_types()))
def test_every_parameter_has_a_type_and_an_expression_or_is_special(resource_type: str) -> None:
    params = params_for(resource_type)
    assert params
    assert [problem for p in params.values() for problem in _problems(p)] == []


SPECIAL = [
    ("_text", "fulltext"),
    ("_content", "fulltext"),
    ("_list", "engine"),
    ("_has", "engine"),
    ("_type", "engine"),
    ("_query", "engine"),
    ("_filter", "engine"),
]


@pytest.mark.parametrize(("code", "kind"), SPECIAL, ids=[c for c, _ in SPECIAL])
def test_special_parameters_are_marked_and_not_indexed(code: str, kind: str) -> None:
    for resource_type in ("CarePlan", "Bundle", "Patient"):
        search_param = param(resource_type, code)
        assert search_param is not None
        assert search_param.special == kind
        assert not search_param.indexed
        assert compiled(search_param) is None


def test_location_near_is_a_geo_special() -> None:
    near = param("Location", "near")
    assert near is not None
    assert (near.type, near.special, near.expression) == ("special", "geo", "Location.position")
    assert not near.indexed


def test_domain_resource_text_wins_over_resource_text() -> None:
    careplan_text, bundle_text = param("CarePlan", "_text"), param("Bundle", "_text")
    assert careplan_text is not None and bundle_text is not None
    assert careplan_text.url.endswith("/DomainResource-text")
    assert bundle_text.url.endswith("/Resource-text")


def test_common_parameters_are_expressed_for_the_type() -> None:
    tag = param("Goal", "_tag")
    assert tag is not None
    assert (tag.expression, tag.source_expression) == ("Goal.meta.tag", "Resource.meta.tag")


# --- per-type expressions ---------------------------------------------------------------

UNION_SPLITS = [
    ("Condition", "code", "Condition.code"),
    ("Observation", "code", "Observation.code"),
    (
        "AllergyIntolerance",
        "code",
        "AllergyIntolerance.code | AllergyIntolerance.reaction.substance",
    ),
    ("MedicationRequest", "code", "(MedicationRequest.medication as CodeableConcept)"),
    ("CarePlan", "date", "CarePlan.period"),
    ("EpisodeOfCare", "date", "EpisodeOfCare.period"),
    ("Patient", "phone", "Patient.telecom.where(system='phone')"),
    ("Patient", "address-city", "Patient.address.city"),
    ("ActivityDefinition", "context", "(ActivityDefinition.useContext.value as CodeableConcept)"),
    ("InsurancePlan", "name", "InsurancePlan.name | InsurancePlan.alias"),
    ("Observation", "combo-code", "Observation.code | Observation.component.code"),
]


@pytest.mark.parametrize(
    ("resource_type", "code", "expression"),
    UNION_SPLITS,
    ids=[f"{rt}.{code}" for rt, code, _ in UNION_SPLITS],
)
def test_union_expressions_keep_only_the_types_branches(
    resource_type: str, code: str, expression: str
) -> None:
    search_param = param(resource_type, code)
    assert search_param is not None
    assert search_param.expression == expression


@pytest.mark.parametrize("resource_type", sorted(resource_types()))
def test_expressions_only_start_at_their_own_type(resource_type: str) -> None:
    for search_param in params_for(resource_type).values():
        if search_param.expression is None:
            continue
        assert "resolve(" not in search_param.expression
        for branch in split_union(search_param.expression):
            head = re.match(r"[A-Za-z_%]+", strip_parens(branch).lstrip("("))
            assert head is not None
            assert head.group(0) == resource_type, f"{search_param.code}: {branch}"


PATIENT_PARAMS = [rt for rt in sorted(resource_types()) if "patient" in params_for(rt)]


@pytest.mark.parametrize("resource_type", PATIENT_PARAMS)
def test_patient_parameters_are_references_to_patient(resource_type: str) -> None:
    patient = param(resource_type, "patient")
    assert patient is not None
    assert patient.type == "reference"
    assert patient.targets == ("Patient",)


RESOLVE_REWRITES = [
    ("CarePlan", "patient", "CarePlan.subject", "Patient"),
    ("Observation", "patient", "Observation.subject", "Patient"),
    ("Goal", "patient", "Goal.subject", "Patient"),
    ("Task", "patient", "Task.for", "Patient"),
    ("ServiceRequest", "patient", "ServiceRequest.subject", "Patient"),
    ("Consent", "patient", "Consent.patient", None),
    ("DocumentReference", "encounter", "DocumentReference.context.encounter", "Encounter"),
]


@pytest.mark.parametrize(
    ("resource_type", "code", "path", "target"),
    RESOLVE_REWRITES,
    ids=[f"{rt}.{code}" for rt, code, _, _ in RESOLVE_REWRITES],
)
def test_resolve_is_rewritten_to_a_reference_type_check(
    resource_type: str, code: str, path: str, target: str | None
) -> None:
    search_param = param(resource_type, code)
    assert search_param is not None
    if target is None:
        assert search_param.expression == path
        return
    assert search_param.source_expression == f"{path}.where(resolve() is {target})"
    assert search_param.expression == f"{path}.where({reference_type_check(target)})"


REFERENCES = [
    ("relative", {"reference": "Patient/p1"}, True),
    ("versioned", {"reference": "Patient/p1/_history/3"}, True),
    ("absolute", {"reference": "https://other.example/fhir/Patient/p1"}, True),
    ("other-type", {"reference": "Group/g1"}, False),
    ("type-only-logical", {"type": "Patient", "identifier": {"value": "123"}}, True),
    ("contained-with-type", {"reference": "#p1", "type": "Patient"}, True),
    ("contained-untyped", {"reference": "#p1"}, False),
    (
        "uuid-with-type",
        {"reference": "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7", "type": "Patient"},
        True,
    ),
    ("literal-wins-over-type", {"reference": "Group/g1", "type": "Patient"}, False),
    ("lookalike", {"reference": "XPatient/p1"}, False),
]


@pytest.mark.parametrize(
    ("reference", "is_patient"), [r[1:] for r in REFERENCES], ids=[r[0] for r in REFERENCES]
)
def test_patient_reference_check_without_resolving(
    reference: dict[str, Any], is_patient: bool
) -> None:
    careplan = {"resourceType": "CarePlan", "subject": reference}
    assert _values("CarePlan", "patient", careplan) == ([reference] if is_patient else [])
    assert _values("CarePlan", "subject", careplan) == [reference]


DECEASED = [
    ("absent", {}, [False]),
    ("false", {"deceasedBoolean": False}, [False]),
    ("true", {"deceasedBoolean": True}, [True]),
    ("date", {"deceasedDateTime": "2020-01-02"}, [True]),
]


@pytest.mark.parametrize(
    ("body", "expected"), [d[1:] for d in DECEASED], ids=[d[0] for d in DECEASED]
)
def test_patient_deceased_boolean_expression(body: dict[str, Any], expected: list[bool]) -> None:
    assert _values("Patient", "deceased", {"resourceType": "Patient", **body}) == expected


def test_choice_elements_and_casts() -> None:
    observation = _example("Observation-example.json")
    assert _values("Observation", "value-quantity", observation) == [observation["valueQuantity"]]
    assert _values("Observation", "value-concept", observation) == []
    assert _values("Observation", "date", observation) == ["2016-03-28"]
    search_param = param("Observation", "date")
    assert search_param is not None
    extractor = compiled(search_param)
    assert isinstance(extractor, CompiledPath)
    assert extractor(observation) == [("dateTime", "2016-03-28")]


def test_composite_yields_one_tuple_per_context() -> None:
    search_param = param("Observation", "component-code-value-quantity")
    assert search_param is not None
    extractor = compiled(search_param)
    assert isinstance(extractor, CompiledComposite)
    body = {
        "resourceType": "Observation",
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 1}},
            {"code": {"text": "b"}, "valueString": "x"},
        ],
    }
    assert extractor(body) == [
        ([("CodeableConcept", {"text": "a"})], [("Quantity", {"value": 1})]),
        ([("CodeableConcept", {"text": "b"})], []),
    ]


def test_union_removes_duplicates_but_keeps_decimal_precision() -> None:
    body = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": "x"},
        "reaction": [{"substance": {"text": "x"}}, {"substance": {"text": "y"}}],
    }
    assert _values("AllergyIntolerance", "code", body) == [{"text": "x"}, {"text": "y"}]
    observation = parse_json(
        b'{"resourceType":"Observation","valueQuantity":{"value":1.0},'
        b'"component":[{"code":{"text":"c"},"valueQuantity":{"value":1.00}}]}',
        max_depth=64,
    )
    values = _values("Observation", "combo-value-quantity", observation)
    assert [str(v["value"]) for v in values] == ["1.0", "1.00"]


# --- registry API -----------------------------------------------------------------------


def test_lookups() -> None:
    assert params_for("NoSuchType") == {}
    assert param("CarePlan", "no-such-code") is None
    with pytest.raises(TypeError):
        params_for("CarePlan")["x"] = params_for("CarePlan")["status"]  # type: ignore[index]


def test_allowed_modifiers() -> None:
    status, subject = param("CarePlan", "status"), param("CarePlan", "subject")
    assert status is not None and subject is not None
    assert status.allowed_modifiers == MODIFIERS_BY_TYPE["token"]
    assert {"identifier", "missing", "Patient", "Group"} <= subject.allowed_modifiers


def test_generated_file_is_sorted_and_stable() -> None:
    raw = REGISTRY_PATH.read_bytes()
    document = orjson.loads(raw)
    again = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    assert raw == again
    assert document["fhirVersion"] == "4.3.0"
    assert document["licence"] == "CC0-1.0"


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(document))
    return path


def test_project_parameters_are_merged(tmp_path: Path) -> None:
    project = _write(
        tmp_path / "project.json",
        {
            "resourceTypes": {
                "CarePlan": {
                    "care-manager": {
                        "type": "reference",
                        "url": "https://casebridge.example/SearchParameter/CarePlan-care-manager",
                        "expression": "CarePlan.author",
                        "targets": ["Practitioner"],
                    }
                }
            },
            "elements": {"CarePlan.author": {"types": ["Reference"]}},
        },
    )
    registry = load_registry(REGISTRY_PATH, project)
    added = registry.params["CarePlan"]["care-manager"]
    assert added.project and added.targets == ("Practitioner",)
    assert registry.params["CarePlan"]["status"].type == "token"
    extractor = compile_expression("CarePlan.author", "CarePlan", registry.model)
    assert extractor({"resourceType": "CarePlan", "author": {"reference": "Practitioner/1"}})


def test_project_parameters_may_not_silently_replace_fhir_ones(tmp_path: Path) -> None:
    entry = {"type": "token", "url": "https://casebridge.example/x", "expression": "CarePlan.id"}
    clash = _write(tmp_path / "clash.json", {"resourceTypes": {"CarePlan": {"status": entry}}})
    with pytest.raises(ValueError, match="override"):
        load_registry(REGISTRY_PATH, clash)
    allowed = _write(
        tmp_path / "override.json",
        {"resourceTypes": {"CarePlan": {"status": {**entry, "override": True}}}},
    )
    assert load_registry(REGISTRY_PATH, allowed).params["CarePlan"]["status"].project


def test_project_parameters_must_compile(tmp_path: Path) -> None:
    entry = {"type": "token", "url": "https://casebridge.example/x", "expression": "CarePlan.nope"}
    broken = _write(tmp_path / "broken.json", {"resourceTypes": {"CarePlan": {"x": entry}}})
    with pytest.raises(ValueError, match=r"CarePlan\.x"):
        load_registry(REGISTRY_PATH, broken)


def test_extractors_per_type() -> None:
    pairs = extractors("CarePlan")
    codes = [search_param.code for search_param, _ in pairs]
    assert codes == sorted(codes)
    assert {"patient", "status", "_id", "_tag"} <= set(codes)
    assert "_text" not in codes and "_has" not in codes
    careplan = _example("CarePlan-example.json")
    found = {
        sp.code: [v for _, v in fn(careplan)] for sp, fn in pairs if isinstance(fn, CompiledPath)
    }
    assert found["status"] == ["active"]
    assert found["patient"] == [{"reference": "Patient/example", "display": "Peter James Chalmers"}]


def test_missing_project_file_is_fine(tmp_path: Path) -> None:
    registry = load_registry(REGISTRY_PATH, tmp_path / "absent.json")
    assert "status" in registry.params["CarePlan"]


# --- compiler ---------------------------------------------------------------------------


INDEXED = [p for p in ALL_PARAMS if p.indexed]


def test_every_indexed_parameter_compiles_from_the_shipped_element_table() -> None:
    failures = []
    for search_param in INDEXED:
        try:
            compiled(search_param)
        except CompileError as exc:
            failures.append(f"{search_param.resource_type}.{search_param.code}: {exc}")
    assert failures == []
    assert len(INDEXED) > 2500


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("A.b | (A.c as T) | A.d.where(x = 'a|b')", ["A.b", "(A.c as T)", "A.d.where(x = 'a|b')"]),
        ("A.b", ["A.b"]),
        ("(A | A.c)", ["(A | A.c)"]),
    ],
    ids=["three", "one", "parenthesised"],
)
def test_split_union(text: str, parts: list[str]) -> None:
    assert split_union(text) == parts


def test_strip_parens() -> None:
    assert strip_parens("((A.b as T))") == "A.b as T"
    assert strip_parens("(A.b as T).c") == "(A.b as T).c"
    assert strip_parens("(A.b) | (A.c)") == "(A.b) | (A.c)"


@pytest.mark.parametrize(
    "expression",
    [
        "CarePlan.subject.where(resolve() is Patient)",
        "CarePlan.extension('http://x')",
        "CarePlan.noSuchElement",
        "Patient.name",
        "CarePlan.period as Quantity",
    ],
    ids=["resolve", "extension-function", "unknown-element", "other-type", "impossible-cast"],
)
def test_compile_errors(expression: str) -> None:
    with pytest.raises(CompileError):
        compile_expression(expression, "CarePlan", element_model())


def test_parser_reads_literals_and_escapes() -> None:
    node = parse(r"a.where(b = 'it\'s' and c = true and d != 1.50)")
    assert "it's" in repr(node) and "Decimal('1.50')" in repr(node)


# --- against fhirpathpy -----------------------------------------------------------------


def _lenient(expression: str) -> str:
    """fhirpathpy insists on a single item left of `as` (FHIRPath R4 strictness); the
    walkers filter like servers do (R5 wrote these as ofType). Same meaning otherwise."""
    expression = re.sub(r"\(([^()]*?) as (\w+)\)", r"\1.ofType(\2)", expression)
    return re.sub(r"\.as\((\w+)\)", r".ofType(\1)", expression)


def _canon(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_compiled_extraction_equals_fhirpathpy(path: Path) -> None:
    fhirpathpy = pytest.importorskip("fhirpathpy")
    from fhirpathpy.models import models

    model = models["r4"]
    resource = parse_json(path.read_bytes(), max_depth=64)
    env = {"resource": resource}
    compared = 0
    for search_param in params_for(resource["resourceType"]).values():
        extractor = compiled(search_param)
        if extractor is None:
            continue
        assert search_param.expression is not None
        expression = _lenient(search_param.expression)
        if isinstance(extractor, CompiledComposite):
            # fhirpathpy's union loses node paths (which choice elements need): per branch.
            mine = [
                tuple(sorted(_canon(v) for _, v in values) for values in row)
                for row in extractor(resource)
            ]
            theirs = []
            seen: set[str] = set()
            branches = split_union(expression)
            for branch in branches:
                nodes = fhirpathpy.evaluate(resource, branch, env, model, {"returnRawData": True})
                for node in nodes:
                    key = _canon(node.data)
                    if len(branches) > 1 and key in seen:
                        continue
                    seen.add(key)
                    row = []
                    for component in search_param.components:
                        sub = {"base": node.path, "expression": _lenient(component.expression)}
                        row.append(
                            sorted(
                                _canon(v) for v in fhirpathpy.evaluate(node.data, sub, env, model)
                            )
                        )
                    theirs.append(tuple(row))
            assert sorted(map(str, mine)) == sorted(map(str, theirs)), search_param.code
        else:
            mine_values = [_canon(v) for _, v in extractor(resource)]
            theirs_values = [
                _canon(v) for v in fhirpathpy.evaluate(resource, expression, env, model)
            ]
            assert mine_values == theirs_values, search_param.code
        compared += 1
    assert compared > 0
