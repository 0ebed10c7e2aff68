"""Write schemas/fhir/search_parameters.json: the FHIR R4B search parameters of every type.

Source: the official R4B definitions, npm package ``hl7.fhir.r4b.core@4.3.0`` (HL7 FHIR R4B
core package; licence CC0-1.0, as its package.json declares): the SearchParameter-*.json
files (the core parameters, i.e. those carrying the structuredefinition-standards-status
extension; the package's examples and extension-defined parameters are left out) and the
StructureDefinition-*.json files of the resources and data types (element types, for
checking and compiling the expressions).

Run (the package is ~40 MB unpacked):

    cd /tmp && npm pack hl7.fhir.r4b.core@4.3.0 && mkdir -p r4b \\
        && tar xzf hl7.fhir.r4b.core-4.3.0.tgz -C r4b
    .venv/bin/python scripts/gen_search_parameters.py [/tmp/r4b/package]

For every resource type of schemas/fhir/resource_types.json the output lists each parameter
that applies to it (its base names the type, or Resource / DomainResource for the common
parameters; a type-specific definition wins over a common one with the same code), with:

- ``type``, ``url``, ``comparators`` / ``modifiers`` / ``multipleOr`` / ``multipleAnd`` when
  the definition gives them, ``targets`` for reference parameters;
- ``expression``: the FHIRPath for this type only. Definitions shared by several types are
  unions ("AllergyIntolerance.code | Condition.code | ..."): only the branches that start
  with this type are kept; ``Resource.x`` becomes ``<Type>.x``; unscoped branches ("name |
  alias") are prefixed with the type; ``as(DateTime)`` / ``as(String)`` (FHIRPath system
  types, which match no FHIR choice element) become ``as(dateTime)`` / ``as(string)``;
- ``x.where(resolve() is T)`` is rewritten to ``x.where(<reference type check>)`` (see
  app/search/fhirpath_compile.reference_type_check and the file's ``resolveRewrite``), a plain
  FHIRPath test of Reference.reference / Reference.type, so that extraction never resolves;
  ``sourceExpression`` then keeps the official text for this type;
- ``targets`` are narrowed per type: to T for resolve() checks, otherwise to the definition's
  targets that this type's element allows (its targetProfiles); where the definition names
  none they come from the element, and stay empty (= any type) when the element allows any;
- ``components`` for composite parameters (code, type, url, relative expression);
- ``special``: ``fulltext`` (_text, _content: no expression, served by text search),
  ``engine`` (_list, _has, _type, _query, _filter: query features, never indexed) or ``geo``
  (Location near: type special, needs a spatial index of Location.position).

``elements`` and ``typeParents`` hold the R4B element definitions the expressions touch, so
that app/search/fhirpath_compile.py can compile them at load time without model classes. The
script compiles every expression with that compiler and prints a report: counts, what it
could not express or compile, targets it inferred, and values of a type the parameter type
cannot index (definition quirks extraction must skip). Output is deterministic (sorted keys).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.search.fhirpath_compile import (  # noqa: E402
    CompileError,
    ElementInfo,
    Static,
    compile_expression,
    compile_relative,
    reference_type_check,
    split_union,
    strip_parens,
)

OUT = ROOT / "schemas" / "fhir" / "search_parameters.json"
RESOURCE_TYPES = ROOT / "schemas" / "fhir" / "resource_types.json"
DEFAULT_PACKAGE = Path("/tmp/r4b/package")
PACKAGE = "hl7.fhir.r4b.core"
VERSION = "4.3.0"

STANDARDS_STATUS = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"

SPECIAL = {
    "_text": "fulltext",
    "_content": "fulltext",
    "_list": "engine",
    "_has": "engine",
    "_type": "engine",
    "_query": "engine",
    "_filter": "engine",
}
SPECIAL_TYPE = {"near": "geo"}
# Specificity: a parameter defined for the type beats DomainResource's beats Resource's.
COMMON_BASES = {"Resource": 0, "DomainResource": 1}
RESOLVE_RE = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+([A-Z][A-Za-z]+)\s*\)")
SYSTEM_CAST_RE = re.compile(
    r"(\bas\s+|\.as\(\s*|\.ofType\(\s*)(DateTime|Date|Time|String|Boolean|Integer|Decimal)\b"
)


@dataclass
class SdModel:
    """The R4B element definitions, recording which ones the compiler looked at."""

    elements: dict[str, ElementInfo]
    targets: dict[str, tuple[str, ...]]
    parents: dict[str, str]
    used: set[str] = field(default_factory=set)

    def element(self, path: str) -> ElementInfo | None:
        info = self.elements.get(path)
        if info is not None:
            self.used.add(path)
        return info

    def parent(self, type_name: str) -> str | None:
        return self.parents.get(type_name)


@dataclass
class Report:
    """What the run could not do, or did differently from the definitions' text."""

    unexpressed: list[str] = field(default_factory=list)
    not_compiled: list[str] = field(default_factory=list)
    casts: Counter[str] = field(default_factory=Counter)
    resolve_rewrites: int = 0
    narrowed_targets: list[str] = field(default_factory=list)
    inferred_targets: list[str] = field(default_factory=list)
    any_targets: list[str] = field(default_factory=list)
    odd_values: list[str] = field(default_factory=list)
    compiled: int = 0
    expressions: int = 0


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _type_code(type_entry: dict[str, Any]) -> str:
    code: str = type_entry["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in type_entry.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return str(ext["valueUrl"]).rsplit("/", 1)[-1]
        return code.rsplit(".", 1)[-1].lower()
    return code


def load_model(package: Path) -> tuple[SdModel, set[str]]:
    """Element table, reference targets, type parents; and the DomainResource types."""
    elements: dict[str, ElementInfo] = {}
    targets: dict[str, tuple[str, ...]] = {}
    parents: dict[str, str] = {}
    for file in sorted(package.glob("StructureDefinition-*.json")):
        sd = _load(file)
        if sd.get("derivation") != "specialization" or sd.get("kind") not in (
            "resource",
            "complex-type",
            "primitive-type",
        ):
            continue
        base = str(sd.get("baseDefinition", ""))
        if base.startswith(SD_PREFIX):
            parents[sd["type"]] = base.removeprefix(SD_PREFIX)
        for element in sd["snapshot"]["element"]:
            path: str = element["path"]
            if "." not in path:
                continue
            choice = path.endswith("[x]")
            path = path.removesuffix("[x]")
            ref = element.get("contentReference")
            if ref:
                elements[path] = ElementInfo(("BackboneElement",), False, ref.split("#", 1)[1])
                continue
            types = tuple(_type_code(t) for t in element.get("type", []))
            if not types:
                continue
            elements[path] = ElementInfo(types, choice)
            profiles = [
                p.removeprefix(SD_PREFIX)
                for t in element.get("type", [])
                if t["code"] in ("Reference", "canonical", "CodeableReference")
                for p in t.get("targetProfile", [])
            ]
            if profiles:
                targets[path] = tuple(profiles)
    domain: set[str] = set()
    for name in parents:
        current: str | None = name
        while current is not None and current != "DomainResource":
            current = parents.get(current)
        if current == "DomainResource":
            domain.add(name)
    return SdModel(elements, targets, parents), domain


def load_search_parameters(package: Path) -> list[dict[str, Any]]:
    """The core SearchParameter definitions of the package."""
    manifest = _load(package / "package.json")
    if manifest.get("name") != PACKAGE or manifest.get("version") != VERSION:
        raise SystemExit(f"{package} is not {PACKAGE}@{VERSION}")
    params = []
    for file in sorted(package.glob("SearchParameter-*.json")):
        sp = _load(file)
        if any(ext.get("url") == STANDARDS_STATUS for ext in sp.get("extension", [])):
            params.append(sp)
    return params


def _head(part: str) -> str:
    match = re.match(r"[A-Za-z_%][A-Za-z0-9_]*", strip_parens(part).lstrip("("))
    return match.group(0) if match else ""


def _normalise_casts(text: str, report: Report) -> str:
    def lower(match: re.Match[str]) -> str:
        report.casts[match.group(2)] += 1
        name = match.group(2)
        return match.group(1) + name[0].lower() + name[1:]

    return SYSTEM_CAST_RE.sub(lower, text)


@dataclass(frozen=True)
class Part:
    """One union branch of a definition, for one type."""

    source: str
    expression: str
    resolve_types: tuple[str, ...]


def type_parts(sp: dict[str, Any], type_name: str, report: Report) -> list[Part]:
    """The branches of sp's expression that apply to type_name, rewritten."""
    expression = sp.get("expression")
    if not expression:
        return []
    parts: list[Part] = []
    for raw in split_union(expression):
        head = _head(raw)
        text = raw
        if head == type_name:
            pass
        elif head in COMMON_BASES and head in sp["base"]:
            text = re.sub(rf"\b{head}\.", f"{type_name}.", raw, count=1)
        elif head[:1].islower() and head not in ("as", "is"):
            text = f"{type_name}.{strip_parens(raw)}"
        else:
            continue
        resolve_types = tuple(RESOLVE_RE.findall(text))
        text = RESOLVE_RE.sub(lambda m: f".where({reference_type_check(m.group(1))})", text)
        report.resolve_rewrites += len(resolve_types)
        parts.append(Part(raw, _normalise_casts(text, report), resolve_types))
    return parts


def _element_targets(expression: str, type_name: str, model: SdModel) -> set[str] | None:
    """Target types the expression's Reference elements allow (None: any type)."""
    compiled = compile_expression(expression, type_name, model)
    found: set[str] = set()
    for element in compiled.result_elements:
        elements = {element}
        if element == "CodeableReference.reference" and expression.endswith(".reference"):
            # The targets sit on the resource's CodeableReference element, one step up.
            owner = expression.removesuffix(".reference")
            elements = set(compile_expression(owner, type_name, model).result_elements)
        for path in elements:
            allowed = model.targets.get(path)
            if not allowed or "Resource" in allowed:
                return None
            found.update(allowed)
    return found


def _targets(
    sp: dict[str, Any], type_name: str, parts: list[Part], model: SdModel, report: Report
) -> list[str]:
    """The definition's targets, narrowed to what this type's elements allow; when the
    definition names none, what the elements allow (empty: any type)."""
    declared: list[str] = sorted(sp.get("target", []))
    allowed: set[str] = set()
    any_type = False
    for part in parts:
        if part.resolve_types:
            allowed.update(part.resolve_types)
            continue
        try:
            element_targets = _element_targets(part.expression, type_name, model)
        except CompileError:
            element_targets = None
        if element_targets is None:
            any_type = True
        else:
            allowed.update(element_targets)
    where = f"{type_name}.{sp['code']}"
    if not declared:
        if any_type:
            report.any_targets.append(where)
            return []
        report.inferred_targets.append(f"{where}: {','.join(sorted(allowed))}")
        return sorted(allowed)
    if any_type:
        return declared
    narrowed = [t for t in declared if t in allowed]
    if narrowed != declared:
        dropped = sorted(set(declared) - set(narrowed))
        report.narrowed_targets.append(f"{where}: -{','.join(dropped)}")
    return narrowed


# Value types an index of each parameter type can use (search.html#ptypes); anything else a
# definition's expression yields is reported, and ignored by extraction.
INDEXABLE = {
    "number": {"integer", "decimal", "positiveInt", "unsignedInt", "Range"},
    "date": {"date", "dateTime", "instant", "Period", "Timing"},
    "string": {"string", "markdown", "HumanName", "Address"},
    "token": {
        "boolean",
        "code",
        "id",
        "string",
        "uri",
        "Coding",
        "CodeableConcept",
        "Identifier",
        "ContactPoint",
        "CodeableReference",
    },
    "reference": {"Reference", "canonical", "uri", "CodeableReference", "Resource"},
    "quantity": {"Quantity", "Money", "Range", "SampledData", "Age", "Duration"},
    "uri": {"uri", "url", "canonical", "oid", "uuid"},
}


def entry_for(
    sp: dict[str, Any],
    type_name: str,
    by_url: dict[str, dict[str, Any]],
    model: SdModel,
    report: Report,
) -> dict[str, Any]:
    """The registry entry of sp for type_name."""
    code: str = sp["code"]
    entry: dict[str, Any] = {"type": sp["type"], "url": sp["url"]}
    special = SPECIAL.get(code) or (SPECIAL_TYPE.get(code) if sp["type"] == "special" else None)
    if special:
        entry["special"] = special
    for key in ("comparator", "modifier"):
        if sp.get(key):
            entry[key + "s"] = list(sp[key])
    for key in ("multipleOr", "multipleAnd"):
        if key in sp:
            entry[key] = sp[key]
    parts = type_parts(sp, type_name, report)
    where = f"{type_name}.{code}"
    if not parts:
        if sp.get("expression") or not special:
            report.unexpressed.append(f"{where}: no branch of {sp.get('expression')!r}")
        return entry
    expression = " | ".join(p.expression for p in parts)
    source = " | ".join(p.source for p in parts)
    entry["expression"] = expression
    if source != expression:
        entry["sourceExpression"] = source
    report.expressions += 1
    context: Static | None = None
    try:
        compiled = compile_expression(expression, type_name, model)
        context = compiled.result
        report.compiled += 1
        odd = sorted(compiled.result_types - INDEXABLE.get(sp["type"], compiled.result_types))
        if odd:
            report.odd_values.append(f"{where} ({sp['type']}): {', '.join(odd)}")
    except CompileError as exc:
        report.not_compiled.append(f"{where}: {exc}")
    if sp["type"] == "reference":
        entry["targets"] = _targets(sp, type_name, parts, model, report)
    if sp["type"] == "composite":
        components = []
        for component in sp.get("component", []):
            target = by_url[component["definition"]]
            relative = _normalise_casts(component["expression"], report)
            components.append(
                {
                    "code": target["code"],
                    "type": target["type"],
                    "url": target["url"],
                    "expression": relative,
                }
            )
            if context is not None:
                try:
                    compile_relative(relative, context, type_name, model)
                except CompileError as exc:
                    report.not_compiled.append(f"{where} component {target['code']}: {exc}")
        entry["components"] = components
    return entry


def build(package: Path) -> tuple[dict[str, Any], Report]:
    """The registry document and the run's report."""
    model, domain = load_model(package)
    params = load_search_parameters(package)
    by_url = {sp["url"]: sp for sp in params}
    resource_types: list[str] = _load(RESOURCE_TYPES)["resourceTypes"]
    report = Report()
    registry: dict[str, dict[str, Any]] = {}
    for type_name in resource_types:
        applicable = [
            sp
            for sp in params
            if type_name in sp["base"]
            or "Resource" in sp["base"]
            or ("DomainResource" in sp["base"] and type_name in domain)
        ]
        applicable.sort(key=lambda sp: (max(COMMON_BASES.get(b, 2) for b in sp["base"]), sp["id"]))
        chosen = {sp["code"]: sp for sp in applicable}
        registry[type_name] = {
            code: entry_for(sp, type_name, by_url, model, report)
            for code, sp in sorted(chosen.items())
        }
    check = reference_type_check("Patient").replace("Patient", "{type}")
    elements: dict[str, Any] = {}
    for path in sorted(model.used):
        info = model.elements[path]
        element: dict[str, Any] = {"types": list(info.types)}
        if info.choice:
            element["choice"] = True
        if info.content_reference:
            element["contentReference"] = info.content_reference
        elements[path] = element
    used_types = {t for info in elements.values() for t in info["types"]}
    parents = {}
    for name in sorted(used_types):
        parent = model.parents.get(name)
        if parent and parent not in ("Element", "BackboneElement"):
            parents[name] = parent
    document = {
        "source": f"{PACKAGE}@{VERSION} (SearchParameter-*.json, StructureDefinition-*.json)",
        "licence": "CC0-1.0",
        "fhirVersion": VERSION,
        "generatedBy": "scripts/gen_search_parameters.py",
        "resolveRewrite": f"x.where(resolve() is {{type}}) -> x.where({check})",
        "resourceTypes": registry,
        "elements": elements,
        "typeParents": parents,
    }
    return document, report


def main() -> None:
    package = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PACKAGE
    document, report = build(package)
    OUT.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    registry: dict[str, dict[str, Any]] = document["resourceTypes"]
    total = sum(len(params) for params in registry.values())
    print(f"{total} parameters over {len(registry)} resource types -> {OUT}")
    for name in ("CarePlan", "Goal", "ServiceRequest", "Task", "Observation", "Patient"):
        print(f"  {name}: {len(registry[name])}")
    for name in ("Consent", "EpisodeOfCare"):
        print(f"  {name}: {len(registry[name])}")
    share = report.compiled / report.expressions if report.expressions else 0.0
    print(f"expressions compiled: {report.compiled}/{report.expressions} ({share:.1%})")
    print(f"resolve() rewrites: {report.resolve_rewrites}; casts normalised: {dict(report.casts)}")
    for title, lines in (
        ("no expression for the type", report.unexpressed),
        ("not compiled", report.not_compiled),
        ("targets narrowed to the type's element", report.narrowed_targets),
        ("targets inferred (definition names none)", report.inferred_targets),
        ("targets: any type (definition names none, element allows any)", report.any_targets),
        ("values of a type the parameter type cannot index", report.odd_values),
    ):
        print(f"{title}: {len(lines)}")
        for line in lines:
            print(f"  {line}")


if __name__ == "__main__":
    main()
