"""The benchmark's resource: the ~2 KB CarePlan of tests/factories.py, and request bodies."""

from __future__ import annotations

from typing import Any

import orjson

from tests import factories

FHIR_JSON = "application/fhir+json"
ID_SLOT = "__BENCH_ID__"
SEQ_SLOT = "__BENCH_SEQ__"


def care_plan() -> dict[str, Any]:
    """A fresh copy of the tests' realistic CarePlan (no id): one resource for both."""
    return factories.care_plan()


def care_plan_bytes(identifier_value: str, resource_id: str | None = None) -> bytes:
    """The CarePlan as JSON bytes, with an identifier value and optionally an id."""
    plan = care_plan()
    plan["identifier"][0]["value"] = identifier_value
    if resource_id is not None:
        plan = {"resourceType": "CarePlan", "id": resource_id, **plan}
    return orjson.dumps(plan)


def body_template(*, with_id: bool) -> tuple[list[str], list[str]]:
    """The JSON body split around its variable slots: (parts, slot names).

    The body is parts[0] + value(slots[0]) + parts[1] + ... ; slots are "id" (the URL id of an
    update) and "seq" (a per-request identifier value). Load generators fill them per request.
    """
    text = care_plan_bytes(SEQ_SLOT, ID_SLOT if with_id else None).decode()
    parts: list[str] = []
    slots: list[str] = []
    rest = text
    while True:
        positions = [(rest.find(s), s) for s in (ID_SLOT, SEQ_SLOT) if s in rest]
        if not positions:
            parts.append(rest)
            return parts, slots
        index, slot = min(positions)
        parts.append(rest[:index])
        slots.append("id" if slot == ID_SLOT else "seq")
        rest = rest[index + len(slot) :]


def fill(parts: list[str], slots: list[str], *, resource_id: str, seq: str) -> str:
    """A body from a template (what the Lua script and the Python generator both do)."""
    out = [parts[0]]
    for slot, part in zip(slots, parts[1:], strict=True):
        out.append(resource_id if slot == "id" else seq)
        out.append(part)
    return "".join(out)
