"""The committed tables under schemas/fhir are what their committed generators make of the
official R4B package (issue "FHIR search": the registry is generated, not hand-kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.fhir_package import ROOT, load_generator, r4_examples_package, r4b_package

TABLES = {
    "gen_search_parameters": "search_parameters.json",
    "gen_compartments": "compartments.json",
    "gen_json_types": "json_types.json",
    "gen_required_bindings": "required_bindings.json",
}


@pytest.mark.parametrize("generator", sorted(TABLES))
def test_committed_table_is_what_the_generator_makes(
    generator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = r4b_package()
    module = load_generator(generator, monkeypatch)
    built: Any = module.build(package)
    if isinstance(built, tuple):  # (document, report)
        built = built[0]
    committed = orjson.loads((ROOT / "schemas" / "fhir" / TABLES[generator]).read_bytes())
    assert built == committed, f"run scripts/{generator}.py to regenerate"


def test_the_r4_type_list_is_what_its_generator_makes_of_r4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = r4_examples_package()
    module = load_generator("gen_r4_resource_types", monkeypatch)
    committed = orjson.loads((ROOT / "schemas" / "fhir" / "r4_resource_types.json").read_bytes())
    assert module.payload(package) == committed, "run scripts/gen_r4_resource_types.py"
    # R4 has the case-management types, and not R4B's topic-based subscription resources.
    assert {"CarePlan", "Goal", "Task", "ServiceRequest"} <= set(committed["resourceTypes"])
    assert "SubscriptionTopic" not in committed["resourceTypes"]


def test_every_core_search_parameter_is_registered() -> None:
    """Each SearchParameter of the package that has an expression reaches every type its
    base names (or every type, for Resource and DomainResource)."""
    package = r4b_package()
    registry = orjson.loads((ROOT / "schemas" / "fhir" / "search_parameters.json").read_bytes())
    types = registry["resourceTypes"]
    missing = []
    for path in sorted(Path(package).glob("SearchParameter-*.json")):
        definition = orjson.loads(path.read_bytes())
        if not definition.get("expression") or not _is_core(definition):
            continue
        for base in definition.get("base", []):
            targets = sorted(types) if base in ("Resource", "DomainResource") else [base]
            for resource_type in targets:
                if definition["code"] not in types.get(resource_type, {}):
                    missing.append(f"{resource_type}.{definition['code']}")
    assert not missing, missing[:20]


def _is_core(definition: dict[str, Any]) -> bool:
    return any(
        ext.get("url", "").endswith("structuredefinition-standards-status")
        for ext in definition.get("extension", [])
    )
