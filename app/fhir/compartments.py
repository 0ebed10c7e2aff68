"""Compartments (spec compartmentdefinition.html): which resources belong to a patient's record."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

import orjson

COMPARTMENTS_PATH: Final = (
    Path(__file__).resolve().parents[2] / "schemas" / "fhir" / "compartments.json"
)


@cache
def compartment(owner_type: str) -> Mapping[str, tuple[str, ...]]:
    """Resource type -> the search parameters that put it in ``owner_type``'s compartment."""
    document = orjson.loads(COMPARTMENTS_PATH.read_bytes())
    resources: dict[str, list[str]] = document["compartments"][owner_type]["resources"]
    return MappingProxyType({t: tuple(params) for t, params in resources.items()})


# Case management keeps a client's referrals and follow-ups as Tasks for the client
# (Task.for), which the R4B Patient compartment leaves out: a client's record handed to
# another agency is incomplete without them.
RECORD_EXTRAS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({"Task": ("patient",)})


@cache
def patient_record() -> Mapping[str, tuple[str, ...]]:
    """What Patient $everything gathers: the Patient compartment plus RECORD_EXTRAS."""
    merged = {t: tuple(p) for t, p in compartment("Patient").items()}
    for resource_type, codes in RECORD_EXTRAS.items():
        merged[resource_type] = tuple(dict.fromkeys((*merged.get(resource_type, ()), *codes)))
    return MappingProxyType(merged)
