"""Write schemas/fhir/resource_types.json: every resource type fhir.resources.R4B models.

Run: python scripts/gen_resource_types.py   (after upgrading fhir.resources)
Importing every model takes over a second, so the server reads this list instead.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from fhir.resources.R4B import fhirtypes, get_fhir_model_class
from fhir.resources.R4B.resource import Resource

OUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "resource_types.json"
ABSTRACT = {"Resource", "DomainResource"}


def main() -> None:
    names: list[str] = []
    with_identifier: list[str] = []
    for attr in dir(fhirtypes):
        if not attr.endswith("Type") or not attr[:1].isupper():
            continue
        name = attr[: -len("Type")]
        try:
            model = get_fhir_model_class(name)
        except ValueError:
            continue
        if issubclass(model, Resource) and name not in ABSTRACT:
            names.append(name)
            if "identifier" in model.model_fields:
                with_identifier.append(name)
    payload = {
        "source": "fhir.resources.R4B",
        "fhirVersion": "4.3.0",
        "resourceTypes": sorted(names),
        "withIdentifier": sorted(with_identifier),
    }
    OUT.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"{len(names)} resource types -> {OUT}")


if __name__ == "__main__":
    main()
