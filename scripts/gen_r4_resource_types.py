"""Write schemas/fhir/r4_resource_types.json: the resource types of FHIR R4 (4.0.1).

Run: python scripts/gen_r4_resource_types.py PACKAGE_DIR
PACKAGE_DIR is hl7.fhir.r4.examples@4.0.1 unpacked (`npm pack`, CC0; R4's core package is
not on the npm registry, and the examples package carries R4's StructureDefinitions). The
server lists only these types when a client asks for FHIR 4.0 (app/fhir/versions.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

OUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "r4_resource_types.json"


def resource_types(package: Path) -> list[str]:
    """The concrete resource types R4's StructureDefinitions define."""
    names = set()
    for path in package.glob("StructureDefinition-*.json"):
        definition = orjson.loads(path.read_bytes())
        if (
            definition.get("kind") == "resource"
            and definition.get("derivation") == "specialization"
            and not definition.get("abstract")
            and definition.get("fhirVersion") == "4.0.1"
        ):
            names.add(definition["type"])
    return sorted(names)


def payload(package: Path) -> dict[str, object]:
    return {
        "source": "hl7.fhir.r4.examples@4.0.1 (StructureDefinitions)",
        "fhirVersion": "4.0.1",
        "resourceTypes": resource_types(package),
    }


def main() -> None:
    package = Path(sys.argv[1])
    data = payload(package)
    OUT.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"{len(data['resourceTypes'])} resource types -> {OUT}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
