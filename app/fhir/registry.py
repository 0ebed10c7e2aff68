"""What the server knows about FHIR types; the router and CapabilityStatement read it here."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import orjson

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "fhir"
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@cache
def resource_types() -> frozenset[str]:
    """Every resource type of FHIR R4B that fhir.resources models (schemas/fhir)."""
    data = orjson.loads((SCHEMAS_DIR / "resource_types.json").read_bytes())
    return frozenset(data["resourceTypes"])


def is_resource_type(name: str) -> bool:
    """True for a concrete R4B resource type name."""
    return name in resource_types()


def is_valid_id(value: str) -> bool:
    """FHIR logical id rule (spec datatypes.html#id): [A-Za-z0-9\\-.]{1,64}."""
    # "." and ".." match the pattern but are path segments no client can address.
    return ID_RE.match(value) is not None and value.strip(".") != ""


@cache
def types_with_identifier() -> frozenset[str]:
    """Resource types that have an identifier element (searchable by identifier)."""
    data = orjson.loads((SCHEMAS_DIR / "resource_types.json").read_bytes())
    return frozenset(data["withIdentifier"])
