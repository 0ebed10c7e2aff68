"""Search-index rows from resource bodies (app.search.index_rows; spec R4B search.html)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.fhir.jsonio import parse_json
from app.search.index_rows import (
    MAX_DATE,
    MAX_EXACT,
    MAX_STRING,
    MAX_TOKEN,
    MIN_DATE,
    NEG_INF,
    POS_INF,
    exact_string,
    index_rows,
    normalize_string,
    precision_range,
)
from app.storage.index import (
    DateIndex,
    IndexRows,
    NumberIndex,
    OfTypeIndex,
    QuantityIndex,
    ReferenceIndex,
    StringIndex,
    TokenIndex,
    UriIndex,
)

OWN = "https://fhir.example.org/r4b"
EXAMPLES = Path(__file__).parent / "fixtures" / "examples"


def rows_of(body: dict[str, Any], own_base: str = OWN) -> IndexRows:
    return index_rows(body["resourceType"], body, own_base=own_base)


def parsed(text: str) -> Any:
    """A body as the server sees it (decimals as ExactDecimal, integers as int)."""
    return parse_json(text.encode(), max_depth=64)


def only(rows: tuple[Any, ...], param: str) -> list[Any]:
    return [row for row in rows if row.param == param]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --- token ------------------------------------------------------------------------------


def test_codeable_concept_gives_a_row_per_coding_and_a_text_row() -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "29463-7", "display": "Body  Weight"},
                {"system": "http://snomed.info/sct", "code": "27113001"},
            ],
            "text": "Poids  Corporel Mesuré",
        },
    }
    assert only(rows_of(body).tokens, "code") == [
        TokenIndex("code", "http://loinc.org", "29463-7", "body weight"),
        TokenIndex("code", "http://snomed.info/sct", "27113001", None),
        TokenIndex("code", None, None, "poids corporel mesure"),
    ]


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        pytest.param(
            {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"},
            [TokenIndex("identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345")],
            id="with-system",
        ),
        pytest.param(
            {"value": "12345"}, [TokenIndex("identifier", None, "12345")], id="without-system"
        ),
        pytest.param(
            {"system": "http://hospital.example/mrn"},
            [TokenIndex("identifier", "http://hospital.example/mrn", None)],
            id="system-only",
        ),
        pytest.param({"use": "usual"}, [], id="nothing-to-index"),
        pytest.param(
            {"system": "http://x/" + "s" * MAX_TOKEN, "value": "1"}, [], id="system-too-long"
        ),
    ],
)
def test_identifier_tokens(identifier: dict[str, Any], expected: list[TokenIndex]) -> None:
    body = {"resourceType": "Patient", "identifier": [identifier]}
    assert only(rows_of(body).tokens, "identifier") == expected


def test_identifier_type_serves_of_type_and_text() -> None:
    type_cc = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
        "text": "Medical Record",
    }
    body = {
        "resourceType": "Patient",
        "identifier": [{"type": type_cc, "system": "http://h/mrn", "value": "654321"}],
    }
    rows = rows_of(body)
    assert only(rows.of_types, "identifier") == [
        OfTypeIndex("identifier", "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "654321")
    ]
    assert only(rows.tokens, "identifier") == [
        TokenIndex("identifier", "http://h/mrn", "654321"),
        TokenIndex("identifier", None, None, "medical record"),
    ]


@pytest.mark.parametrize(
    ("active", "code"),
    [pytest.param(True, "true", id="true"), pytest.param(False, "false", id="false")],
)
def test_boolean_token(active: bool, code: str) -> None:
    body = {"resourceType": "Patient", "active": active}
    assert only(rows_of(body).tokens, "active") == [TokenIndex("active", None, code)]


def test_code_and_contact_point_tokens_have_no_system() -> None:
    body = {
        "resourceType": "Patient",
        "gender": "female",
        "telecom": [
            {"system": "phone", "value": "+31 20 555 0100", "use": "work"},
            {"system": "email", "value": "a@example.org"},
        ],
    }
    rows = rows_of(body)
    assert only(rows.tokens, "gender") == [TokenIndex("gender", None, "female")]
    assert only(rows.tokens, "telecom") == [
        TokenIndex("telecom", None, "+31 20 555 0100"),
        TokenIndex("telecom", None, "a@example.org"),
    ]
    # the phone parameter's expression keeps only system = phone
    assert only(rows.tokens, "phone") == [TokenIndex("phone", None, "+31 20 555 0100")]


# --- string -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        pytest.param("Ångström", "angstrom", id="ring-and-umlaut"),
        pytest.param("  MÜLLER\t-  Lüdenscheidt\n", "muller - ludenscheidt", id="space-case"),
        pytest.param("Straße", "strasse", id="sharp-s-casefold"),
        pytest.param("İstanbul", "istanbul", id="dotted-capital-i"),
        pytest.param("ﬁnn", "finn", id="ligature-nfkd"),
        pytest.param("Chalmers", "chalmers", id="ascii"),
        pytest.param(" \t ", "", id="blank"),
    ],
)
def test_normalize_string(text: str, normalized: str) -> None:
    assert normalize_string(text) == normalized


def test_long_strings_are_cut() -> None:
    long = "Ab " * 1000
    assert normalize_string(long) == ("ab " * 1000)[:MAX_STRING]
    assert exact_string(long) == long[:MAX_EXACT]


def test_human_name_gives_a_row_per_part() -> None:
    body = {
        "resourceType": "Patient",
        "name": [
            {
                "family": "Ångström",
                "given": ["Anders", "Jonas"],
                "prefix": ["Dr."],
                "suffix": ["PhD"],
                "text": "Dr. Anders Jonas Ångström PhD",
            }
        ],
    }
    rows = rows_of(body)
    assert only(rows.strings, "name") == [
        StringIndex("name", "angstrom", "Ångström"),
        StringIndex("name", "anders", "Anders"),
        StringIndex("name", "jonas", "Jonas"),
        StringIndex("name", "dr.", "Dr."),
        StringIndex("name", "phd", "PhD"),
        StringIndex("name", "dr. anders jonas angstrom phd", "Dr. Anders Jonas Ångström PhD"),
    ]
    assert only(rows.strings, "family") == [StringIndex("family", "angstrom", "Ångström")]
    assert only(rows.strings, "given") == [
        StringIndex("given", "anders", "Anders"),
        StringIndex("given", "jonas", "Jonas"),
    ]


def test_address_gives_a_row_per_part() -> None:
    body = {
        "resourceType": "Patient",
        "address": [
            {
                "use": "home",
                "line": ["Hauptstraße 5", "Hinterhaus"],
                "city": "Zürich",
                "district": "Kreis 1",
                "state": "ZH",
                "postalCode": "8001",
                "country": "CH",
            }
        ],
    }
    rows = rows_of(body)
    assert [(r.normalized, r.exact) for r in only(rows.strings, "address")] == [
        ("hauptstrasse 5", "Hauptstraße 5"),
        ("hinterhaus", "Hinterhaus"),
        ("zurich", "Zürich"),
        ("kreis 1", "Kreis 1"),
        ("zh", "ZH"),
        ("8001", "8001"),
        ("ch", "CH"),
    ]
    assert only(rows.strings, "address-city") == [StringIndex("address-city", "zurich", "Zürich")]
    assert only(rows.tokens, "address-use") == [TokenIndex("address-use", None, "home")]


# --- reference --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param(
            "Patient/123", ReferenceIndex("subject", "Patient", "123", None, None), id="relative"
        ),
        pytest.param(
            "Patient/123/_history/7",
            ReferenceIndex("subject", "Patient", "123", "7", None),
            id="relative-versioned",
        ),
        pytest.param(
            f"{OWN}/Patient/123",
            ReferenceIndex("subject", "Patient", "123", None, f"{OWN}/Patient/123"),
            id="absolute-own-base",
        ),
        pytest.param(
            f"{OWN}/Patient/123/_history/2",
            ReferenceIndex("subject", "Patient", "123", "2", f"{OWN}/Patient/123/_history/2"),
            id="absolute-own-base-versioned",
        ),
        pytest.param(
            "https://other.example.org/fhir/Patient/123",
            ReferenceIndex(
                "subject", None, None, None, "https://other.example.org/fhir/Patient/123"
            ),
            id="absolute-foreign",
        ),
        pytest.param(
            f"{OWN}x/Patient/123",
            ReferenceIndex("subject", None, None, None, f"{OWN}x/Patient/123"),
            id="absolute-base-lookalike",
        ),
        pytest.param(
            "urn:uuid:9d7e2a1c-6a4f-4c1a-9a53-5f1f0c3b2e11",
            ReferenceIndex(
                "subject", None, None, None, "urn:uuid:9d7e2a1c-6a4f-4c1a-9a53-5f1f0c3b2e11"
            ),
            id="urn-uuid",
        ),
        pytest.param("#p1", None, id="contained"),
    ],
)
def test_literal_references(reference: str, expected: ReferenceIndex | None) -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": reference},
    }
    assert only(rows_of(body).references, "subject") == ([expected] if expected else [])


def test_own_base_with_trailing_slash() -> None:
    body = {
        "resourceType": "Observation",
        "subject": {"reference": f"{OWN}/Group/g1"},
    }
    rows = rows_of(body, own_base=OWN + "/")
    assert only(rows.references, "subject") == [
        ReferenceIndex("subject", "Group", "g1", None, f"{OWN}/Group/g1")
    ]


def test_reference_identifier_becomes_a_token_of_param_identifier() -> None:
    body = {
        "resourceType": "Observation",
        "subject": {
            "identifier": {"system": "http://h/mrn", "value": "MRN-1"},
            "display": "Someone",
        },
    }
    rows = rows_of(body)
    assert only(rows.references, "subject") == []
    assert only(rows.tokens, "subject:identifier") == [
        TokenIndex("subject:identifier", "http://h/mrn", "MRN-1")
    ]


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        pytest.param(
            "http://example.org/PlanDefinition/kd|1.2",
            ReferenceIndex(
                "instantiates-canonical",
                None,
                None,
                "1.2",
                "http://example.org/PlanDefinition/kd",
            ),
            id="versioned",
        ),
        pytest.param(
            "http://example.org/PlanDefinition/kd",
            ReferenceIndex(
                "instantiates-canonical", None, None, None, "http://example.org/PlanDefinition/kd"
            ),
            id="unversioned",
        ),
    ],
)
def test_canonical_references(canonical: str, expected: ReferenceIndex) -> None:
    body = {"resourceType": "CarePlan", "instantiatesCanonical": [canonical]}
    assert only(rows_of(body).references, "instantiates-canonical") == [expected]


# --- date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        pytest.param("1974", utc(1974, 1, 1), utc(1975, 1, 1), id="year"),
        pytest.param("1974-12", utc(1974, 12, 1), utc(1975, 1, 1), id="month"),
        pytest.param("1974-12-25", utc(1974, 12, 25), utc(1974, 12, 26), id="day"),
    ],
)
def test_date_precisions(value: str, low: datetime, high: datetime) -> None:
    body = {"resourceType": "Patient", "birthDate": value}
    assert only(rows_of(body).dates, "birthdate") == [DateIndex("birthdate", low, high)]


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        pytest.param(
            "2013-04-02T09:30:10+01:00",
            utc(2013, 4, 2, 8, 30, 10),
            utc(2013, 4, 2, 8, 30, 11),
            id="seconds-plus-offset",
        ),
        pytest.param(
            "2013-04-02T23:30:10-05:00",
            utc(2013, 4, 3, 4, 30, 10),
            utc(2013, 4, 3, 4, 30, 11),
            id="seconds-minus-offset-next-day",
        ),
        pytest.param(
            "2013-04-02T09:30:10.25Z",
            utc(2013, 4, 2, 9, 30, 10, 250000),
            utc(2013, 4, 2, 9, 30, 10, 260000),
            id="fraction",
        ),
    ],
)
def test_datetime_with_offsets(value: str, low: datetime, high: datetime) -> None:
    body = {"resourceType": "Observation", "effectiveDateTime": value}
    assert only(rows_of(body).dates, "date") == [DateIndex("date", low, high)]


@pytest.mark.parametrize(
    ("period", "low", "high"),
    [
        pytest.param(
            {"start": "2013-04-02", "end": "2013-04-05T10:00:00+02:00"},
            utc(2013, 4, 2),
            utc(2013, 4, 5, 8, 0, 1),
            id="closed",
        ),
        pytest.param({"start": "2013-04"}, utc(2013, 4, 1), MAX_DATE, id="open-end"),
        pytest.param({"end": "2013"}, MIN_DATE, utc(2014, 1, 1), id="open-start"),
    ],
)
def test_period(period: dict[str, str], low: datetime, high: datetime) -> None:
    body = {"resourceType": "Observation", "effectivePeriod": period}
    assert only(rows_of(body).dates, "date") == [DateIndex("date", low, high)]


def test_period_bounds_are_utc_aware() -> None:
    assert MIN_DATE.tzinfo is UTC and MAX_DATE.tzinfo is UTC
    body = {"resourceType": "Observation", "effectivePeriod": {"start": "2013-04-02T10:00+02:00"}}
    (row,) = only(rows_of(body).dates, "date")
    assert row.low == datetime(2013, 4, 2, 10, tzinfo=timezone(timedelta(hours=2)))


def test_timing_uses_outer_limits_of_events_and_bounds() -> None:
    body = {
        "resourceType": "Observation",
        "effectiveTiming": {
            "event": ["2020-03-05T10:00:00Z", "2020-03-01"],
            "repeat": {"boundsPeriod": {"start": "2020-03-02", "end": "2020-03-10"}},
        },
    }
    assert only(rows_of(body).dates, "date") == [
        DateIndex("date", utc(2020, 3, 1), utc(2020, 3, 11))
    ]


def test_date_strings_that_are_no_dates_are_skipped() -> None:
    body = {
        "resourceType": "CarePlan",
        "activity": [
            {"detail": {"status": "scheduled", "scheduledString": "every other week"}},
            {"detail": {"status": "scheduled", "scheduledString": "2021-06"}},
        ],
    }
    assert only(rows_of(body).dates, "activity-date") == [
        DateIndex("activity-date", utc(2021, 6, 1), utc(2021, 7, 1))
    ]


# --- quantity / number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        pytest.param(Decimal("5.4"), Decimal("5.35"), Decimal("5.45"), id="one-decimal"),
        pytest.param(Decimal("5.40"), Decimal("5.395"), Decimal("5.405"), id="two-decimals"),
        pytest.param(100, Decimal("99.5"), Decimal("100.5"), id="integer"),
        pytest.param(Decimal("1e2"), Decimal("50"), Decimal("150"), id="exponent"),
        pytest.param(Decimal("-0.001"), Decimal("-0.0015"), Decimal("-0.0005"), id="negative"),
        pytest.param(
            Decimal("1234567890123456789012345678901234.5"),
            Decimal("1234567890123456789012345678901234.45"),
            Decimal("1234567890123456789012345678901234.55"),
            id="more-digits-than-default-context",
        ),
    ],
)
def test_precision_range(value: Decimal | int, low: Decimal, high: Decimal) -> None:
    assert precision_range(value) == (low, high)


def test_plain_quantity_is_stored_exactly() -> None:
    body = parsed(
        '{"resourceType": "Observation", "valueQuantity": {"value": 5.4, "unit": "mg",'
        ' "system": "http://unitsofmeasure.org", "code": "mg"}}'
    )
    (row,) = only(rows_of(body).quantities, "value-quantity")
    assert row == QuantityIndex(
        "value-quantity",
        Decimal("5.4"),
        Decimal("5.4"),
        Decimal("5.4"),
        "http://unitsofmeasure.org",
        "mg",
        "mg",
    )
    assert str(row.low) == "5.4" and str(row.high) == "5.4"


@pytest.mark.parametrize(
    ("comparator", "low", "high"),
    [
        pytest.param("<", NEG_INF, Decimal("5.4"), id="lt"),
        pytest.param("<=", NEG_INF, Decimal("5.4"), id="le"),
        pytest.param(">", Decimal("5.4"), POS_INF, id="gt"),
        pytest.param(">=", Decimal("5.4"), POS_INF, id="ge"),
    ],
)
def test_quantity_comparator_opens_one_end(comparator: str, low: Decimal, high: Decimal) -> None:
    body = parsed(
        '{"resourceType": "Observation", "valueQuantity": {"value": 5.4, "comparator": "'
        + comparator
        + '", "unit": "mg"}}'
    )
    (row,) = only(rows_of(body).quantities, "value-quantity")
    assert (row.value, row.low, row.high, row.unit) == (Decimal("5.4"), low, high, "mg")


def test_quantity_without_value_is_skipped() -> None:
    body = {"resourceType": "Observation", "valueQuantity": {"unit": "mg"}}
    assert rows_of(body).quantities == ()


def test_money() -> None:
    body = parsed(
        '{"resourceType": "Invoice", "status": "issued",'
        ' "totalGross": {"value": 48.00, "currency": "EUR"}}'
    )
    assert only(rows_of(body).quantities, "totalgross") == [
        QuantityIndex(
            "totalgross",
            Decimal("48.00"),
            Decimal("48.00"),
            Decimal("48.00"),
            "urn:iso:std:iso:4217",
            "EUR",
            None,
        )
    ]


@pytest.mark.parametrize(
    ("onset", "expected"),
    [
        pytest.param(
            '"onsetRange": {"low": {"value": 10, "unit": "a", "system": "http://unitsofmeasure'
            '.org", "code": "a"}, "high": {"value": 20.5, "unit": "a"}}',
            (Decimal(10), Decimal(10), Decimal("20.5"), "a"),
            id="closed",
        ),
        pytest.param(
            '"onsetRange": {"high": {"value": 20, "code": "a"}}',
            (Decimal(20), NEG_INF, Decimal(20), "a"),
            id="open-low",
        ),
        pytest.param(
            '"onsetRange": {"low": {"value": 10, "code": "a"}}',
            (Decimal(10), Decimal(10), POS_INF, "a"),
            id="open-high",
        ),
        pytest.param(
            '"onsetAge": {"value": 52, "code": "a", "system": "http://unitsofmeasure.org"}',
            (Decimal(52), Decimal(52), Decimal(52), "a"),
            id="age",
        ),
    ],
)
def test_range_and_age_quantities(onset: str, expected: tuple[Any, ...]) -> None:
    body = parsed(
        '{"resourceType": "Condition", "subject": {"reference": "Patient/1"}, ' + onset + "}"
    )
    (row,) = only(rows_of(body).quantities, "onset-age")
    assert (row.value, row.low, row.high, row.code) == expected


def test_numbers_and_number_ranges() -> None:
    body = parsed(
        '{"resourceType": "RiskAssessment", "status": "final", "subject": {"reference":'
        ' "Patient/1"}, "prediction": [{"probabilityDecimal": 0.02},'
        ' {"probabilityRange": {"low": {"value": 0.1}, "high": {"value": 0.25}}}]}'
    )
    assert only(rows_of(body).numbers, "probability") == [
        NumberIndex("probability", Decimal("0.02"), Decimal("0.02"), Decimal("0.02")),
        NumberIndex("probability", Decimal("0.1"), Decimal("0.1"), Decimal("0.25")),
    ]


# --- uri --------------------------------------------------------------------------------


def test_canonical_uri_with_version_also_indexes_the_bare_url() -> None:
    body = {
        "resourceType": "Patient",
        "meta": {
            "profile": [
                "http://example.org/StructureDefinition/p|1.0",
                "http://example.org/StructureDefinition/q",
            ]
        },
    }
    assert only(rows_of(body).uris, "_profile") == [
        UriIndex("_profile", "http://example.org/StructureDefinition/p|1.0"),
        UriIndex("_profile", "http://example.org/StructureDefinition/p"),
        UriIndex("_profile", "http://example.org/StructureDefinition/q"),
    ]


def test_uri() -> None:
    body = {"resourceType": "CarePlan", "instantiatesUri": ["http://example.org/protocol/7"]}
    assert only(rows_of(body).uris, "instantiates-uri") == [
        UriIndex("instantiates-uri", "http://example.org/protocol/7")
    ]


# --- de-duplication, skipping, examples -------------------------------------------------


def test_identical_rows_are_kept_once_per_param() -> None:
    coding = {"system": "http://loinc.org", "code": "8867-4"}
    body = {
        "resourceType": "Observation",
        "code": {"coding": [coding, dict(coding)]},
        "subject": {"reference": "Patient/1"},
        "basedOn": [{"reference": "ServiceRequest/1"}, {"reference": "ServiceRequest/1"}],
        "identifier": [{"value": "a"}, {"value": "a"}, {"system": "s", "value": "a"}],
    }
    rows = rows_of(body)
    assert only(rows.tokens, "code") == [TokenIndex("code", "http://loinc.org", "8867-4")]
    assert only(rows.references, "based-on") == [
        ReferenceIndex("based-on", "ServiceRequest", "1", None, None)
    ]
    assert only(rows.tokens, "identifier") == [
        TokenIndex("identifier", None, "a"),
        TokenIndex("identifier", "s", "a"),
    ]
    # the same reference under two parameters stays in both
    assert only(rows.references, "subject") == [
        ReferenceIndex("subject", "Patient", "1", None, None)
    ]
    assert only(rows.references, "patient") == [
        ReferenceIndex("patient", "Patient", "1", None, None)
    ]


def test_malformed_values_are_skipped_not_raised() -> None:
    body = {
        "resourceType": "Observation",
        "code": {"coding": "nope", "text": 5},
        "subject": {"reference": 12},
        "effectiveDateTime": "yesterday",
        "valueQuantity": {"value": "5"},
        "identifier": ["x"],
    }
    assert rows_of(body) == IndexRows(tokens=(), references=(), dates=(), quantities=())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"resourceType": "Procedure", "performedAge": {"value": 3, "code": "a"}},
            id="date-param-given-an-age",
        ),
        pytest.param(
            {"resourceType": "Procedure", "performedString": "last summer"},
            id="date-param-given-a-non-date-string",
        ),
        pytest.param(
            {
                "resourceType": "Observation",
                "valueSampledData": {"origin": {"value": 0}, "period": 1, "dimensions": 1},
            },
            id="quantity-param-given-sampled-data",
        ),
        pytest.param(
            {"resourceType": "Observation", "subject": {"display": "no reference"}},
            id="reference-without-literal-or-identifier",
        ),
    ],
)
def test_values_a_kind_cannot_index_are_skipped(body: dict[str, Any]) -> None:
    assert rows_of(body) == IndexRows()


def test_unknown_resource_type_gives_no_rows() -> None:
    assert index_rows("NoSuchType", {"resourceType": "NoSuchType"}, own_base=OWN) == IndexRows()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_examples_produce_rows(path: Path) -> None:
    body = parse_json(path.read_bytes(), max_depth=64)
    rows = rows_of(body, own_base="http://hl7.org/fhir")
    assert rows.tokens, "every example has at least a status or code token"
    for date in rows.dates:
        assert date.low < date.high
    bounds = [(q.low, q.value, q.high) for q in rows.quantities]
    bounds += [(n.low, n.value, n.high) for n in rows.numbers]
    for low, value, high in bounds:
        assert low <= value <= high
    for rows_of_kind in (
        rows.tokens,
        rows.of_types,
        rows.strings,
        rows.references,
        rows.dates,
        rows.quantities,
        rows.numbers,
        rows.uris,
    ):
        assert len(set(rows_of_kind)) == len(rows_of_kind)
