"""Generate ``schemas/fhir/json_types.json`` from the official FHIR R4B package.

fhir.resources coerces leniently (``"active": "yes"`` becomes ``True``, ``"2"`` becomes
``2``) and the server stores the client's bytes as received, so the JSON representation
itself must be checked against the FHIR JSON rules (https://hl7.org/fhir/R4B/json.html).
This script precomputes, for every resource type and every complex datatype, the JSON keys
it may hold, the JSON kind of each and whether it is an array; ``app.fhir.json_types``
walks request bodies with it.

Source: the ``hl7.fhir.r4b.core@4.3.0`` npm package (licence CC0-1.0), unpacked::

    cd /tmp && npm pack hl7.fhir.r4b.core@4.3.0 && tar xzf hl7.fhir.r4b.core-4.3.0.tgz

Run (from the repository root)::

    python scripts/gen_json_types.py /tmp/package

where the argument is the directory holding the ``StructureDefinition-*.json`` files.
``--output`` overrides the destination file. Only snapshot elements of StructureDefinitions
with ``derivation: specialization`` (plus the root ``Element``/``Resource``) are read;
profiles and logical models are ignored.

Output shape (keys sorted, so the file is deterministic)::

    {
      "source": "hl7.fhir.r4b.core@4.3.0",
      "fhirVersion": "4.3.0",
      "licence": "CC0-1.0",
      "primitiveKinds": {"boolean": "boolean", "positiveInt": "integer", "code": "string"},
      "resourceTypes": ["Account", ...],
      "types": {
        "Patient": {
          "single": {"active": "boolean", "_active": "complex:Element", ...},
          "array": {"name": "complex:HumanName", "contact": "backbone:Patient#contact"}
        },
        "Patient#contact": {"single": {...}, "array": {...}},
        "HumanName": {...}
      }
    }

A type entry maps each JSON key to its kind; keys under ``array`` must hold a JSON array
(max cardinality above 1), keys under ``single`` must not. Kinds are ``boolean``,
``integer``, ``decimal`` and ``string`` (primitives, by JSON representation),
``complex:<Type>`` and ``backbone:<Type>#<path>`` (JSON objects described by the entry of
that name) and ``resource`` (an object checked against its own ``resourceType``). Choice
elements are expanded (``value[x]`` -> ``valueBoolean``, ``valueQuantity``, ...);
``contentReference`` elements point at the referenced backbone entry, so
``Questionnaire#item`` lists ``item`` as ``backbone:Questionnaire#item``. Every primitive
key ``x`` that can carry extensions gets a ``_x`` sibling of kind ``complex:Element``
(element ids and ``Extension.url`` are XML attributes and ``xhtml`` forbids extensions, so
they get none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "json_types.json"
SOURCE = "hl7.fhir.r4b.core@4.3.0"

JsonObj = dict[str, Any]

_FHIRPATH_TYPE = "http://hl7.org/fhirpath/System."
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
# JSON representation of the root primitive types, keyed by the FHIRPath type of their
# ``value`` element. Anything else (String, Date, DateTime, Time) is a JSON string; so is
# R5's integer64 (System.Integer64), which json.html represents as a string.
_SYSTEM_KINDS = {"Boolean": "boolean", "Integer": "integer", "Decimal": "decimal"}
# Base types an element can declare when it defines its own children inline.
_BACKBONE_CODES = frozenset({"BackboneElement", "Element"})


def load_definitions(package_dir: Path) -> tuple[str, list[JsonObj]]:
    """Return the FHIR version and the specialisation StructureDefinitions of a package."""
    package = orjson.loads((package_dir / "package.json").read_bytes())
    version = str(package.get("fhirVersions", [package.get("version", "")])[0])
    definitions = []
    for path in sorted(package_dir.glob("StructureDefinition-*.json")):
        sd = orjson.loads(path.read_bytes())
        if sd.get("kind") == "logical" or sd.get("derivation") == "constraint":
            continue
        # Element and Resource are the roots and carry no derivation at all.
        if sd.get("derivation") != "specialization" and sd.get("type") not in (
            "Element",
            "Resource",
        ):
            continue
        definitions.append(sd)
    return version, definitions


def primitive_kinds(definitions: list[JsonObj]) -> tuple[dict[str, str], frozenset[str]]:
    """Map every primitive type to its JSON kind; also return those that allow extensions."""
    by_name = {sd["type"]: sd for sd in definitions if sd["kind"] == "primitive-type"}
    kinds: dict[str, str] = {}
    extensible: set[str] = set()
    for name, sd in by_name.items():
        root = sd
        # positiveInt.value is typed System.String in R4B, so follow the base chain
        # (positiveInt -> integer) to the root primitive and use its value type.
        while (base := root["baseDefinition"].rsplit("/", 1)[-1]) in by_name:
            root = by_name[base]
        value = next(e for e in root["snapshot"]["element"] if e["path"] == f"{root['type']}.value")
        system = value["type"][0]["code"].removeprefix(_FHIRPATH_TYPE)
        kinds[name] = _SYSTEM_KINDS.get(system, "string")
        ext = next(e for e in sd["snapshot"]["element"] if e["path"] == f"{name}.extension")
        if ext.get("max") != "0":
            extensible.add(name)
    return kinds, frozenset(extensible)


class _Builder:
    """Turn snapshot elements into the ``types`` table."""

    def __init__(self, definitions: list[JsonObj]) -> None:
        self.prims, self.extensible = primitive_kinds(definitions)
        self.complex = {sd["type"] for sd in definitions if sd["kind"] == "complex-type"}
        self.types: dict[str, dict[str, dict[str, str]]] = {}

    def _type_kind(self, type_ref: JsonObj) -> tuple[str, str | None]:
        """Return (kind, primitive type name or None) of one ElementDefinition.type."""
        code: str = type_ref["code"]
        if code.startswith(_FHIRPATH_TYPE):
            # Element.id, Resource.id, Extension.url: the FHIR type is in an extension.
            extensions = type_ref.get("extension", [])
            fhir_type = next(
                (x["valueUrl"] for x in extensions if x["url"] == _FHIR_TYPE_EXT), None
            )
            if fhir_type is None:
                return _SYSTEM_KINDS.get(code.removeprefix(_FHIRPATH_TYPE), "string"), None
            code = fhir_type
        if code in self.prims:
            return self.prims[code], code
        if code == "Resource":
            return "resource", None
        if code in self.complex:
            return f"complex:{code}", None
        raise ValueError(f"unknown type code {code!r}")

    def _add(self, table: str, key: str, kind: str, repeats: bool) -> None:
        entry = self.types.setdefault(table, {"single": {}, "array": {}})
        if key in entry["single"] or key in entry["array"]:
            raise ValueError(f"duplicate JSON key {table}.{key}")
        entry["array" if repeats else "single"][key] = kind

    def add_definition(self, sd: JsonObj) -> None:
        """Add the entry of one type and of each of its backbone elements."""
        name: str = sd["type"]
        elements: list[JsonObj] = sd["snapshot"]["element"]
        paths = {e["path"] for e in elements}
        self.types.setdefault(name, {"single": {}, "array": {}})
        for element in elements[1:]:
            path: str = element["path"]
            if element.get("max") == "0":
                continue  # prohibited, so it has no JSON key at all
            parent, _, last = path.rpartition(".")
            table = name if parent == name else f"{name}#{parent.removeprefix(name + '.')}"
            repeats = element["max"] != "1"
            if "contentReference" in element:
                target = element["contentReference"].split("#", 1)[1]
                if not target.startswith(name + ".") or target not in paths:
                    raise ValueError(f"{path}: unsupported contentReference {target!r}")
                self._add(table, last, f"backbone:{name}#{target[len(name) + 1 :]}", repeats)
                continue
            types: list[JsonObj] = element.get("type", [])
            if last.endswith("[x]"):
                stem = last[:-3]
                for type_ref in types:
                    code = type_ref["code"]
                    key = stem + code[0].upper() + code[1:]
                    self._add_typed(table, key, type_ref, repeats, element)
            elif (
                len(types) == 1
                and types[0]["code"] in _BACKBONE_CODES
                and any(p.startswith(path + ".") for p in paths)
            ):
                self._add(table, last, f"backbone:{name}#{path[len(name) + 1 :]}", repeats)
            elif len(types) == 1:
                self._add_typed(table, last, types[0], repeats, element)
            else:
                raise ValueError(f"{path}: expected exactly one type, got {len(types)}")

    def _add_typed(
        self, table: str, key: str, type_ref: JsonObj, repeats: bool, element: JsonObj
    ) -> None:
        kind, primitive = self._type_kind(type_ref)
        self._add(table, key, kind, repeats)
        # The "_x" sibling carries id/extension of a primitive; XML attributes (element
        # ids, Extension.url) and xhtml cannot have extensions, so they get none.
        if (
            primitive is not None
            and primitive in self.extensible
            and "xmlAttr" not in element.get("representation", [])
        ):
            self._add(table, "_" + key, "complex:Element", repeats)

    def check_references(self) -> None:
        """Fail if some kind names a type entry that was not generated."""
        for table, entry in self.types.items():
            for group in entry.values():
                for key, kind in group.items():
                    target = kind.partition(":")[2]
                    if target and target not in self.types:
                        raise ValueError(f"{table}.{key}: no entry for {kind}")


def build(package_dir: Path) -> JsonObj:
    """Build the whole document from an unpacked package directory."""
    version, definitions = load_definitions(package_dir)
    builder = _Builder(definitions)
    resources = []
    for sd in definitions:
        if sd["kind"] == "complex-type" or sd["kind"] == "resource":
            builder.add_definition(sd)
        if sd["kind"] == "resource" and not sd.get("abstract", False):
            resources.append(sd["type"])
    builder.check_references()
    return {
        "source": SOURCE,
        "fhirVersion": version,
        "licence": "CC0-1.0",
        "primitiveKinds": builder.prims,
        "resourceTypes": sorted(resources),
        "types": builder.types,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("package_dir", type=Path, help="unpacked hl7.fhir.r4b.core package")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    package_dir: Path = args.package_dir
    output: Path = args.output
    if not (package_dir / "package.json").is_file():
        print(f"{package_dir} does not hold an unpacked FHIR package", file=sys.stderr)
        return 2
    document = build(package_dir)
    options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    output.write_bytes(orjson.dumps(document, option=options) + b"\n")
    types = document["types"]
    keys = sum(len(e["single"]) + len(e["array"]) for e in types.values())
    print(
        f"wrote {output}: {len(document['resourceTypes'])} resource types, "
        f"{len(types)} entries, {keys} keys"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
