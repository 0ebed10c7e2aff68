"""Plain case-management models <-> FHIR: round trips (hypothesis) lose nothing the plain
model holds, and every FHIR resource the mappings build passes the server's own validation
(app/fhir/validation.py check_resource). The plain models' codes match the CodeSystems."""

from __future__ import annotations

import copy
import datetime as dt
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.fhir.validation import check_resource
from mappings import casework as m
from schemas import casework as plain
from schemas.conformance import codes, conformance_resources

TEXT = st.from_regex(r"[A-Za-zÀ-ÿ0-9][A-Za-zÀ-ÿ0-9 ,.'()-]{0,30}[A-Za-z0-9.]", fullmatch=True)
IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-.]{0,20}", fullmatch=True)
DATES = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31))


def literal(alias: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(typing.get_args(alias))


def ref(*types: str) -> st.SearchStrategy[str]:
    return st.builds(lambda t, i: f"{t}/{i}", st.sampled_from(types), IDS)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def forwards(value: Any) -> bool:
    """A period that does not end before it starts (FHIR per-1: the server refuses others)."""
    return value.start is None or value.end is None or value.end >= value.start


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource passes the server's validation unchanged (a copy is checked)."""
    checked = check_resource(
        copy.deepcopy(resource),
        resource_type=resource["resourceType"],
        resource_id=resource.get("id"),
    )
    assert checked == resource
    return resource


CLIENTS = st.builds(
    plain.Client,
    id=opt(IDS),
    given_names=st.lists(TEXT, max_size=3),
    family_name=opt(TEXT),
    birth_date=opt(DATES),
    gender=opt(literal(plain.Gender)),
    phone=opt(TEXT),
    deceased=opt(st.booleans()),
    indigenous_status=opt(literal(plain.IndigenousStatus)),
    language=opt(st.sampled_from(["en", "vi", "ar", "zh-Hant", "pjt", "en-AU"])),
    interpreter_needed=opt(st.booleans()),
)
# (deceased, death_date): a death date comes with deceased true or left out.
DEATHS = st.tuples(opt(st.booleans()), st.none()) | st.tuples(st.sampled_from([None, True]), DATES)
SUPPORTS = DEATHS.flatmap(
    lambda death: st.builds(
        plain.Support,
        id=opt(IDS),
        name=TEXT,
        relationship=opt(literal(plain.Relationship)),
        gender=opt(literal(plain.Gender)),
        birth_date=opt(DATES),
        deceased=st.just(death[0]),
        death_date=st.just(death[1]),
        separation=opt(literal(plain.Separation)),
        parent=opt(ref("RelatedPerson", "FamilyMemberHistory")),
        phone=opt(TEXT),
        connection=opt(literal(plain.Connection)),
        flow=opt(literal(plain.Flow)),
        active=st.booleans(),
    )
)
SYSTEMS = st.builds(
    plain.Support,
    id=opt(IDS),
    kind=literal(plain.SystemKind),
    name=TEXT,
    connection=opt(literal(plain.Connection)),
    flow=opt(literal(plain.Flow)),
    active=st.booleans(),
)
PARTIES = ref("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson")
CASES = st.builds(
    plain.Case,
    id=opt(IDS),
    client_id=IDS,
    status=literal(plain.CaseStatus),
    stage=literal(plain.Stage),
    model=opt(literal(plain.Model)),
    setting=opt(literal(plain.Setting)),
    managing_agency=opt(ref("Organization")),
    care_manager=opt(ref("Practitioner", "PractitionerRole")),
    care_team=st.lists(
        st.builds(plain.TeamMember, member=PARTIES, name=opt(TEXT), role=TEXT), max_size=4
    ),
    referral=opt(ref("ServiceRequest")),
    start=opt(DATES),
    end=opt(DATES),
    closure_reason=opt(literal(plain.ClosureReason)),
    closure_summary=opt(TEXT),
    care_team_id=IDS,
).filter(forwards)
GOALS = st.builds(
    plain.Goal,
    id=IDS,
    description=TEXT,
    measure=opt(TEXT),
    target=opt(TEXT),
    achievable_because=opt(TEXT),
    addresses=st.lists(IDS, max_size=3),
    due=opt(DATES),
    status=st.sampled_from(["proposed", "planned", "accepted", "active", "completed", "cancelled"]),
    achievement=opt(
        st.sampled_from(
            ["in-progress", "improving", "worsening", "no-change", "achieved", "not-achieved"]
        )
    ),
    expressed_by_client=st.booleans(),
)
ACTIONS = st.builds(
    plain.Action,
    what=TEXT,
    how=opt(TEXT),
    where=opt(TEXT),
    start=opt(DATES),
    end=opt(DATES),
    who=st.lists(
        st.builds(plain.Responsibility, who=PARTIES, name=opt(TEXT), responsibility=TEXT),
        max_size=3,
    ),
    service_type=opt(literal(plain.ServiceType)),
    status=st.sampled_from(
        ["not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled"]
    ),
    sessions=opt(st.integers(0, 1000)),
).filter(forwards)
PLANS = st.builds(
    plain.CarePlan,
    id=opt(IDS),
    title=TEXT,
    model=opt(literal(plain.Model)),
    status=st.sampled_from(["draft", "active", "on-hold", "revoked", "completed"]),
    start=opt(DATES),
    end=opt(DATES),
    phases=st.lists(
        st.builds(plain.Phase, name=TEXT, start=DATES, end=DATES).filter(forwards), max_size=3
    ),
    needs=st.lists(
        st.builds(plain.Need, id=IDS, description=TEXT), max_size=3, unique_by=lambda n: n.id
    ),
    goals=st.lists(GOALS, max_size=3, unique_by=lambda g: g.id),
    actions=st.lists(ACTIONS, max_size=3),
    strengths=st.lists(TEXT, max_size=3),
    supports=st.lists(IDS, max_size=3),
    review_due=opt(DATES),
).filter(forwards)


@settings(max_examples=60, deadline=None)
@given(CLIENTS)
def test_client_round_trip(client: plain.Client) -> None:
    patient = valid(m.client_to_patient(client))
    assert m.patient_to_client(patient) == client


@settings(max_examples=60, deadline=None)
@given(SUPPORTS, IDS)
def test_support_round_trip(support: plain.Support, client_id: str) -> None:
    person = valid(m.support_to_fhir(support, client_id=client_id))
    assert person["resourceType"] == "RelatedPerson"
    assert m.support_from_fhir(person) == support


@settings(max_examples=40, deadline=None)
@given(SYSTEMS, IDS)
def test_informal_system_round_trip(system: plain.Support, client_id: str) -> None:
    group = valid(m.support_to_fhir(system, client_id=client_id))
    assert group["resourceType"] == "Group" and m.is_system(group)
    assert group["member"] == [{"entity": {"reference": f"Patient/{client_id}"}}]
    assert m.support_from_fhir(group) == system


def test_support_death_date_means_deceased() -> None:
    """A death date implies deceased, carried as the deceased extension's date (as
    Patient.deceasedDateTime would); deceased false with a death date is refused."""
    support = plain.Support(name="Flo", death_date=dt.date(2019, 3, 1))
    assert support.deceased is True
    person = m.support_to_fhir(support, client_id="c1")
    assert person["extension"] == [{"url": m.EXT["deceased"], "valueDate": "2019-03-01"}]
    with pytest.raises(ValidationError, match="deceased cannot be false"):
        plain.Support(name="Flo", deceased=False, death_date=dt.date(2019, 3, 1))


def test_informal_system_refuses_personal_fields() -> None:
    with pytest.raises(ValidationError, match="gender, birth_date: only for a person"):
        plain.Support(
            name="St Mark's", kind="faith", gender="female", birth_date=dt.date(1990, 1, 1)
        )


def test_unlisted_relationship_is_left_out() -> None:
    """A RelatedPerson a FHIR client wrote with a RoleCode the plain model does not list
    still reads as a support."""
    person = m.support_to_fhir(plain.Support(name="Kim"), client_id="c1")
    person["relationship"] = [{"coding": [{"system": m.ROLE_CODE, "code": "NIECE"}]}]
    assert m.support_from_fhir(person).relationship is None


@settings(max_examples=60, deadline=None)
@given(CASES)
def test_case_round_trip(case: plain.Case) -> None:
    assert case.client_id is not None
    team = m.case_to_care_team(case, client_id=case.client_id)
    episode = valid(
        m.case_to_episode(case, client_id=case.client_id, care_team_id=case.care_team_id)
    )
    if team is not None:
        valid(team)
    assert m.episode_to_case(episode, team) == case


@settings(max_examples=40, deadline=None)
@given(PLANS, IDS, IDS)
def test_care_plan_round_trip(plan: plain.CarePlan, client_id: str, case_id: str) -> None:
    """The plan, its goals, needs and strengths, as the FHIR resources the service stores."""
    goals = {
        f"Goal/{g.id}": valid(m.goal_to_fhir(g, client_id=client_id, case_id=case_id))
        for g in plan.goals
    }
    needs = {
        f"Condition/{n.id}": valid(m.need_to_condition(n, client_id=client_id, case_id=case_id))
        for n in plan.needs
    }
    strengths = {}
    for number, text in enumerate(plan.strengths):
        observation = valid(m.strength_to_observation(text, client_id=client_id, case_id=case_id))
        assert m.is_strength(observation)
        strengths[f"Observation/s{number}"] = observation
    fhir = valid(
        m.care_plan_to_fhir(
            plan,
            client_id=client_id,
            case_id=case_id,
            goal_refs=list(goals),
            need_refs=list(needs),
            strength_refs=list(strengths),
        )
    )
    assert m.case_of(fhir) == case_id
    assert m.care_plan_from_fhir(fhir, goals=goals, needs=needs, strengths=strengths) == plan


@settings(max_examples=60, deadline=None)
@given(
    st.builds(
        plain.ProgressNote,
        id=opt(IDS),
        date=DATES,
        author=opt(ref("Practitioner", "PractitionerRole")),
        text=st.text(min_size=1, max_size=200).map(str.strip).filter(bool),
        contact_type=opt(literal(plain.ContactType)),
        duration_minutes=opt(st.integers(0, 1440)),
        did_not_attend=st.booleans(),
    ),
    IDS,
    IDS,
)
def test_note_round_trip(note: plain.ProgressNote, client_id: str, case_id: str) -> None:
    document = valid(m.note_to_document(note, client_id=client_id, case_id=case_id))
    assert m.case_of(document) == case_id
    assert m.document_to_note(document) == note


@settings(max_examples=60, deadline=None)
@given(
    st.builds(
        plain.Assessment,
        id=opt(IDS),
        instrument=literal(plain.Instrument),
        date=DATES,
        answers=st.dictionaries(st.integers(1, 10), st.integers(0, 5), max_size=10),
    ),
    IDS,
)
def test_assessment_round_trip(assessment: plain.Assessment, client_id: str) -> None:
    response = valid(m.assessment_to_response(assessment, client_id=client_id, case_id=None))
    assert m.response_to_assessment(response) == assessment


@settings(max_examples=60, deadline=None)
@given(
    st.builds(
        plain.ComprehensiveAssessment,
        id=opt(IDS),
        date=DATES,
        assessor=opt(ref("Practitioner", "PractitionerRole")),
        family=TEXT,
        medical=opt(TEXT),
        socio_economic=opt(TEXT),
        cultural=opt(TEXT),
        living_situation=literal(plain.LivingSituation),
        living_situation_note=opt(TEXT),
    ),
    IDS,
    IDS,
)
def test_comprehensive_assessment_round_trip(
    assessment: plain.ComprehensiveAssessment, client_id: str, case_id: str
) -> None:
    panel, members = m.comprehensive_to_observations(
        assessment, client_id=client_id, case_id=case_id
    )
    for observation in (panel, *members):
        valid(observation)
        assert m.case_of(observation) == case_id
    assert m.is_comprehensive(panel) and not any(m.is_comprehensive(o) for o in members)
    assert m.observations_to_comprehensive(panel, members) == assessment


REFERRALS = st.builds(
    plain.Referral,
    id=opt(IDS),
    client_id=IDS,
    from_agency=ref("Organization"),
    to_agency=ref("Organization"),
    service_type=literal(plain.ServiceType),
    reason=TEXT,
    priority=st.sampled_from(["routine", "urgent", "asap", "stat"]),
    requested=DATES,
    consent_id=opt(IDS),
    sensitive=st.booleans(),
    note=opt(TEXT),
)


@settings(max_examples=60, deadline=None)
@given(REFERRALS)
def test_referral_round_trip_and_bundle(referral: plain.Referral) -> None:
    bundle = m.referral_bundle(referral)
    request, task = (e["resource"] for e in bundle["entry"])
    valid(request)
    valid(task)
    assert task["focus"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert m.service_request_to_referral(request) == referral
    labelled = "security" in task.get("meta", {})
    assert labelled == referral.sensitive


@settings(max_examples=60, deadline=None)
@given(
    st.builds(
        plain.Consent,
        id=opt(IDS),
        client_id=IDS,
        status=st.sampled_from(["draft", "proposed", "active", "rejected", "inactive"]),
        recipient=ref("Organization"),
        purpose=TEXT,
        start=opt(DATES),
        end=opt(DATES),
        covers_sensitive=st.booleans(),
    ).filter(forwards)
)
def test_consent_round_trip(consent: plain.Consent) -> None:
    assert m.consent_from_fhir(valid(m.consent_to_fhir(consent))) == consent


def test_plain_codes_are_the_code_systems_codes() -> None:
    """The Literal types of schemas/casework.py list exactly the CodeSystems' codes."""
    pairs = {
        "case-management-model": plain.Model,
        "case-stage": plain.Stage,
        "practice-setting": plain.Setting,
        "aod-service-type": plain.ServiceType,
        "connection-strength": plain.Connection,
        "case-closure-reason": plain.ClosureReason,
        "contact-type": plain.ContactType,
        "living-situation": plain.LivingSituation,
        "energy-flow": plain.Flow,
        "informal-system": plain.SystemKind,
        "separation": plain.Separation,
    }
    for slug, alias in pairs.items():
        assert set(codes(slug)) == set(typing.get_args(alias)), slug


def test_conformance_resources_are_valid() -> None:
    found = {(r["resourceType"], r["url"].rsplit("/", 1)[1]) for r in conformance_resources()}
    assert ("Questionnaire", "k10") in found
    assert ("CodeSystem", "case-management-model") in found
    assert ("ValueSet", "aod-service-type") in found
    for resource in conformance_resources():
        valid(copy.deepcopy(resource))
