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

UCUM = "http://unitsofmeasure.org"

# --- helpers (each search module carries its own copy) -----------------------------------

# (label, query, names of the resources that must match: exactly these, no others)
Case = tuple[str, str, set[str]]


def create(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def put(client: httpx.Client, resource: dict[str, Any]) -> str:
    """Create (or replace) with a client-chosen id."""
    response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text
    return str(resource["id"])


def update(client: httpx.Client, resource_type: str, rid: str, **changes: Any) -> None:
    """Read, change top-level elements (None removes one), write back: a new version."""
    body = client.get(f"/{resource_type}/{rid}").json()
    body.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del body[key]
    response = client.put(f"/{resource_type}/{rid}", json=body)
    assert response.status_code == 200, response.text


def delete(client: httpx.Client, resource_type: str, rid: str) -> None:
    assert client.delete(f"/{resource_type}/{rid}").status_code in (200, 204)


def _split(query: str) -> tuple[str, list[tuple[str, str]]]:
    """``Type?a=b&c=d`` (values unencoded) -> ("/Type", [("a", "b"), ("c", "d")])."""
    path, _, qs = query.partition("?")
    params = [tuple(p.split("=", 1)) for p in qs.split("&") if p] if qs else []
    return "/" + path, params  # type: ignore[return-value]


def run(client: httpx.Client, query: str) -> list[str] | str:
    """Ids of the matches in order, following next links; or what went wrong, as text."""
    path, params = _split(query)
    response = client.get(path, params=params)
    found: list[str] = []
    while True:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        bundle = response.json()
        found += [
            e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
        ]
        url = next(
            (lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"),
            None,
        )
        if not url:
            break
        response = client.get(url)
    if len(found) != len(set(found)):
        return f"duplicates across pages: {found}"
    return found


def search(client: httpx.Client, query: str) -> list[str]:
    __tracebackhide__ = True
    found = run(client, query)
    assert isinstance(found, list), f"{query}: {found}"
    return found


def ids(client: httpx.Client, query: str) -> set[str]:
    return set(search(client, query))


def check(
    client: httpx.Client,
    made: dict[str, str],
    cases: list[Case],
    prefix: str,
    **values: str,
) -> None:
    """Run every case; fail once, listing each query whose matches are not exactly right.

    ``{name}`` in a query is replaced by ``values[name]`` or ``made[name]``.
    """
    __tracebackhide__ = True
    names = {rid: name for name, rid in made.items()}
    wrong = []
    for label, query, expected in cases:
        for key, value in {**made, **values}.items():
            query = query.replace("{" + key + "}", value)
        found = run(client, prefix + query)
        want = {made[k] for k in expected}
        if isinstance(found, str) or set(found) != want:
            shown = found if isinstance(found, str) else sorted(names.get(i, i) for i in found)
            wrong.append(
                f"[{label}] {prefix}{query}\n    expected {sorted(expected)}\n    got      {shown}"
            )
    assert not wrong, f"{len(wrong)} of {len(cases)} queries wrong:\n" + "\n".join(wrong)


def check_refused(client: httpx.Client, queries: list[str]) -> None:
    """Each query must get 400 with an OperationOutcome (never a 500, never a 200)."""
    __tracebackhide__ = True
    wrong = []
    for query in queries:
        path, params = _split(query)
        response = client.get(path, params=params)
        is_outcome = (
            response.headers.get("content-type", "").startswith("application/fhir+json")
            and response.json().get("resourceType") == "OperationOutcome"
        )
        if response.status_code != 400 or not is_outcome:
            wrong.append(f"{query}\n    got HTTP {response.status_code}: {response.text[:200]}")
    assert not wrong, f"{len(wrong)} of {len(queries)} not refused:\n" + "\n".join(wrong)


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
