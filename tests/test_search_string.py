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

from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    ids,
    update,
)


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
