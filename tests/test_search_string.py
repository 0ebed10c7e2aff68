"""String search over HTTP (spec search.html#string), on both databases.

Project decisions: the default is starts-with on a normalised form (case folded, accents
removed) of each part (HumanName family/given/prefix/suffix/text, Address line/city/state/
postalCode/country/text); ``:exact`` is whole-value, case- and accent-sensitive;
``:contains`` is a substring of the normalised form. Comma = OR, repeated parameter = AND.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

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


def _patient(*names: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": list(names), **more}


@pytest.fixture
def people(client: httpx.Client) -> dict[str, str]:
    made = {
        "zoe_accent": create(
            client,
            _patient(
                {"family": "Zoë", "given": ["Anna"]},
                address=[
                    {
                        "line": ["12 Rue de l'Église"],
                        "city": "São Paulo",
                        "state": "SP",
                        "postalCode": "01000-000",
                        "country": "Brasil",
                    }
                ],
            ),
        ),
        "zoellner": create(
            client,
            _patient(
                {"family": "Zoellner", "given": ["Bea"]},
                address=[
                    {
                        "line": ["1 Harbour St"],
                        "city": "Paulo Afonso",
                        "postalCode": "2000",
                    }
                ],
            ),
        ),
        "upper": create(client, _patient({"family": "ZOE", "given": ["Carl"]})),
        "muller": create(
            client,
            _patient({"family": "Müller-Zoe", "given": ["Dana"], "prefix": ["Dr"]}),
        ),
        "smith": create(client, _patient({"family": "Smith", "given": ["Zoe", "Maria"]})),
        "text_only": create(client, _patient({"text": "Zoe Quinn"})),
        "obrien": create(client, _patient({"family": "O'Brien", "given": ["Fay"]})),
        "comma": create(client, _patient({"text": "Smith, John"})),
        "moved": create(
            client,
            _patient(
                {"family": "Zoe", "given": ["Eve"]},
                address=[{"city": "Sao Paulo"}],
            ),
        ),
    }
    # The old family name and city of "moved" must no longer match.
    update(
        client,
        "Patient",
        made["moved"],
        name=[{"family": "Brown", "given": ["Eve"]}],
        address=[{"city": "Brisbane"}],
    )
    gone = create(
        client,
        _patient({"family": "Zoe", "given": ["Anna"]}, address=[{"city": "São Paulo"}]),
    )
    delete(client, "Patient", gone)
    return made


PATIENT_STRINGS_CASES: list[Case] = [
    ("starts-with-folded", "family=zoe", {"zoe_accent", "zoellner", "upper"}),
    ("query-accent", "family=ZOË", {"zoe_accent", "zoellner", "upper"}),
    ("mixed-case", "family=Zoe", {"zoe_accent", "zoellner", "upper"}),
    ("longer-prefix", "family=zoel", {"zoellner"}),
    ("longer-than-value", "family=zoellnerx", set()),
    ("not-a-substring-match", "family=oe", set()),
    ("updated-value", "family=brown", {"moved"}),
    ("apostrophe", "family=o'brien", {"obrien"}),
    ("apostrophe-prefix", "family=O'B", {"obrien"}),
    ("exact", "family:exact=Zoë", {"zoe_accent"}),
    ("exact-old-and-deleted-values-gone", "family:exact=Zoe", set()),
    ("exact-is-case-sensitive", "family:exact=zoë", set()),
    ("exact-upper", "family:exact=ZOE", {"upper"}),
    ("exact-is-not-prefix", "family:exact=Zo", set()),
    ("exact-or", "family:exact=Zoë,ZOE", {"zoe_accent", "upper"}),
    ("contains", "family:contains=zoe", {"zoe_accent", "zoellner", "upper", "muller"}),
    ("contains-folded", "family:contains=LL", {"zoellner", "muller"}),
    ("contains-accent", "family:contains=üller-z", {"muller"}),
    ("given", "given=zo", {"smith"}),
    ("second-given", "given=maria", {"smith"}),
    ("given-of-updated", "given=eve", {"moved"}),
    (
        "name-any-part",
        "name=zoe",
        {"zoe_accent", "zoellner", "upper", "smith", "text_only"},
    ),
    ("name-prefix-part", "name=dr", {"muller"}),
    ("name-text-starts-with-whole-text", "name=quinn", set()),
    ("name-contains-text", "name:contains=quinn", {"text_only"}),
    ("name-exact-given", "name:exact=Zoe", {"smith"}),
    ("escaped-comma", "name:exact=Smith\\, John", {"comma"}),
    ("or", "family=zoel,smi", {"zoellner", "smith"}),
    ("and", "name=zoe&name=anna", {"zoe_accent"}),
    ("and-two-params", "name=zoe&given=carl", {"upper"}),
    ("and-disjoint", "family=zoe&family=smith", set()),
    ("city-accent", "address-city=sao", {"zoe_accent"}),
    ("city-full", "address-city=SÃO PAULO", {"zoe_accent"}),
    ("city-starts-with", "address-city=paulo", {"zoellner"}),
    ("city-contains", "address-city:contains=paulo", {"zoe_accent", "zoellner"}),
    ("city-exact", "address-city:exact=São Paulo", {"zoe_accent"}),
    ("city-exact-accent", "address-city:exact=Sao Paulo", set()),
    ("city-updated", "address-city=brisbane", {"moved"}),
    ("address-line", "address=12 rue", {"zoe_accent"}),
    ("address-line-starts-with", "address=eglise", set()),
    ("address-contains", "address:contains=eglise", {"zoe_accent"}),
    ("address-postal-code", "address=2000", {"zoellner"}),
    ("address-country", "address=bra", {"zoe_accent"}),
    ("address-state", "address=sp", {"zoe_accent"}),
    ("postal-code", "address-postalcode=01000", {"zoe_accent"}),
]


def test_patient_strings(client: httpx.Client, people: dict[str, str]) -> None:
    check(client, people, PATIENT_STRINGS_CASES, "Patient?")


def test_long_values(client: httpx.Client) -> None:
    """Values longer than any index prefix: exact match still tells them apart."""
    first = "Ab" * 130 + "x" * 40  # 300 characters
    second = "Ab" * 130 + "y" * 40
    one = create(client, _patient({"family": first}))
    two = create(client, _patient({"family": second}))
    create(client, _patient({"family": "Abc"}))
    assert ids(client, f"Patient?family:exact={first}") == {one}
    assert ids(client, f"Patient?family:exact={second}") == {two}
    assert ids(client, f"Patient?family:exact={first[:-1]}") == set()
    assert ids(client, f"Patient?family={'ab' * 20}") == {one, two}
    assert ids(client, f"Patient?family:contains={'ba' * 30}") == {one, two}


def test_strings_on_other_types(client: httpx.Client) -> None:
    """Observation value-string (string and CodeableConcept.text); Questionnaire title/name."""

    def obs(**value: Any) -> str:
        return create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                **value,
            },
        )

    feeling = obs(valueString="Feeling better today")
    concept = obs(valueCodeableConcept={"text": "Better"})
    obs(valueQuantity={"value": 3})
    assert ids(client, "Observation?value-string=feeling") == {feeling}
    assert ids(client, "Observation?value-string=bet") == {concept}
    assert ids(client, "Observation?value-string:contains=better") == {feeling, concept}
    assert ids(client, "Observation?value-string:exact=Better") == {concept}

    audit = create(
        client,
        {
            "resourceType": "Questionnaire",
            "status": "draft",
            "name": "AuditC",
            "title": "AUDIT-C alcohol screen",
        },
    )
    k10 = create(
        client,
        {
            "resourceType": "Questionnaire",
            "status": "draft",
            "name": "K10",
            "title": "Kessler",
        },
    )
    assert ids(client, "Questionnaire?title=audit-c") == {audit}
    assert ids(client, "Questionnaire?title:contains=ALCOHOL") == {audit}
    assert ids(client, "Questionnaire?name=k1") == {k10}
    assert ids(client, "Questionnaire?title=alcohol") == set()


def test_malformed_string_queries(client: httpx.Client) -> None:
    check_refused(
        client,
        [
            "Patient?family:text=zoe",  # a token modifier on a string
            "Patient?family:not=zoe",
            "Patient?family:below=zoe",
            "Patient?family:foo=zoe",
            "Patient?family:missing=perhaps",
            "Patient?family=zo\x00e",  # NUL
        ],
    )
