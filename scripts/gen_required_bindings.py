"""Generate ``schemas/fhir/required_bindings.json`` from the official FHIR R4B package.

fhir.resources validates structure and primitive formats but does not enforce
*required* terminology bindings, so a CarePlan with ``"status": "bogus"``
passes. This script precomputes, for every base resource type and every complex
datatype, the code elements with a required binding and the full set of codes
they may hold, plus which elements hold which datatype, so that
``app.fhir.bindings`` can check bodies without any terminology server,
including codes inside datatypes (``Patient.identifier.use``,
``Observation.valueQuantity.comparator``, ``Timing.repeat.periodUnit`` in a
``Dosage``, ``Extension.valueIdentifier.use``, ...).

Input: the ``hl7.fhir.r4b.core@4.3.0`` npm package (CC0), unpacked::

    cd /tmp && npm pack hl7.fhir.r4b.core@4.3.0 && tar xzf hl7.fhir.r4b.core-4.3.0.tgz

Run (from the repository root)::

    python scripts/gen_required_bindings.py /tmp/package

where the argument is the directory holding ``package.json`` and the
``StructureDefinition-*.json`` / ``ValueSet-*.json`` / ``CodeSystem-*.json``
files. ``--output`` overrides the destination file.

Output shape (all keys and code lists sorted, so the file is deterministic)::

    {
      "source": "hl7.fhir.r4b.core@4.3.0",
      "resourceTypes": ["Account", ...],
      "datatypes": {"Identifier": "Identifier", "SimpleQuantity": "Quantity", ...},
      "bindings": {"CarePlan": {"status": {"valueSet": "...", "codes": [...]}}},
      "datatypeBindings": {"Identifier": {"use": {"valueSet": "...", "codes": [...]}}},
      "elementTypes": {"Patient": {"identifier": "Identifier", "contact.name": "HumanName"},
                       "Dosage": {"timing": "Timing", "doseAndRate.doseRange": "Range"}},
      "contentReferences": {"Questionnaire": {"item.item": "item"}},
      "resourceElements": {"Bundle": ["entry.resource", ...], "CarePlan": ["contained"]},
      "skipped": {"Composition": {"confidentiality": {"valueSet": "...", "reason": "..."}}}
    }

Paths are relative to their type (no leading ``Patient.``) and use JSON keys,
so choice elements are expanded (``value[x]`` -> ``valueQuantity``).
``bindings`` holds the elements declared by resources, ``datatypeBindings``
those declared by datatypes. ``elementTypes`` maps, for resources and
datatypes alike, each element whose value is a complex datatype to that
datatype; only datatypes that can lead to a checked code are kept (in practice
nearly all, since every datatype may carry extensions and ``Extension.value[x]``
may be e.g. an ``Identifier``). ``datatypes`` lists those kept, each with the
type it is or constrains: elements typed with a profile (``Quantity`` profiled
as ``SimpleQuantity``) point at the profile, whose own snapshot is used
(``SimpleQuantity.comparator`` is prohibited there, hence not checked).
``Element`` is always listed: it is what the ``_x`` sibling of a primitive
(``_birthDate``) holds. An element listed under ``contentReferences`` has no
children of its own in the snapshot: its content is that of the referenced
element (e.g. ``Questionnaire.item.item`` repeats ``Questionnaire.item``
recursively). ``resourceElements`` lists the elements of type ``Resource``
(``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``,
...) whose value is checked as a resource of its own ``resourceType``.

Besides required bindings, a ``maxValueSet`` binding extension (the codes of a
preferred/extensible binding SHALL still come from it) is treated as required.
Elements whose value set cannot be fully enumerated from the package (external
code systems such as ``urn:ietf:bcp:13`` mime types, ``urn:ietf:bcp:47``
languages and ``urn:iso:std:iso:4217`` currencies, value sets not shipped in
the package, filters we cannot evaluate) are listed under ``skipped``, by
resource or datatype, with the reason and are not checked; so are code elements
a profile prohibits (max 0). Only primitive ``code`` elements are covered:
required bindings on ``CodeableConcept`` elements are out of scope.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "required_bindings.json"
FHIR_SD = "http://hl7.org/fhir/StructureDefinition/"
MAX_VALUE_SET = FHIR_SD + "elementdefinition-maxValueSet"

JsonObj = dict[str, Any]


class NotEnumerableError(Exception):
    """Raised when a value set cannot be fully expanded from the package alone."""


def _strip_version(url: str) -> str:
    """Drop a ``|version`` suffix from a canonical URL."""
    return url.split("|", 1)[0]


def _walk_concepts(concepts: list[JsonObj]) -> Iterator[JsonObj]:
    """Yield every concept of a CodeSystem, including nested ones."""
    for concept in concepts:
        yield concept
        yield from _walk_concepts(concept.get("concept", []))


def _find_concept(concepts: list[JsonObj], code: str) -> JsonObj | None:
    """Return the (possibly nested) concept with ``code``, if any."""
    for concept in _walk_concepts(concepts):
        if concept.get("code") == code:
            return concept
    return None


@dataclass
class Terminology:
    """Code systems and value sets of the package, with memoised expansion."""

    code_systems: dict[str, JsonObj] = field(default_factory=dict)
    value_sets: dict[str, JsonObj] = field(default_factory=dict)
    _expanded: dict[str, frozenset[str] | str] = field(default_factory=dict)

    def expand(self, url: str) -> frozenset[str]:
        """Return all codes of value set ``url`` or raise NotEnumerableError."""
        url = _strip_version(url)
        cached = self._expanded.get(url)
        if isinstance(cached, str):
            raise NotEnumerableError(cached)
        if cached is not None:
            return cached
        # Sentinel first so that a cyclic include fails instead of recursing forever.
        self._expanded[url] = f"cyclic value set include via {url}"
        try:
            codes = self._expand_uncached(url)
        except NotEnumerableError as exc:
            self._expanded[url] = str(exc)
            raise
        self._expanded[url] = codes
        return codes

    def _expand_uncached(self, url: str) -> frozenset[str]:
        value_set = self.value_sets.get(url)
        if value_set is None:
            raise NotEnumerableError(f"value set {url} is not in the package")
        compose = value_set.get("compose")
        if compose is None:
            raise NotEnumerableError(f"value set {url} has no compose")
        includes: list[JsonObj] = compose.get("include", [])
        if not includes:
            raise NotEnumerableError(f"value set {url} has no compose.include")
        codes: set[str] = set()
        for include in includes:
            codes |= self._expand_part(include)
        for exclude in compose.get("exclude", []):
            codes -= self._expand_part(exclude)
        return frozenset(codes)

    def _expand_part(self, part: JsonObj) -> frozenset[str]:
        """Expand one compose.include/exclude entry (system part ∩ value sets)."""
        result: frozenset[str] | None = None
        system = part.get("system")
        if system is not None:
            result = self._system_codes(system, part)
        elif part.get("concept") or part.get("filter"):
            raise NotEnumerableError("compose entry has concepts or filters but no system")
        # Several valueSet entries (and a system part) combine by intersection.
        for ref in part.get("valueSet", []):
            codes = self.expand(ref)
            result = codes if result is None else result & codes
        if result is None:
            raise NotEnumerableError("compose entry has neither system nor valueSet")
        return result

    def _system_codes(self, system: str, part: JsonObj) -> frozenset[str]:
        """Codes selected from one code system by an include/exclude entry."""
        explicit: list[JsonObj] = part.get("concept", [])
        filters: list[JsonObj] = part.get("filter", [])
        if explicit and not filters:
            # An explicit list is enumerable even for external systems.
            return frozenset(c["code"] for c in explicit)
        code_system = self.code_systems.get(system)
        if code_system is None:
            raise NotEnumerableError(f"code system {system} is not in the package")
        if code_system.get("content") != "complete":
            raise NotEnumerableError(
                f"code system {system} has content={code_system.get('content')!r}"
            )
        if code_system.get("caseSensitive") is False:
            # Exact string comparison in the checker would then be wrong.
            raise NotEnumerableError(f"code system {system} is case-insensitive")
        concepts: list[JsonObj] = code_system.get("concept", [])
        codes = frozenset(c["code"] for c in _walk_concepts(concepts))
        for flt in filters:
            codes &= self._apply_filter(system, code_system, flt)
        if explicit:
            codes &= frozenset(c["code"] for c in explicit)
        return codes

    def _apply_filter(self, system: str, code_system: JsonObj, flt: JsonObj) -> frozenset[str]:
        """Evaluate the trivial hierarchy filters; anything else is not enumerable."""
        prop, op, value = flt.get("property"), flt.get("op"), flt.get("value", "")
        concepts: list[JsonObj] = code_system.get("concept", [])
        everything = frozenset(c["code"] for c in _walk_concepts(concepts))
        if prop == "concept" and op == "in":
            return everything & frozenset(v.strip() for v in value.split(","))
        if prop != "concept" or op not in ("is-a", "descendent-of", "is-not-a"):
            raise NotEnumerableError(f"filter {prop} {op} {value} on {system}")
        # Nesting is only the subsumption hierarchy when the system says so and
        # no concept declares extra parents via properties.
        if code_system.get("hierarchyMeaning", "is-a") != "is-a" or any(
            p.get("code") in ("parent", "child", "subsumedBy")
            for c in _walk_concepts(concepts)
            for p in c.get("property", [])
        ):
            raise NotEnumerableError(f"filter {op} on non-nested hierarchy of {system}")
        root = _find_concept(concepts, value)
        if root is None:
            raise NotEnumerableError(f"filter {op} {value}: code not found in {system}")
        below = frozenset(c["code"] for c in _walk_concepts(root.get("concept", [])))
        if op == "descendent-of":
            return below
        subtree = below | {value}
        return subtree if op == "is-a" else everything - subtree


@dataclass
class Package:
    """The parts of the package the generator reads."""

    source: str
    # Base resource StructureDefinitions (derivation "specialization").
    resources: list[JsonObj]
    # Complex datatype StructureDefinitions by canonical URL, profiles such as
    # SimpleQuantity included (extension definitions are not).
    datatypes: dict[str, JsonObj]
    # Names of the primitive types (code, string, xhtml, ...).
    primitives: frozenset[str]
    terminology: Terminology


def load_package(package_dir: Path) -> Package:
    """Read package.json, the StructureDefinitions and the terminology."""
    meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    terminology = Terminology()
    for path in sorted(package_dir.glob("CodeSystem-*.json")):
        code_system = json.loads(path.read_text(encoding="utf-8"))
        terminology.code_systems[code_system["url"]] = code_system
    for path in sorted(package_dir.glob("ValueSet-*.json")):
        value_set = json.loads(path.read_text(encoding="utf-8"))
        terminology.value_sets[value_set["url"]] = value_set
    resources: list[JsonObj] = []
    datatypes: dict[str, JsonObj] = {}
    primitives: set[str] = set()
    for path in sorted(package_dir.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        kind = sd.get("kind")
        if kind == "resource" and sd.get("derivation") == "specialization":
            resources.append(sd)
        elif kind == "primitive-type":
            primitives.add(sd["type"])
        elif kind == "complex-type" and not (
            sd.get("type") == "Extension" and sd.get("derivation") == "constraint"
        ):
            datatypes[sd["url"]] = sd
    return Package(
        source=f"{meta['name']}@{meta['version']}",
        resources=sorted(resources, key=lambda s: str(s["type"])),
        datatypes=datatypes,
        primitives=frozenset(primitives),
        terminology=terminology,
    )


def _relative(path: str) -> str:
    """Strip the leading type name from an element path."""
    return path.split(".", 1)[1] if "." in path else ""


def _json_key(name: str, type_code: str) -> str:
    """JSON key of element ``name`` holding ``type_code`` (choices: value[x] -> valueQuantity)."""
    if name.endswith("[x]"):
        return name[:-3] + type_code[:1].upper() + type_code[1:]
    return name


def _key_path(rel: str, type_code: str) -> str:
    """``rel`` with its last segment turned into the JSON key for ``type_code``."""
    parent, _, name = rel.rpartition(".")
    key = _json_key(name, type_code)
    return f"{parent}.{key}" if parent else key


def _constraining_value_set(binding: JsonObj) -> tuple[str | None, str] | None:
    """The value set a code SHALL come from, and why: (url, "required"/"maxValueSet")."""
    if binding.get("strength") == "required":
        url = binding.get("valueSet")
        return (_strip_version(url) if url else None), "required"
    for ext in binding.get("extension", []):
        if ext.get("url") == MAX_VALUE_SET:
            url = ext.get("valueCanonical") or ext.get("valueUri")
            return (_strip_version(url) if url else None), "maxValueSet"
    return None


@dataclass
class TypeTables:
    """What one resource or datatype contributes to the output (paths relative to it)."""

    bindings: dict[str, JsonObj] = field(default_factory=dict)
    content_refs: dict[str, str] = field(default_factory=dict)
    resource_elements: list[str] = field(default_factory=list)
    element_types: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, JsonObj] = field(default_factory=dict)


class Builder:
    """Walk resource and datatype snapshots into per-type tables."""

    def __init__(self, package: Package) -> None:
        self.package = package
        self.names: dict[str, str] = {}  # datatype URL -> output name
        self.pending: list[str] = []  # datatype URLs referenced but not processed yet
        self.bases: dict[str, str] = {}  # output name -> type it is or constrains

    def datatype(self, type_entry: JsonObj, path: str) -> str | None:
        """Name of the datatype an element type refers to, or None if it is not one."""
        code: str = type_entry.get("code", "")
        if not code or code in self.package.primitives or "/" in code:
            return None  # primitives and FHIRPath system types (element ids, ...)
        if code in ("Resource", "BackboneElement", "Element"):
            return None  # nested resources and inline elements are handled by the caller
        url = FHIR_SD + code
        profiles: list[str] = type_entry.get("profile", [])
        if len(profiles) == 1:
            # A constrained type such as SimpleQuantity: use the profile's own snapshot.
            profile = self.package.datatypes.get(_strip_version(profiles[0]))
            if profile is not None and profile.get("type") == code:
                url = profile["url"]
        sd = self.package.datatypes.get(url)
        if sd is None:
            raise SystemExit(f"{path}: type {code} has no complex-type StructureDefinition")
        return self.add(sd)

    def add(self, sd: JsonObj) -> str:
        """Queue a datatype StructureDefinition; return its output name."""
        url: str = sd["url"]
        if url not in self.names:
            name = self.names[url] = str(sd["id"])
            self.bases[name] = str(sd["type"])
            self.pending.append(url)
        return self.names[url]

    def tables(self, sd: JsonObj) -> TypeTables:
        """Tables of one StructureDefinition snapshot."""
        out = TypeTables()
        elements: list[JsonObj] = sd["snapshot"]["element"]
        root: str = elements[0]["path"]
        paths = {e["path"] for e in elements}
        with_children = {p.rsplit(".", 1)[0] for p in paths if "." in p}
        prohibited: list[str] = []
        for element in elements[1:]:
            path: str = element["path"]
            rel = _relative(path)
            if any(path.startswith(p + ".") for p in prohibited):
                continue
            types: list[JsonObj] = element.get("type", [])
            type_codes = [t.get("code") for t in types]
            binding = element.get("binding")
            if element.get("max") == "0":
                # Not allowed at all in this profile (SimpleQuantity.comparator): the
                # cardinality is structural validation's business, not a binding's.
                prohibited.append(path)
                if type_codes == ["code"] and binding and _constraining_value_set(binding):
                    out.skipped[rel] = {"reason": "element is prohibited (max 0) in this profile"}
                continue
            ref = element.get("contentReference")
            if ref is not None:
                # R4B uses local references ("#Questionnaire.item"); anything
                # else, or a dangling target, cannot be followed safely.
                target = ref[1:] if ref.startswith("#") else None
                if target is not None and target in paths and target.startswith(root + "."):
                    out.content_refs[rel] = _relative(target)
                else:
                    out.skipped[rel] = {
                        "contentReference": ref,
                        "reason": "unresolvable contentReference; subtree not checked",
                    }
                continue
            if type_codes == ["Resource"]:
                out.resource_elements.append(rel)
                continue
            if path in with_children:
                continue  # inline BackboneElement/Element: its children follow
            for type_entry in types:
                name = self.datatype(type_entry, path)
                if name is not None:
                    out.element_types[_key_path(rel, type_entry["code"])] = name
            if type_codes == ["code"] and binding:
                self.code_binding(out, _key_path(rel, "code"), binding)
        return out

    def code_binding(self, out: TypeTables, key_path: str, binding: JsonObj) -> None:
        """Record a constrained code element in ``bindings`` or ``skipped``."""
        constraint = _constraining_value_set(binding)
        if constraint is None:
            return
        vs_url, why = constraint
        strength = binding.get("strength")
        note = "" if why == "required" else f" (maxValueSet of the {strength} binding)"
        if not vs_url:
            out.skipped[key_path] = {"reason": f"{why} binding without valueSet"}
            return
        try:
            codes = self.package.terminology.expand(vs_url)
        except NotEnumerableError as exc:
            out.skipped[key_path] = {"valueSet": vs_url, "reason": f"{exc}{note}"}
            return
        if not codes:
            out.skipped[key_path] = {"valueSet": vs_url, "reason": f"empty expansion{note}"}
            return
        out.bindings[key_path] = {"valueSet": vs_url, "codes": sorted(codes)}


def _live_datatypes(datatypes: dict[str, TypeTables]) -> set[str]:
    """Datatypes that hold a checked code, directly or through other datatypes."""
    live = {name for name, t in datatypes.items() if t.bindings}
    changed = True
    while changed:
        changed = False
        for name, t in datatypes.items():
            if name not in live and not live.isdisjoint(t.element_types.values()):
                live.add(name)
                changed = True
    return live


def build(package_dir: Path) -> JsonObj:
    """Build the output document from an unpacked package directory."""
    package = load_package(package_dir)
    builder = Builder(package)
    resources = {str(sd["type"]): builder.tables(sd) for sd in package.resources}
    # Primitive values' "_x" siblings are Elements (extensions only): always needed.
    builder.add(package.datatypes[FHIR_SD + "Element"])
    datatypes: dict[str, TypeTables] = {}
    while builder.pending:
        url = builder.pending.pop()
        datatypes[builder.names[url]] = builder.tables(package.datatypes[url])
    live = _live_datatypes(datatypes)
    everything = {**resources, **{n: datatypes[n] for n in sorted(live)}}
    element_types = {
        name: {key: dt for key, dt in t.element_types.items() if dt in live}
        for name, t in everything.items()
    }
    return {
        "source": package.source,
        "resourceTypes": sorted(resources),
        "datatypes": {n: builder.bases[n] for n in sorted(live)},
        "bindings": {n: t.bindings for n, t in resources.items() if t.bindings},
        "datatypeBindings": {n: datatypes[n].bindings for n in live if datatypes[n].bindings},
        "elementTypes": {n: e for n, e in element_types.items() if e},
        "contentReferences": {n: t.content_refs for n, t in everything.items() if t.content_refs},
        "resourceElements": {
            n: sorted(t.resource_elements) for n, t in everything.items() if t.resource_elements
        },
        # Unchecked elements of every datatype met, even those pruned as irrelevant.
        "skipped": {n: t.skipped for n, t in {**resources, **datatypes}.items() if t.skipped},
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "package_dir", type=Path, help="unpacked hl7.fhir.r4b.core package/ directory"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    package_dir: Path = args.package_dir
    output: Path = args.output
    if not (package_dir / "package.json").is_file():
        parser.error(f"{package_dir} does not contain package.json")
    document = build(package_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    output.write_bytes(orjson.dumps(document, option=options) + b"\n")
    n_types = len(document["bindings"])
    n_elements = sum(len(v) for v in document["bindings"].values())
    n_dt_types = len(document["datatypeBindings"])
    n_dt_elements = sum(len(v) for v in document["datatypeBindings"].values())
    n_skipped = sum(len(v) for v in document["skipped"].values())
    print(
        f"{output}: {n_elements} elements in {n_types} resource types, "
        f"{n_dt_elements} elements in {n_dt_types} datatypes, {n_skipped} skipped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
