"""URI search (spec search.html#uri) and ``:missing`` on every parameter type, both databases.

uri: exact (case-sensitive, no prefix); ``:below`` = the stored uri starts with the value;
``:above`` = the value starts with the stored uri. ``:missing=true`` = no value indexed for
the parameter, ``:missing=false`` = some value; deleted resources never match and an updated
resource is judged by its current version only.
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

Q = "http://example.org/fhir/Questionnaire"


def _questionnaire(url: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Questionnaire", "status": "draft"}
    if url is not None:
        body["url"] = url
    return body


@pytest.fixture
def forms(client: httpx.Client) -> dict[str, str]:
    made = {
        "audit": create(client, _questionnaire(f"{Q}/audit")),
        "audit_c": create(client, _questionnaire(f"{Q}/audit-c")),
        "audit_v2": create(client, _questionnaire(f"{Q}/audit/v2")),
        "root": create(client, _questionnaire("http://example.org/fhir")),
        "upper": create(client, _questionnaire("http://example.org/FHIR/Questionnaire/audit")),
        "urn": create(client, _questionnaire("urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7")),
        "none": create(client, _questionnaire(None)),
        "moved": create(client, _questionnaire(f"{Q}/k10")),
    }
    update(client, "Questionnaire", made["moved"], url="http://example.org/other/k10")
    gone = create(client, _questionnaire(f"{Q}/audit"))
    delete(client, "Questionnaire", gone)
    return made


QUESTIONNAIRE_URL_CASES: list[Case] = [
    ("exact", f"url={Q}/audit", {"audit"}),
    ("exact-is-not-prefix", f"url={Q}/aud", set()),
    ("exact-is-case-sensitive", f"url={Q}/AUDIT", set()),
    ("old-value-of-updated", f"url={Q}/k10", set()),
    ("new-value", "url=http://example.org/other/k10", {"moved"}),
    ("urn", "url=urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7", {"urn"}),
    ("or", f"url={Q}/audit,{Q}/audit-c", {"audit", "audit_c"}),
    ("below", f"url:below={Q}", {"audit", "audit_c", "audit_v2"}),
    (
        "below-includes-equal",
        "url:below=http://example.org/fhir",
        {"audit", "audit_c", "audit_v2", "root"},
    ),
    ("below-leaf", f"url:below={Q}/audit/v2", {"audit_v2"}),
    ("above", f"url:above={Q}/audit/v2", {"audit_v2", "audit", "root"}),
    ("above-2", f"url:above={Q}/audit", {"audit", "root"}),
    ("above-nothing-shorter", "url:above=http://example.org", set()),
    ("missing", "url:missing=true", {"none"}),
]


def test_questionnaire_url(client: httpx.Client, forms: dict[str, str]) -> None:
    check(client, forms, QUESTIONNAIRE_URL_CASES, "Questionnaire?")


def test_value_set_url_and_profile(client: httpx.Client) -> None:
    housing = create(
        client,
        {
            "resourceType": "ValueSet",
            "status": "active",
            "url": "http://example.org/fhir/ValueSet/housing",
        },
    )
    create(
        client,
        {
            "resourceType": "ValueSet",
            "status": "active",
            "url": "http://example.org/fhir/CodeSystem/housing",
        },
    )
    assert ids(client, "ValueSet?url=http://example.org/fhir/ValueSet/housing") == {housing}
    assert ids(client, "ValueSet?url:below=http://example.org/fhir/ValueSet") == {housing}

    profile = "http://example.org/fhir/StructureDefinition/client"
    tagged = create(client, {"resourceType": "Patient", "meta": {"profile": [profile]}})
    create(client, {"resourceType": "Patient", "meta": {"profile": [f"{profile}-v2"]}})
    create(client, {"resourceType": "Patient"})
    assert ids(client, f"Patient?_profile={profile}") == {tagged}


# --- :missing on every parameter type ---------------------------------------------------


FULL_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "active": True,
    "name": [{"family": "Rivera", "given": ["Alex"]}],
    "gender": "female",
    "birthDate": "1988-04-02",
    "managingOrganization": {"reference": "Organization/o1"},
    "address": [{"city": "Brisbane"}],
}


@pytest.fixture
def patients(client: httpx.Client) -> dict[str, str]:
    made = {
        "full": create(client, FULL_PATIENT),
        "text_name": create(client, {"resourceType": "Patient", "name": [{"text": "Sam"}]}),
        "bare": create(client, {"resourceType": "Patient", "language": "en"}),
        "moved": create(client, FULL_PATIENT),
    }
    # "moved" loses everything: judged by its current version it is missing all of them.
    update(
        client,
        "Patient",
        made["moved"],
        active=None,
        name=None,
        gender=None,
        birthDate=None,
        managingOrganization=None,
        address=None,
    )
    gone = create(client, {"resourceType": "Patient", "language": "en"})
    delete(client, "Patient", gone)
    return made


# parameter -> the patients that have a value for it (all others must be :missing=true)
PRESENT = {
    "family": {"full"},  # string
    "name": {"full", "text_name"},  # string, HumanName.text counts
    "address-city": {"full"},  # string on Address
    "gender": {"full"},  # token
    "active": {"full"},  # token, boolean
    "birthdate": {"full"},  # date
    "organization": {"full"},  # reference
}


def test_missing_on_patient(client: httpx.Client, patients: dict[str, str]) -> None:
    cases: list[Case] = []
    for param, present in PRESENT.items():
        cases.append((param, f"{param}:missing=false", present))
        cases.append((param, f"{param}:missing=true", set(patients) - present))
    check(client, patients, cases, "Patient?")


def test_missing_combined_with_other_parameters(
    client: httpx.Client, patients: dict[str, str]
) -> None:
    assert ids(client, "Patient?family:missing=true&name=sam") == {patients["text_name"]}
    assert ids(client, "Patient?family:missing=true&family:missing=false") == set()


def test_missing_on_number_quantity_reference_and_uri(client: httpx.Client) -> None:
    def risk(**more: Any) -> str:
        return create(
            client,
            {
                "resourceType": "RiskAssessment",
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                **more,
            },
        )

    with_p = risk(prediction=[{"probabilityDecimal": 0.2}])
    qualitative = risk(prediction=[{"qualitativeRisk": {"text": "high"}}])
    without = risk()
    assert ids(client, "RiskAssessment?probability:missing=false") == {with_p}
    assert ids(client, "RiskAssessment?probability:missing=true") == {
        qualitative,
        without,
    }

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

    quantity = obs(valueQuantity={"value": 3, "unit": "mg"})
    text = obs(valueString="3 mg")
    nothing = obs()
    assert ids(client, "Observation?value-quantity:missing=false") == {quantity}
    assert ids(client, "Observation?value-quantity:missing=true") == {text, nothing}
    assert ids(client, "Observation?value-string:missing=true") == {quantity, nothing}

    owned = create(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "owner": {"reference": "Practitioner/pr1"},
        },
    )
    unowned = create(client, {"resourceType": "Task", "status": "requested", "intent": "order"})
    assert ids(client, "Task?owner:missing=true") == {unowned}
    assert ids(client, "Task?owner:missing=false") == {owned}


def test_missing_takes_true_or_false_only(client: httpx.Client) -> None:
    check_refused(client, [f"Patient?gender:missing={value}" for value in ["yes", "1", ""]])
