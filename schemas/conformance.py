"""The project's own FHIR conformance resources, read from the JSON files beside this module.

schemas/fhir/terminology/ holds CodeSystems and ValueSets, schemas/fhir/questionnaires/ the
assessment instruments, schemas/fhir/operations/ the OperationDefinitions of the project's
own operations (all written by scripts/gen_casework_conformance.py).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

BASE: Final = "https://casebridge.org/fhir"
FHIR_DIR: Final = Path(__file__).resolve().parent / "fhir"
_FOLDERS: Final = ("terminology", "questionnaires", "operations")


def system(slug: str) -> str:
    """The canonical URL of one of the project's CodeSystems."""
    return f"{BASE}/CodeSystem/{slug}"


def extension_url(slug: str) -> str:
    """The canonical URL of one of the project's extensions."""
    return f"{BASE}/StructureDefinition/{slug}"


@cache
def conformance_resources() -> tuple[dict[str, Any], ...]:
    """Every CodeSystem, ValueSet and Questionnaire of the project (fresh copies are the
    caller's business: these are shared)."""
    found = []
    for folder in _FOLDERS:
        for path in sorted((FHIR_DIR / folder).glob("*.json")):
            found.append(json.loads(path.read_text(encoding="utf-8")))
    return tuple(found)


@cache
def code_system(slug: str) -> dict[str, Any]:
    """One of the project's CodeSystems by its slug (KeyError if unknown)."""
    url = system(slug)
    for resource in conformance_resources():
        if resource["resourceType"] == "CodeSystem" and resource["url"] == url:
            return resource
    raise KeyError(slug)


def codes(slug: str) -> tuple[str, ...]:
    """The codes of one of the project's CodeSystems, in definition order."""
    return tuple(c["code"] for c in code_system(slug)["concept"])


def concept_property(slug: str, code: str, name: str) -> Any:
    """A property value of a concept (None when absent)."""
    for concept in code_system(slug)["concept"]:
        if concept["code"] == code:
            for prop in concept.get("property", []):
                if prop["code"] == name:
                    return next(v for k, v in prop.items() if k.startswith("value"))
    return None


def display(slug: str, code: str) -> str:
    """The display of a code of one of the project's CodeSystems."""
    for concept in code_system(slug)["concept"]:
        if concept["code"] == code:
            return str(concept["display"])
    raise KeyError(code)


@cache
def questionnaires() -> dict[str, dict[str, Any]]:
    """The project's Questionnaires by canonical URL."""
    return {r["url"]: r for r in conformance_resources() if r["resourceType"] == "Questionnaire"}


__all__ = [
    "BASE",
    "code_system",
    "codes",
    "concept_property",
    "conformance_resources",
    "display",
    "extension_url",
    "questionnaires",
    "system",
]
