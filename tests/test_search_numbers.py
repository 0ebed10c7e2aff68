"""Number and quantity search over HTTP (spec search.html#number, #quantity), both databases.

Project decisions: without a prefix the stored value must lie in the search value's
precision range (100 -> [99.5, 100.5), 5.4 -> [5.35, 5.45), 1e2 -> [50, 150)); ne = not eq;
gt/lt/ge/le/sa/eb compare exactly; ap = within 10% of the value. A stored Range or a
Quantity with a comparator is an interval: gt x matches when its high end > x, lt x when its
low end < x. Quantity forms: ``v``, ``v|system|code``, ``v||code-or-unit``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    update,
)

UCUM = "http://unitsofmeasure.org"


def _risk(*predictions: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
    }
    if predictions:
        body["prediction"] = list(predictions)
    return body


def _p(value: Any) -> dict[str, Any]:
    return {"probabilityDecimal": value}


@pytest.fixture
def risks(client: httpx.Client) -> dict[str, str]:
    made = {
        name: create(client, _risk(_p(value)))
        for name, value in [
            ("r99.4", 99.4),
            ("r99.5", 99.5),
            ("r100", 100),
            ("r100.49", 100.49),
            ("r100.5", 100.5),
            ("r5.35", 5.35),
            ("r5.4", 5.4),
            ("r5.449", 5.449),
            ("r5.45", 5.45),
            ("moved", 100),
        ]
    }
    made["two"] = create(client, _risk(_p(20), _p(80)))
    made["range"] = create(
        client,
        _risk({"probabilityRange": {"low": {"value": 30}, "high": {"value": 40}}}),
    )
    made["none"] = create(client, _risk())
    update(client, "RiskAssessment", made["moved"], prediction=[_p(60)])
    gone = create(client, _risk(_p(100)))
    delete(client, "RiskAssessment", gone)
    return made


HIGH = {"r99.4", "r99.5", "r100", "r100.49", "r100.5"}
LOW = {"r5.35", "r5.4", "r5.449", "r5.45"}


NUMBER_CASES: list[Case] = [
    ("eq-integer-precision", "100", {"r99.5", "r100", "r100.49"}),
    ("eq-one-decimal", "100.0", {"r100"}),
    ("eq-5.4", "5.4", {"r5.35", "r5.4", "r5.449"}),
    ("eq-prefix", "eq5.4", {"r5.35", "r5.4", "r5.449"}),
    ("eq-exponent", "1e2", HIGH | {"moved", "two"}),
    ("updated-value", "60", {"moved"}),
    ("or", "5.4,100.0", {"r5.35", "r5.4", "r5.449", "r100"}),
    ("gt-exact", "gt100", {"r100.49", "r100.5"}),
    ("ge-exact", "ge100", {"r100", "r100.49", "r100.5"}),
    ("lt-exact", "lt5.4", {"r5.35"}),
    ("le-exact", "le5.4", {"r5.35", "r5.4"}),
    ("sa", "sa100", {"r100.49", "r100.5"}),
    ("eb", "eb5.4", {"r5.35"}),
    (
        "ne",
        "ne100",
        (HIGH | LOW | {"moved", "two", "range"}) - {"r99.5", "r100", "r100.49"},
    ),
    ("ap", "ap100", HIGH),
    ("and-range-and-two-values", "gt35&probability=lt45", {"range", "two"}),
    ("range-high-end", "gt41&probability=lt45", {"two"}),
    ("range-low-end-not-below", "lt30", LOW | {"two"}),
    ("range-low-end-below", "lt30.5", LOW | {"two", "range"}),
    ("and-window", "gt99.4&probability=lt99.6", {"r99.5"}),
]


def test_number(client: httpx.Client, risks: dict[str, str]) -> None:
    check(client, risks, NUMBER_CASES, "RiskAssessment?probability=")


def test_malformed_number(client: httpx.Client) -> None:
    values = ["abc", "xx5", "5;1", "1e", "5.4.1", "5'", "gt", "5|mg", "- 5"]
    check_refused(client, [f"RiskAssessment?probability={value}" for value in values])


def _obs(value: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
    }
    if value is not None:
        body["valueQuantity"] = value
    body.update(more)
    return body


def _q(value: Any, code: str | None = None, unit: str | None = None, **more: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, **more}
    if code:
        q.update(system=UCUM, code=code)
    if unit:
        q["unit"] = unit
    return q


@pytest.fixture
def quantities(client: httpx.Client) -> dict[str, str]:
    made = {
        "mg": create(client, _obs(_q(5.4, "mg", "mg"))),
        "unit_only": create(client, _obs(_q(5.4, unit="mg"))),
        "g": create(client, _obs(_q(5.4, "g", "g"))),
        "mgdl": create(client, _obs(_q(100, "mg/dL", "mg/dL"))),
        "below5": create(client, _obs(_q(5, "mg", "mg", comparator="<"))),
        "mg5.449": create(client, _obs(_q(5.449, "mg", "mg"))),
        "mg5.45": create(client, _obs(_q(5.45, "mg", "mg"))),
        "g5.9": create(client, _obs(_q(5.9, "g", "g"))),
        "g6.1": create(client, _obs(_q(6.1, "g", "g"))),
        "moved": create(client, _obs(_q(5.4, "mg", "mg"))),
        "no_quantity": create(client, _obs(valueString="5.4 mg")),
    }
    update(client, "Observation", made["moved"], valueQuantity=_q(7, "mg", "mg"))
    gone = create(client, _obs(_q(5.4, "mg", "mg")))
    delete(client, "Observation", gone)
    return made


QUANTITY_CASES: list[Case] = [
    ("value-only", "5.4", {"mg", "unit_only", "g", "mg5.449"}),
    ("system-code", f"5.4|{UCUM}|mg", {"mg", "mg5.449"}),
    ("code-or-unit", "5.4||mg", {"mg", "unit_only", "mg5.449"}),
    ("other-unit", f"5.4|{UCUM}|g", {"g"}),
    ("more-precision", f"5.40|{UCUM}|mg", {"mg"}),
    ("updated", f"7|{UCUM}|mg", {"moved"}),
    ("gt", "gt5.4||mg", {"mg5.449", "mg5.45", "moved"}),
    (
        "gt-comparator-high",
        "gt5||mg",
        {"mg", "unit_only", "mg5.449", "mg5.45", "moved"},
    ),
    (
        "gt-includes-below-5",
        "gt4||mg",
        {"mg", "unit_only", "below5", "mg5.449", "mg5.45", "moved"},
    ),
    ("lt-comparator-low", "lt5.4", {"below5"}),
    ("le", f"le5.4|{UCUM}|mg", {"mg", "below5"}),
    ("ge", "ge100", {"mgdl"}),
    ("slash-in-code", f"100|{UCUM}|mg/dL", {"mgdl"}),
    ("unit-must-match", "100||mg", set()),
    ("ne", "ne5.4||mg", {"below5", "mg5.45", "moved"}),
    ("ap", f"ap5.4|{UCUM}|g", {"g", "g5.9"}),
    ("or", f"5.4|{UCUM}|mg,5.4|{UCUM}|g", {"mg", "mg5.449", "g"}),
    ("and", f"gt5|{UCUM}|mg&value-quantity=lt5.45", {"mg", "mg5.449"}),
]


def test_quantity(client: httpx.Client, quantities: dict[str, str]) -> None:
    check(client, quantities, QUANTITY_CASES, "Observation?value-quantity=")


def test_malformed_quantity(client: httpx.Client) -> None:
    values = ["abc||mg", "xx5", "5|a|b|c", "5;1||mg", "||mg"]
    check_refused(client, [f"Observation?value-quantity={value}" for value in values])
