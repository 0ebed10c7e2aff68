"""Generate ``schemas/fhir/summary_elements.json`` from the official FHIR R4B package.

``_summary`` and ``_elements`` (https://hl7.org/fhir/R4B/search.html#summary and
#elements) keep a subset of a resource's top-level elements: those flagged
``ElementDefinition.isSummary`` (``_summary=true``), the mandatory ones (``min >= 1``,
kept by ``_summary=text`` and always returned under ``_elements``) and the ones a client
names. This script precomputes those sets for every concrete resource type so that
``app.fhir.summary`` needs no StructureDefinition at run time.

Source: the ``hl7.fhir.r4b.core@4.3.0`` npm package (licence CC0-1.0), unpacked::

    mkdir -p /tmp/r4b && cd /tmp/r4b && npm pack hl7.fhir.r4b.core@4.3.0 \\
        && tar xzf hl7.fhir.r4b.core-4.3.0.tgz

Run (from the repository root)::

    python scripts/gen_summary_elements.py /tmp/r4b/package

where the argument is the directory holding ``package.json`` and the
``StructureDefinition-*.json`` files. ``--output`` overrides the destination file. Only
StructureDefinitions with ``kind: resource``, ``derivation: specialization`` and not
``abstract`` are read; their snapshots already hold the inherited ``Resource`` and
``DomainResource`` elements (``id``, ``meta``, ``implicitRules``, ``text``, ...) with the
flags the base definitions give them.

Output shape (one line per resource type, keys sorted, lists in definition order, so the
file is deterministic and diffs stay readable)::

    {
      "fhirVersion": "4.3.0",
      "licence": "CC0-1.0",
      "source": "hl7.fhir.r4b.core@4.3.0",
      "types": {
        "Observation": {"choices": {"effective": ["effectiveDateTime", ...], ...},
                        "elements": ["id", "meta", ..., "valueQuantity", ...],
                        "mandatory": ["status", "code"],
                        "summary": ["id", "meta", "implicitRules", ...]},
        ...
      }
    }

All names are JSON property names of top-level elements, so choice elements are expanded
(``value[x]`` -> ``valueQuantity``, ``valueString``, ...); ``choices`` maps the base name of
each choice element (``value``) to its JSON names. ``elements`` lists every top-level
element, ``summary`` those with ``isSummary: true`` and ``mandatory`` those with
``min >= 1``. The ``_x`` siblings of primitives (``_birthDate``) are not listed: they
belong to the element they extend. Prohibited elements (``max: "0"``) are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "summary_elements.json"
SOURCE = "hl7.fhir.r4b.core@4.3.0"

JsonObj = dict[str, Any]


def load_definitions(package_dir: Path) -> tuple[str, list[JsonObj]]:
    """Return the FHIR version and the concrete resource StructureDefinitions of a package."""
    package = orjson.loads((package_dir / "package.json").read_bytes())
    version = str(package.get("fhirVersions", [package.get("version", "")])[0])
    definitions = []
    for path in sorted(package_dir.glob("StructureDefinition-*.json")):
        sd = orjson.loads(path.read_bytes())
        if (
            sd.get("kind") == "resource"
            and sd.get("derivation") == "specialization"
            and not sd.get("abstract", False)
        ):
            definitions.append(sd)
    return version, definitions


def _json_names(element: JsonObj, last: str) -> list[str]:
    """The JSON property names of one element: one, or one per type of a choice element."""
    if not last.endswith("[x]"):
        return [last]
    stem = last[:-3]
    names = []
    for type_ref in element.get("type", []):
        code: str = type_ref["code"]
        names.append(stem + code[0].upper() + code[1:])
    if not names:
        raise ValueError(f"{element['path']}: choice element without types")
    return names


def type_entry(sd: JsonObj) -> JsonObj:
    """The ``types`` entry of one resource StructureDefinition."""
    name: str = sd["type"]
    elements: list[JsonObj] = sd["snapshot"]["element"]
    if elements[0]["path"] != name:
        raise ValueError(f"{name}: the snapshot does not start with the root element")
    all_names: list[str] = []
    summary: list[str] = []
    mandatory: list[str] = []
    choices: dict[str, list[str]] = {}
    for element in elements[1:]:
        parent, _, last = element["path"].rpartition(".")
        if parent != name or element.get("max") == "0":
            continue  # nested, or prohibited (no JSON key at all)
        names = _json_names(element, last)
        if last.endswith("[x]"):
            choices[last[:-3]] = names
        for key in names:
            if key in all_names:
                raise ValueError(f"{name}: duplicate JSON property {key!r}")
            all_names.append(key)
        if element.get("isSummary", False):
            summary.extend(names)
        if int(element.get("min", 0)) >= 1:
            mandatory.extend(names)
    # A choice base name must not shadow a real element, or _elements=value would be
    # ambiguous.
    clashes = sorted(set(choices) & set(all_names))
    if clashes:
        raise ValueError(f"{name}: choice base names clash with elements: {clashes}")
    return {"choices": choices, "elements": all_names, "mandatory": mandatory, "summary": summary}


def build(package_dir: Path) -> JsonObj:
    """Build the whole document from an unpacked package directory."""
    version, definitions = load_definitions(package_dir)
    types = {sd["type"]: type_entry(sd) for sd in definitions}
    if len(types) != len(definitions):
        raise ValueError("two StructureDefinitions define the same resource type")
    return {
        "fhirVersion": version,
        "licence": "CC0-1.0",
        "source": SOURCE,
        "types": dict(sorted(types.items())),
    }


def render(document: JsonObj) -> bytes:
    """Serialise with one line per resource type (valid JSON, deterministic)."""
    lines = [b"{"]
    for key in ("fhirVersion", "licence", "source"):
        lines.append(b'  "' + key.encode() + b'": ' + orjson.dumps(document[key]) + b",")
    lines.append(b'  "types": {')
    types: JsonObj = document["types"]
    last = len(types) - 1
    for index, (name, entry) in enumerate(types.items()):
        line = orjson.dumps(name) + b": " + orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        lines.append(b"    " + line + (b"," if index < last else b""))
    lines.append(b"  }")
    lines.append(b"}")
    return b"\n".join(lines) + b"\n"


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
    data = render(document)
    # The hand-made layout must still be exactly the document.
    if orjson.loads(data) != document:
        raise AssertionError("rendered file does not round-trip")
    output.write_bytes(data)
    types = document["types"]
    summary = sum(len(e["summary"]) for e in types.values())
    print(f"wrote {output}: {len(types)} resource types, {summary} summary elements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
