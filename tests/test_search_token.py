"""Token search over HTTP (spec search.html#token), on both databases.

Forms: ``code`` (any system), ``system|code``, ``|code`` (no system), ``system|`` (any code
of the system); booleans; ``:not`` (includes resources without the element), ``:text``
(starts-with, normalised, on Coding.display / CodeableConcept.text / Identifier.type.text),
``:of-type`` (type-system|type-code|value); ``:in``/``:not-in``/``:above``/``:below`` refused.
Every data set holds a deleted resource and an updated one whose old value must not match.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import care_plan
from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    update,
)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
TAGS = "https://agency.example.org/tags"
OTHER_TAGS = "https://other.example.org/tags"
CLIENTS = "https://agency.example.org/clients"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"


# --- codes ------------------------------------------------------------------------------


def _category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": OBS_CAT, "code": code}]}


def _obs(code: dict[str, Any], *categories: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": code,
    }
    if categories:
        body["category"] = [_category(c) for c in categories]
    return body


@pytest.fixture
def obs(client: httpx.Client) -> dict[str, str]:
    made = {
        "loinc": create(
            client,
            _obs(
                {"coding": [{"system": LOINC, "code": "1234-5", "display": "Blood pressure"}]},
                "vital-signs",
            ),
        ),
        "snomed": create(
            client,
            _obs(
                {
                    "coding": [{"system": SNOMED, "code": "1234-5"}],
                    "text": "Alcohol use",
                },
                "social-history",
                "survey",
            ),
        ),
        "nosys": create(client, _obs({"coding": [{"code": "1234-5"}]})),
        "weight": create(
            client,
            _obs(
                {"coding": [{"system": LOINC, "code": "9999-9", "display": "Body weight"}]},
                "vital-signs",
            ),
        ),
        "mood": create(client, _obs({"text": "Évaluation de l'humeur"}, "survey")),
        "both": create(
            client,
            _obs(
                {
                    "coding": [
                        {"system": LOINC, "code": "9999-9"},
                        {"system": SNOMED, "code": "1234-5"},
                    ]
                }
            ),
        ),
        "moved": create(
            client,
            _obs(
                {"coding": [{"system": LOINC, "code": "1234-5", "display": "Blood pressure"}]},
                "vital-signs",
            ),
        ),
    }
    # The old code, display and category of "moved" must no longer match.
    update(
        client,
        "Observation",
        made["moved"],
        code={"coding": [{"system": LOINC, "code": "5555-5", "display": "Heart rate"}]},
        category=None,
    )
    gone = create(
        client,
        _obs(
            {"coding": [{"system": LOINC, "code": "1234-5", "display": "Blood pressure"}]},
            "social-history",
        ),
    )
    delete(client, "Observation", gone)
    return made


OBSERVATION_CODE_AND_CATEGORY_CASES: list[Case] = [
    ("code-any-system", "code=1234-5", {"loinc", "snomed", "nosys", "both"}),
    ("system-and-code", f"code={LOINC}|1234-5", {"loinc"}),
    ("system-and-code-2", f"code={SNOMED}|1234-5", {"snomed", "both"}),
    ("no-system", "code=|1234-5", {"nosys"}),
    ("system-only", f"code={LOINC}|", {"loinc", "weight", "both", "moved"}),
    ("new-value-of-updated", "code=5555-5", {"moved"}),
    ("no-prefix-match-on-codes", "code=1234", set()),
    ("or", f"code={SNOMED}|1234-5,{LOINC}|9999-9", {"snomed", "weight", "both"}),
    ("and-across-codings", f"code=1234-5&code={LOINC}|", {"loinc", "both"}),
    ("and-disjoint", f"code={LOINC}|1234-5&code={LOINC}|9999-9", set()),
    (
        "not-system-code",
        f"code:not={LOINC}|1234-5",
        {"snomed", "nosys", "weight", "mood", "both", "moved"},
    ),
    ("not-code", "code:not=1234-5", {"weight", "mood", "moved"}),
    (
        "not-includes-absent-and-multi-valued",
        f"category:not={OBS_CAT}|social-history",
        {"loinc", "nosys", "weight", "mood", "both", "moved"},
    ),
    ("category", "category=survey", {"snomed", "mood"}),
    (
        "two-params",
        f"category={OBS_CAT}|vital-signs&code={LOINC}|",
        {"loinc", "weight"},
    ),
    ("text-display", "code:text=blood", {"loinc"}),
    ("text-display-case", "code:text=BLOOD PRESS", {"loinc"}),
    ("text-concept-text", "code:text=alc", {"snomed"}),
    ("text-accents", "code:text=evaluation", {"mood"}),
    ("text-updated", "code:text=heart", {"moved"}),
    ("text-is-starts-with", "code:text=pressure", set()),
    ("text-or", "code:text=blood,body", {"loinc", "weight"}),
]


def test_observation_code_and_category(client: httpx.Client, obs: dict[str, str]) -> None:
    check(client, obs, OBSERVATION_CODE_AND_CATEGORY_CASES, "Observation?")


def test_terminology_modifiers_are_refused(client: httpx.Client) -> None:
    modifiers = ["in", "not-in", "above", "below"]
    check_refused(client, [f"Observation?code:{m}={LOINC}|1234-5" for m in modifiers])
    check_refused(client, [f"Patient?gender:{m}=female" for m in modifiers])


def test_malformed_token_queries(client: httpx.Client) -> None:
    check_refused(
        client,
        [
            "Observation?code:exact=1234-5",  # a string modifier on a token
            "Observation?code:contains=1234",
            "Observation?code:nonsense=1234-5",
            "Observation?code=a|b|c",
            "Observation?code=1234\x00",
            f"Patient?identifier:of-type={V2_0203}|MR",  # :of-type needs three parts
            "Patient?identifier:of-type=111",
            "Patient?active:missing=maybe",
        ],
    )


# --- booleans, codes, ContactPoint, Identifier, meta --------------------------------------


@pytest.fixture
def people(client: httpx.Client) -> dict[str, str]:
    made = {
        "pa": create(
            client,
            {
                "resourceType": "Patient",
                "meta": {
                    "tag": [{"system": TAGS, "code": "vip"}],
                    "security": [{"system": CONF, "code": "R"}],
                },
                "active": True,
                "gender": "female",
                "telecom": [
                    {"system": "email", "value": "ana@example.org"},
                    {"system": "phone", "value": "0400 111 222"},
                ],
                "identifier": [
                    {
                        "type": {
                            "coding": [{"system": V2_0203, "code": "MR"}],
                            "text": "Medical record number",
                        },
                        "system": CLIENTS,
                        "value": "111",
                    }
                ],
            },
        ),
        "pb": create(
            client,
            {
                "resourceType": "Patient",
                "meta": {"security": [{"system": CONF, "code": "N"}]},
                "active": False,
                "gender": "male",
                "telecom": [{"system": "other", "value": "ana@example.org"}],
                "identifier": [
                    {
                        "type": {
                            "coding": [{"system": V2_0203, "code": "DL"}],
                            "text": "Driver licence",
                        },
                        "system": CLIENTS,
                        "value": "111",
                    }
                ],
            },
        ),
        "pc": create(
            client,
            {
                "resourceType": "Patient",
                "meta": {"tag": [{"system": OTHER_TAGS, "code": "vip"}]},
                "identifier": [{"system": CLIENTS, "value": "111"}],
            },
        ),
        "pd": create(
            client,
            {
                "resourceType": "Patient",
                "active": True,
                "gender": "female",
                "telecom": [{"system": "email", "value": "ana@example.org"}],
                "identifier": [
                    {
                        "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                        "system": CLIENTS,
                        "value": "111",
                    }
                ],
            },
        ),
    }
    # pd changes every searched value: its old ones must no longer match. (It gets its tag
    # only now: whether an update keeps old tags is a separate question, not tested here.)
    update(
        client,
        "Patient",
        made["pd"],
        meta={"tag": [{"system": TAGS, "code": "standard"}]},
        active=False,
        gender="unknown",
        telecom=[{"system": "email", "value": "dee@example.org"}],
        identifier=[{"system": CLIENTS, "value": "444"}],
    )
    gone = create(
        client,
        {
            "resourceType": "Patient",
            "meta": {"tag": [{"system": TAGS, "code": "vip"}]},
            "active": True,
            "gender": "female",
            "telecom": [{"system": "email", "value": "ana@example.org"}],
        },
    )
    delete(client, "Patient", gone)
    return made


PATIENT_TOKENS_CASES: list[Case] = [
    ("true", "active=true", {"pa"}),
    ("false", "active=false", {"pb", "pd"}),
    ("not-true-includes-absent", "active:not=true", {"pb", "pc", "pd"}),
    ("true-or-false", "active=true,false", {"pa", "pb", "pd"}),
    ("gender", "gender=female", {"pa"}),
    ("gender-or", "gender=female,male", {"pa", "pb"}),
    ("gender-updated", "gender=unknown", {"pd"}),
    ("gender-not", "gender:not=female", {"pb", "pc", "pd"}),
    ("gender-and", "gender=female&gender=male", set()),
    ("email-only-email-system", "email=ana@example.org", {"pa"}),
    ("telecom-any-system", "telecom=ana@example.org", {"pa", "pb"}),
    ("email-updated", "email=dee@example.org", {"pd"}),
    ("phone-with-spaces", "phone=0400 111 222", {"pa"}),
    ("phone-not-email", "phone=ana@example.org", set()),
    ("identifier", f"identifier={CLIENTS}|111", {"pa", "pb", "pc"}),
    ("identifier-system-only", f"identifier={CLIENTS}|", {"pa", "pb", "pc", "pd"}),
    ("identifier-updated", "identifier=444", {"pd"}),
    ("of-type-mr", f"identifier:of-type={V2_0203}|MR|111", {"pa"}),
    ("of-type-dl", f"identifier:of-type={V2_0203}|DL|111", {"pb"}),
    ("of-type-other-value", f"identifier:of-type={V2_0203}|MR|112", set()),
    (
        "of-type-or",
        f"identifier:of-type={V2_0203}|MR|111,{V2_0203}|DL|111",
        {"pa", "pb"},
    ),
    ("identifier-text", "identifier:text=medical", {"pa"}),
    ("identifier-text-case", "identifier:text=DRIVER lic", {"pb"}),
    ("identifier-text-starts-with", "identifier:text=record", set()),
    ("tag", f"_tag={TAGS}|vip", {"pa"}),
    ("tag-any-system", "_tag=vip", {"pa", "pc"}),
    ("tag-updated", f"_tag={TAGS}|standard", {"pd"}),
    ("tag-not", f"_tag:not={TAGS}|vip", {"pb", "pc", "pd"}),
    ("security", f"_security={CONF}|R", {"pa"}),
    ("security-system", f"_security={CONF}|", {"pa", "pb"}),
]


def test_patient_tokens(client: httpx.Client, people: dict[str, str]) -> None:
    check(client, people, PATIENT_TOKENS_CASES, "Patient?")


@pytest.fixture
def records(client: httpx.Client) -> dict[str, str]:
    """Token-bearing elements of the case-management types, two of each so a wrong match shows."""
    plan = care_plan()  # category SNOMED 734163000, activity codes as text only
    made = {
        "cp_active": create(client, plan),
        "cp_draft": create(
            client,
            care_plan(
                status="draft",
                intent="proposal",
                category=[{"coding": [{"system": SNOMED, "code": "736055001"}]}],
                activity=[{"detail": {"status": "not-started", "code": {"text": "Detox"}}}],
            ),
        ),
        "t_req": create(
            client,
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": TASK_CODES, "code": "fulfill"}]},
                "businessStatus": {"text": "Waiting for client"},
            },
        ),
        "t_done": create(
            client,
            {
                "resourceType": "Task",
                "status": "completed",
                "intent": "plan",
                "code": {"coding": [{"system": TASK_CODES, "code": "approve"}]},
            },
        ),
        "g_active": create(
            client,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Stable housing"},
                "subject": {"reference": "Patient/x"},
            },
        ),
        "g_proposed": create(
            client,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "proposed",
                "description": {"text": "Reduce drinking"},
                "subject": {"reference": "Patient/x"},
            },
        ),
        "sr_active": create(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "code": {"coding": [{"system": SNOMED, "code": "24165007"}], "text": "AOD"},
                "subject": {"reference": "Patient/x"},
            },
        ),
        "sr_draft": create(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "draft",
                "intent": "plan",
                "code": {"text": "Housing referral"},
                "subject": {"reference": "Patient/x"},
            },
        ),
        "o_concept": create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Housing status"},
                "valueCodeableConcept": {
                    "coding": [{"system": SNOMED, "code": "32911000", "display": "Homeless"}]
                },
            },
        ),
        "o_string": create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Housing status"},
                "valueString": "32911000",
            },
        ),
    }
    return made


OTHER_TYPES_CASES: list[Case] = [
    ("careplan-status", "CarePlan?status=active", {"cp_active"}),
    ("careplan-intent", "CarePlan?intent=proposal", {"cp_draft"}),
    ("careplan-category", f"CarePlan?category={SNOMED}|734163000", {"cp_active"}),
    ("careplan-category-text", "CarePlan?category:text=strengths", {"cp_active"}),
    ("careplan-activity-code", "CarePlan?activity-code:text=referral", {"cp_active"}),
    ("careplan-activity-code-2", "CarePlan?activity-code:text=detox", {"cp_draft"}),
    ("task-status", "Task?status=requested", {"t_req"}),
    ("task-status-not", "Task?status:not=requested", {"t_done"}),
    ("task-intent", "Task?intent=plan", {"t_done"}),
    ("task-code", f"Task?code={TASK_CODES}|fulfill", {"t_req"}),
    ("task-business-status", "Task?business-status:text=waiting", {"t_req"}),
    ("task-and", "Task?status=requested&intent=plan", set()),
    ("goal-lifecycle", "Goal?lifecycle-status=active", {"g_active"}),
    ("goal-lifecycle-or", "Goal?lifecycle-status=active,proposed", {"g_active", "g_proposed"}),
    ("sr-status", "ServiceRequest?status=draft", {"sr_draft"}),
    ("sr-intent", "ServiceRequest?intent=order", {"sr_active"}),
    ("sr-code", "ServiceRequest?code=24165007", {"sr_active"}),
    ("sr-code-text", "ServiceRequest?code:text=housing", {"sr_draft"}),
    ("obs-value-concept", f"Observation?value-concept={SNOMED}|32911000", {"o_concept"}),
    ("obs-value-concept-text", "Observation?value-concept:text=homeless", {"o_concept"}),
]


def test_token_parameters_of_other_types(client: httpx.Client, records: dict[str, str]) -> None:
    check(client, records, OTHER_TYPES_CASES, "")
