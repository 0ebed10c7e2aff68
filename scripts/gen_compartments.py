"""Generate ``schemas/fhir/compartments.json`` from the official FHIR R4B package.

A compartment (spec compartmentdefinition.html) is the set of resources that refer to one
resource, its owner, through named search parameters: an Observation is in the compartment
of Patient/p1 when its ``subject`` or ``performer`` parameter refers to Patient/p1. The
server answers ``Patient/[id]/$everything`` (spec patient-operation-everything.html) from
the ``search_reference`` index with these lists, never by reading resource bodies.

Input: the ``hl7.fhir.r4b.core@4.3.0`` npm package (CC0), unpacked::

    mkdir -p /tmp/r4b && cd /tmp/r4b && npm pack hl7.fhir.r4b.core@4.3.0 \\
        && tar xzf hl7.fhir.r4b.core-4.3.0.tgz

Run (from the repository root)::

    .venv/bin/python scripts/gen_compartments.py /tmp/r4b/package

The package's five base CompartmentDefinitions are read (Patient, Encounter, RelatedPerson,
Practitioner, Device; the ``example`` definition is not one of them). Every parameter they
name is checked against ``schemas/fhir/search_parameters.json`` (the registry the index is
built from): it must be a reference parameter of that type able to point at the owner's
type, or the script fails, since the index would then never place anything in the
compartment through it. ``{def}`` (the owner's own type: "the resource that defines the
compartment") is left out: the owner is always in its own compartment.

Output shape (keys and lists sorted, so the file is deterministic)::

    {
      "source": "hl7.fhir.r4b.core@4.3.0",
      "compartments": {
        "Patient": {
          "url": "http://hl7.org/fhir/CompartmentDefinition/patient",
          "resources": {"Account": ["subject"], "AllergyIntolerance": ["asserter", ...]}
        },
        ...
      }
    }

``resources`` lists only the types that can be in the compartment; a type absent from it
never is (for Patient: Organization, Practitioner, Task, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "schemas" / "fhir" / "compartments.json"
REGISTRY = ROOT / "schemas" / "fhir" / "search_parameters.json"
BASE_URL = "http://hl7.org/fhir/CompartmentDefinition/"
# The compartment types R4B defines (CompartmentDefinition.code, a required binding).
COMPARTMENT_TYPES = ("Device", "Encounter", "Patient", "Practitioner", "RelatedPerson")
OWN_TYPE = "{def}"

JsonObj = dict[str, Any]


def _definitions(package_dir: Path) -> dict[str, JsonObj]:
    """The base CompartmentDefinition of each compartment type, by type."""
    found: dict[str, JsonObj] = {}
    for path in sorted(package_dir.glob("CompartmentDefinition-*.json")):
        definition: JsonObj = json.loads(path.read_text(encoding="utf-8"))
        code = definition.get("code")
        url = definition.get("url", "")
        # The base definitions are named after their code (".../patient",
        # ".../relatedPerson"); the package's example reuses the Device code.
        if code in COMPARTMENT_TYPES and url.lower() == (BASE_URL + code).lower():
            if code in found:
                raise SystemExit(f"two base CompartmentDefinitions for {code}")
            found[code] = definition
    missing = sorted(set(COMPARTMENT_TYPES) - set(found))
    if missing:
        raise SystemExit(f"{package_dir}: no CompartmentDefinition for {', '.join(missing)}")
    return found


def _check(registry: JsonObj, owner: str, resource_type: str, code: str) -> str | None:
    """Why the index cannot answer membership through this parameter, or None."""
    entry = registry.get(resource_type, {}).get(code)
    if entry is None:
        return "no such search parameter in the registry"
    if entry.get("type") != "reference":
        return f"a {entry.get('type')} parameter, not a reference"
    targets: list[str] = entry.get("targets") or []
    if targets and owner not in targets:
        return f"cannot refer to {owner} (targets {', '.join(targets)})"
    return None


def build(package_dir: Path, registry_path: Path = REGISTRY) -> JsonObj:
    """The output document from an unpacked package and the search-parameter registry."""
    meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    registry: JsonObj = json.loads(registry_path.read_text(encoding="utf-8"))["resourceTypes"]
    compartments: JsonObj = {}
    problems: list[str] = []
    for owner, definition in sorted(_definitions(package_dir).items()):
        resources: dict[str, list[str]] = {}
        for entry in definition.get("resource", []):
            resource_type: str = entry["code"]
            codes = sorted({c for c in entry.get("param", []) if c != OWN_TYPE})
            for code in codes:
                why = _check(registry, owner, resource_type, code)
                if why is not None:
                    problems.append(f"{owner} compartment: {resource_type}.{code}: {why}")
            if codes:
                resources[resource_type] = codes
        compartments[owner] = {
            "url": definition["url"],
            "resources": dict(sorted(resources.items())),
        }
    if problems:
        raise SystemExit("\n".join(problems))
    return {"source": f"{meta['name']}@{meta['version']}", "compartments": compartments}


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
    summary = ", ".join(
        f"{owner} {len(c['resources'])} types" for owner, c in document["compartments"].items()
    )
    print(f"{output}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
