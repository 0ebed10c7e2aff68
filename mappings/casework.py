"""Plain case-management models <-> FHIR R4B resources, both directions, as pure functions.

The FHIR side is FHIR JSON (dicts), the form the server validates and stores; every resource
built here passes the server's validation (fhir.resources R4B models and required bindings),
which the round-trip tests check. Each `to_*` takes the ids of the records it refers to;
each `from_*` reads back everything the plain model holds, so plain -> FHIR -> plain is the
identity (tests/test_casework_mappings.py proves it with hypothesis).

Where FHIR has no element for a plain field, a project extension under
https://casebridge.org/fhir/StructureDefinition/ carries it (named in EXT below).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import typing
from collections.abc import Sequence
from typing import Any, Final

from schemas import casework as plain
from schemas.conformance import codes, display, extension_url, system

LOINC: Final = "http://loinc.org"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# A plain consent's use as a purpose of use (v3 ActReason), and back.
CONSENT_USES: Final = {
    "care-coordination": "COC",
    "care-management": "CAREMGT",
    "treatment": "TREAT",
    "emergency-treatment": "ETREAT",
}
CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"

EXT: Final = {
    "case": extension_url("case"),
    "stage": extension_url("case-stage"),
    "connection": extension_url("connection-strength"),
    "flow": extension_url("energy-flow"),
    "deceased": extension_url("deceased"),
    "separation": extension_url("separation"),
    "parent": extension_url("parent"),
    "achievable": extension_url("goal-achievable-because"),
    "phase": extension_url("care-plan-phase"),
    "responsibility": extension_url("responsibility"),
    "sessions": extension_url("planned-sessions"),
    "closure-reason": extension_url("case-closure-reason"),
    "closure-summary": extension_url("case-closure-summary"),
    "review": extension_url("care-plan-review-due"),
    "duration": extension_url("contact-duration"),
    "dna": extension_url("did-not-attend"),
}
# The security label AOD / substance-use records carry (DS4P: ETH = substance abuse info).
SENSITIVE_LABELS: Final = (
    {"system": ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"},
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
)
# LOINC codes of the instruments' totals; K10 has none, so the project's own code stands in.
SCORE_CODES: Final = {
    "audit": {"system": LOINC, "code": "75624-7", "display": "Total score [AUDIT]"},
    "phq9": {
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    },
    "k10": {"system": system("observation"), "code": "k10-total", "display": "K10 total score"},
}
QUESTIONNAIRE_URLS: Final = {
    "audit": "https://casebridge.org/fhir/Questionnaire/audit",
    "k10": "https://casebridge.org/fhir/Questionnaire/k10",
    "phq9": "https://casebridge.org/fhir/Questionnaire/phq9",
}
# The longest contact a plain note records (a day).
_MAX_MINUTES: Final = 1440
# Aboriginal and Torres Strait Islander status, as AU Base records it.
INDIGENOUS_STATUS_URL: Final = "http://hl7.org.au/fhir/StructureDefinition/indigenous-status"
INDIGENOUS_STATUS_SYSTEM: Final = (
    "https://healthterminologies.gov.au/fhir/CodeSystem/australian-indigenous-status-1"
)
INDIGENOUS_STATUS: Final = {
    "aboriginal": ("1", "Aboriginal but not Torres Strait Islander origin"),
    "torres-strait-islander": ("2", "Torres Strait Islander but not Aboriginal origin"),
    "both": ("3", "Both Aboriginal and Torres Strait Islander origin"),
    "neither": ("4", "Neither Aboriginal nor Torres Strait Islander origin"),
    "not-stated": ("9", "Not stated/inadequately described"),
}
INTERPRETER_URL: Final = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"
BCP47: Final = "urn:ietf:bcp:47"
PROGRESS_NOTE: Final = {"system": LOINC, "code": "11506-3", "display": "Progress note"}


# -- small helpers -----------------------------------------------------------------------------
def _ref(reference: str, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": reference}
    if name:
        out["display"] = name
    return out


def _id_of(reference: dict[str, Any] | None, resource_type: str) -> str | None:
    """The id of a "Type/id" reference of the given type (None otherwise)."""
    value = (reference or {}).get("reference")
    if isinstance(value, str) and value.startswith(f"{resource_type}/"):
        return value.split("/", 1)[1]
    return None


def _coding(slug: str, code: str) -> dict[str, Any]:
    return {"system": system(slug), "code": code, "display": display(slug, code)}


def _code_from(concepts: list[dict[str, Any]] | None, slug: str) -> str | None:
    """The first code of the project's CodeSystem `slug` among CodeableConcepts; a code the
    CodeSystem does not define (a FHIR client's typo) reads as none, not as an error."""
    for concept in concepts or []:
        for coding in concept.get("coding", []):
            if coding.get("system") == system(slug) and coding.get("code") in codes(slug):
                return str(coding["code"])
    return None


def _ext(resource: dict[str, Any], key: str) -> dict[str, Any] | None:
    for extension in resource.get("extension", []):
        if extension.get("url") == EXT[key]:
            return dict(extension)
    return None


def _case_extension(case_id: str | None) -> list[dict[str, Any]]:
    if case_id is None:
        return []
    return [{"url": EXT["case"], "valueReference": _ref(f"EpisodeOfCare/{case_id}")}]


def case_of(resource: dict[str, Any]) -> str | None:
    """The case (EpisodeOfCare id) a record belongs to, from the project's case extension
    or, for notes, DocumentReference.context.encounter."""
    found = _ext(resource, "case")
    if found is not None:
        return _id_of(found.get("valueReference"), "EpisodeOfCare")
    for encounter in (resource.get("context") or {}).get("encounter", []):
        case_id = _id_of(encounter, "EpisodeOfCare")
        if case_id:
            return case_id
    return None


def _period(start: dt.date | None, end: dt.date | None) -> dict[str, str] | None:
    period = {}
    if start is not None:
        period["start"] = start.isoformat()
    if end is not None:
        period["end"] = end.isoformat()
    return period or None


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    """Set key only for a value FHIR accepts (no empty strings, lists or objects)."""
    if value is not None and value != [] and value != {}:
        target[key] = value


# -- Patient -----------------------------------------------------------------------------------
def client_to_patient(client: plain.Client) -> dict[str, Any]:
    """A client as a Patient (spec patient.html)."""
    patient: dict[str, Any] = {"resourceType": "Patient"}
    _put(patient, "id", client.id)
    name: dict[str, Any] = {}
    _put(name, "family", client.family_name)
    _put(name, "given", list(client.given_names))
    _put(patient, "name", [name] if name else None)
    _put(patient, "telecom", [{"system": "phone", "value": client.phone}] if client.phone else None)
    _put(patient, "gender", client.gender)
    _put(patient, "birthDate", client.birth_date.isoformat() if client.birth_date else None)
    _put(patient, "deceasedBoolean", client.deceased)
    extensions: list[dict[str, Any]] = []
    if client.indigenous_status:
        code, text = INDIGENOUS_STATUS[client.indigenous_status]
        extensions.append(
            {
                "url": INDIGENOUS_STATUS_URL,
                "valueCoding": {"system": INDIGENOUS_STATUS_SYSTEM, "code": code, "display": text},
            }
        )
    if client.interpreter_needed is not None:
        extensions.append({"url": INTERPRETER_URL, "valueBoolean": client.interpreter_needed})
    _put(patient, "extension", extensions)
    if client.language:
        patient["communication"] = [
            {
                "language": {"coding": [{"system": BCP47, "code": client.language}]},
                "preferred": True,
            }
        ]
    return patient


def patient_to_client(patient: dict[str, Any]) -> plain.Client:
    """A Patient as a client (the first name and phone number)."""
    name = (patient.get("name") or [{}])[0]
    phone = next(
        (t["value"] for t in patient.get("telecom", []) if t.get("system") == "phone"), None
    )
    extensions = {
        e.get("url"): e for e in patient.get("extension", []) or [] if isinstance(e, dict)
    }
    status_code = (extensions.get(INDIGENOUS_STATUS_URL, {}).get("valueCoding") or {}).get("code")
    status = next((k for k, (code, _) in INDIGENOUS_STATUS.items() if code == status_code), None)
    interpreter = extensions.get(INTERPRETER_URL, {}).get("valueBoolean")
    return plain.Client(
        id=patient.get("id"),
        given_names=name.get("given", []),
        family_name=name.get("family"),
        birth_date=_date(patient.get("birthDate")),
        gender=patient.get("gender"),
        phone=phone,
        deceased=patient.get("deceasedBoolean"),
        indigenous_status=status,
        language=_language(patient),
        interpreter_needed=interpreter if isinstance(interpreter, bool) else None,
    )


# The Patient elements a plain client models; a plain update keeps every other one.
_CLIENT_MODELLED: Final = frozenset(
    {"resourceType", "id", "meta", "text", "name", "telecom", "gender", "birthDate",
     "deceasedBoolean", "communication"}
)  # fmt: skip


def keep_unmodelled_client(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """new (a plain client as a Patient) with what the plain model does not speak of kept
    from stored: identifiers, addresses, other names' uses, other extensions."""
    for key, value in stored.items():
        if key not in _CLIENT_MODELLED and key != "extension" and key not in new:
            new[key] = value
    own = {INDIGENOUS_STATUS_URL, INTERPRETER_URL}
    extensions = [e for e in stored.get("extension", []) if e.get("url") not in own]
    if extensions:
        new["extension"] = [*new.get("extension", []), *extensions]
    return new


def _language(patient: dict[str, Any]) -> str | None:
    """The preferred (else the first) language a Patient communicates in, if a BCP 47 tag."""
    communication = [c for c in patient.get("communication", []) or [] if isinstance(c, dict)]
    communication.sort(key=lambda c: c.get("preferred") is not True)
    for entry in communication:
        for coding in (entry.get("language") or {}).get("coding", []) or []:
            code = coding.get("code") if isinstance(coding, dict) else None
            if isinstance(code, str) and re.fullmatch(plain.LANGUAGE_PATTERN, code):
                return code
    return None


# -- RelatedPerson and Group (supports and informal systems) -------------------------------------
_RELATIONSHIPS: Final = frozenset(typing.get_args(plain.Relationship))


def _tie_extensions(support: plain.Support) -> list[dict[str, Any]]:
    """The ecomap's tie: how it feels to the client and which way energy flows."""
    extensions = []
    if support.connection:
        extensions.append(
            {
                "url": EXT["connection"],
                "valueCoding": _coding("connection-strength", support.connection),
            }
        )
    if support.flow:
        extensions.append({"url": EXT["flow"], "valueCoding": _coding("energy-flow", support.flow)})
    return extensions


def _ext_code(resource: dict[str, Any], key: str) -> Any:
    found = _ext(resource, key)
    return found["valueCoding"]["code"] if found else None


def support_to_fhir(support: plain.Support, *, client_id: str) -> dict[str, Any]:
    """A support as FHIR: a RelatedPerson, or a Group for an informal system."""
    if support.kind == "person":
        return support_to_related_person(support, client_id=client_id)
    return system_to_group(support, client_id=client_id)


def support_from_fhir(resource: dict[str, Any]) -> plain.Support:
    """A RelatedPerson or an informal system's Group as a support."""
    if resource["resourceType"] == "Group":
        return group_to_system(resource)
    return related_person_to_support(resource)


def support_to_related_person(support: plain.Support, *, client_id: str) -> dict[str, Any]:
    """An informal support as a RelatedPerson of the client (spec relatedperson.html).
    R4 RelatedPerson has no deceased[x]: the project's deceased extension carries it (a
    date when known, as Patient.deceased[x]); the genogram's separation and parent too."""
    person: dict[str, Any] = {"resourceType": "RelatedPerson"}
    _put(person, "id", support.id)
    extensions = _tie_extensions(support)
    if support.death_date is not None:
        extensions.append({"url": EXT["deceased"], "valueDate": support.death_date.isoformat()})
    elif support.deceased is not None:
        extensions.append({"url": EXT["deceased"], "valueBoolean": support.deceased})
    if support.separation:
        extensions.append(
            {"url": EXT["separation"], "valueCoding": _coding("separation", support.separation)}
        )
    if support.parent:
        extensions.append({"url": EXT["parent"], "valueReference": _ref(support.parent)})
    _put(person, "extension", extensions)
    person["active"] = support.active
    person["patient"] = _ref(f"Patient/{client_id}")
    if support.relationship:
        person["relationship"] = [{"coding": [{"system": ROLE_CODE, "code": support.relationship}]}]
    person["name"] = [{"text": support.name}]
    _put(
        person, "telecom", [{"system": "phone", "value": support.phone}] if support.phone else None
    )
    _put(person, "gender", support.gender)
    _put(person, "birthDate", support.birth_date.isoformat() if support.birth_date else None)
    return person


def related_person_to_support(person: dict[str, Any]) -> plain.Support:
    """A RelatedPerson as a support (a relationship code the plain model does not list is
    left out)."""
    relationship = None
    for concept in person.get("relationship", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == ROLE_CODE and coding.get("code") in _RELATIONSHIPS:
                relationship = coding["code"]
    phone = next(
        (t["value"] for t in person.get("telecom", []) if t.get("system") == "phone"), None
    )
    name = (person.get("name") or [{}])[0]
    deceased = _ext(person, "deceased") or {}
    return plain.Support(
        id=person.get("id"),
        name=name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip(),
        relationship=relationship,
        gender=person.get("gender"),
        birth_date=_date(person.get("birthDate")),
        deceased=True if "valueDate" in deceased else deceased.get("valueBoolean"),
        death_date=_date(deceased.get("valueDate")),
        separation=_ext_code(person, "separation"),
        parent=((_ext(person, "parent") or {}).get("valueReference") or {}).get("reference"),
        phone=phone,
        connection=_ext_code(person, "connection"),
        flow=_ext_code(person, "flow"),
        active=person.get("active", True),
    )


def system_to_group(support: plain.Support, *, client_id: str) -> dict[str, Any]:
    """An informal system the client takes part in (work, school, a faith community, a
    self-help group) as a Group of persons with the client as member (spec group.html):
    its kind in Group.code, the tie to the client in the ecomap extensions."""
    group: dict[str, Any] = {"resourceType": "Group"}
    _put(group, "id", support.id)
    _put(group, "extension", _tie_extensions(support))
    group["active"] = support.active
    group["type"] = "person"
    group["actual"] = True
    group["code"] = {"coding": [_coding("informal-system", support.kind)]}
    group["name"] = support.name
    group["member"] = [{"entity": _ref(f"Patient/{client_id}")}]
    return group


def is_system(group: dict[str, Any]) -> bool:
    """The Group is an informal system of the project's (its code is an informal-system)."""
    return _code_from([group.get("code") or {}], "informal-system") is not None


def group_to_system(group: dict[str, Any]) -> plain.Support:
    """An informal system's Group as a support (of its kind)."""
    return plain.Support(
        id=group.get("id"),
        kind=_code_from([group.get("code") or {}], "informal-system") or "community",
        name=group.get("name") or "unnamed group",
        connection=_ext_code(group, "connection"),
        flow=_ext_code(group, "flow"),
        active=group.get("active", True),
    )


# -- EpisodeOfCare and CareTeam ------------------------------------------------------------------
def case_to_episode(
    case: plain.Case, *, client_id: str, care_team_id: str | None = None
) -> dict[str, Any]:
    """A case as an EpisodeOfCare (spec episodeofcare.html); its stage in an extension."""
    episode: dict[str, Any] = {"resourceType": "EpisodeOfCare"}
    _put(episode, "id", case.id)
    episode["extension"] = [{"url": EXT["stage"], "valueCoding": _coding("case-stage", case.stage)}]
    if case.closure_reason:
        episode["extension"].append(
            {
                "url": EXT["closure-reason"],
                "valueCodeableConcept": {
                    "coding": [_coding("case-closure-reason", case.closure_reason)]
                },
            }
        )
    if case.closure_summary:
        episode["extension"].append(
            {"url": EXT["closure-summary"], "valueString": case.closure_summary}
        )
    episode["status"] = case.status
    types = []
    if case.model:
        types.append({"coding": [_coding("case-management-model", case.model)]})
    if case.setting:
        types.append({"coding": [_coding("practice-setting", case.setting)]})
    _put(episode, "type", types)
    episode["patient"] = _ref(f"Patient/{client_id}")
    _put(
        episode,
        "managingOrganization",
        _ref(case.managing_agency) if case.managing_agency else None,
    )
    _put(episode, "period", _period(case.start, case.end))
    _put(episode, "referralRequest", [_ref(case.referral)] if case.referral else None)
    _put(episode, "careManager", _ref(case.care_manager) if case.care_manager else None)
    _put(episode, "team", [_ref(f"CareTeam/{care_team_id}")] if care_team_id else None)
    return episode


def case_to_care_team(case: plain.Case, *, client_id: str) -> dict[str, Any] | None:
    """The case's care team as a CareTeam (spec careteam.html), None without members."""
    if not case.care_team:
        return None
    team: dict[str, Any] = {"resourceType": "CareTeam"}
    _put(team, "id", case.care_team_id)
    team["status"] = "active"
    team["subject"] = _ref(f"Patient/{client_id}")
    team["participant"] = [
        {"role": [{"text": m.role}], "member": _ref(m.member, m.name)} for m in case.care_team
    ]
    _put(
        team, "managingOrganization", [_ref(case.managing_agency)] if case.managing_agency else None
    )
    return team


def flag_to_alert(flag: dict[str, Any]) -> plain.Alert:
    """An active Flag on the client as an alert."""
    coding = ((flag.get("code") or {}).get("coding") or [{}])[0]
    detail = next(
        (
            e.get("valueReference")
            for e in flag.get("extension", [])
            if e.get("url") == "http://hl7.org/fhir/StructureDefinition/flag-detail"
        ),
        None,
    )
    return plain.Alert(
        code=str(coding.get("code") or "flag"),
        text=str((flag.get("code") or {}).get("text") or coding.get("display") or "Flag"),
        since=_date((flag.get("period") or {}).get("start")),
        assessment=_id_of(detail, "QuestionnaireResponse"),
    )


def episode_to_case(
    episode: dict[str, Any],
    care_team: dict[str, Any] | None = None,
    flags: Sequence[dict[str, Any]] = (),
) -> plain.Case:
    """An EpisodeOfCare (and its CareTeam, and the client's active Flags) as a case."""
    stage = _ext(episode, "stage")
    reason = _ext(episode, "closure-reason")
    summary = _ext(episode, "closure-summary")
    period = episode.get("period", {})
    referral = (episode.get("referralRequest") or [{}])[0].get("reference")
    members = [
        plain.TeamMember(
            member=p["member"]["reference"],
            name=p["member"].get("display"),
            role=(p.get("role") or [{}])[0].get("text", "member"),
        )
        for p in (care_team or {}).get("participant", [])
        if isinstance((p.get("member") or {}).get("reference"), str)
    ]
    return plain.Case(
        id=episode.get("id"),
        alerts=[flag_to_alert(f) for f in flags if f.get("status") == "active"],
        client_id=_id_of(episode.get("patient"), "Patient"),
        status=episode["status"],
        stage=_code_from(
            [{"coding": [stage.get("valueCoding") or {}]}] if stage else None, "case-stage"
        )
        or "engagement",
        model=_code_from(episode.get("type"), "case-management-model"),
        setting=_code_from(episode.get("type"), "practice-setting"),
        managing_agency=(episode.get("managingOrganization") or {}).get("reference"),
        care_manager=(episode.get("careManager") or {}).get("reference"),
        care_team=members,
        referral=referral,
        start=_date(period.get("start")),
        end=_date(period.get("end")),
        closure_reason=_code_from(
            [reason.get("valueCodeableConcept") or {}] if reason else None, "case-closure-reason"
        ),
        closure_summary=summary.get("valueString") if summary else None,
        care_team_id=(care_team or {}).get("id")
        or _id_of((episode.get("team") or [None])[0], "CareTeam"),
    )


# -- Condition (needs) -------------------------------------------------------------------------
def need_to_condition(need: plain.Need, *, client_id: str, case_id: str | None) -> dict[str, Any]:
    """A need the plan addresses as a problem-list Condition (spec condition.html)."""
    condition: dict[str, Any] = {"resourceType": "Condition"}
    _put(condition, "id", need.id)
    _put(condition, "extension", _case_extension(case_id))
    condition["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]}
    condition["category"] = [
        {"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}
    ]
    condition["code"] = {"text": need.description}
    condition["subject"] = _ref(f"Patient/{client_id}")
    return condition


def condition_to_need(condition: dict[str, Any]) -> plain.Need:
    """A Condition as a need."""
    code = condition.get("code") or {}
    text = code.get("text") or next((c.get("display") for c in code.get("coding", [])), None)
    return plain.Need(id=condition.get("id"), description=text or "unnamed need")


# -- Goal --------------------------------------------------------------------------------------
def goal_to_fhir(
    goal: plain.Goal,
    *,
    client_id: str,
    case_id: str | None,
    addresses: list[str] | None = None,
) -> dict[str, Any]:
    """A goal as a Goal (spec goal.html): target.measure/detail/dueDate carry M and T,
    addresses carries R, expressedBy the client's ownership, an extension A.

    addresses: the references to write (default: "Condition/{id}" for each goal.addresses)."""
    fhir: dict[str, Any] = {"resourceType": "Goal"}
    _put(fhir, "id", goal.id)
    extensions = _case_extension(case_id)
    if goal.achievable_because:
        extensions.append({"url": EXT["achievable"], "valueString": goal.achievable_because})
    _put(fhir, "extension", extensions)
    fhir["lifecycleStatus"] = goal.status
    if goal.achievement:
        fhir["achievementStatus"] = {
            "coding": [{"system": GOAL_ACHIEVEMENT, "code": goal.achievement}]
        }
    fhir["description"] = {"text": goal.description}
    fhir["subject"] = _ref(f"Patient/{client_id}")
    target: dict[str, Any] = {}
    _put(target, "measure", {"text": goal.measure} if goal.measure else None)
    _put(target, "detailString", goal.target)
    _put(target, "dueDate", goal.due.isoformat() if goal.due else None)
    _put(fhir, "target", [target] if target else None)
    if goal.expressed_by_client:
        fhir["expressedBy"] = _ref(f"Patient/{client_id}")
    refs = addresses if addresses is not None else [f"Condition/{a}" for a in goal.addresses]
    _put(fhir, "addresses", [_ref(r) for r in refs])
    return fhir


def goal_from_fhir(goal: dict[str, Any]) -> plain.Goal:
    """A Goal as a plain goal."""
    target = (goal.get("target") or [{}])[0]
    achievable = _ext(goal, "achievable")
    subject = (goal.get("subject") or {}).get("reference")
    expressed = (goal.get("expressedBy") or {}).get("reference")
    achievement = None
    for coding in (goal.get("achievementStatus") or {}).get("coding", []):
        if coding.get("system") == GOAL_ACHIEVEMENT:
            achievement = coding["code"]
    return plain.Goal(
        id=goal.get("id"),
        description=(goal.get("description") or {}).get("text") or "unnamed goal",
        measure=(target.get("measure") or {}).get("text"),
        target=target.get("detailString"),
        achievable_because=achievable["valueString"] if achievable else None,
        addresses=[
            a for a in (_id_of(r, "Condition") for r in goal.get("addresses", [])) if a is not None
        ],
        due=_date(target.get("dueDate")),
        status=goal["lifecycleStatus"],
        achievement=achievement,
        expressed_by_client=expressed is not None and expressed == subject,
    )


# -- Observation (strengths) ---------------------------------------------------------------------
def strength_to_observation(text: str, *, client_id: str, case_id: str | None) -> dict[str, Any]:
    """A strength of the client as a social-history Observation with the project's code."""
    observation: dict[str, Any] = {"resourceType": "Observation"}
    _put(observation, "extension", _case_extension(case_id))
    observation["status"] = "final"
    observation["category"] = [{"coding": [{"system": OBS_CATEGORY, "code": "social-history"}]}]
    observation["code"] = {"coding": [_coding("observation", "strength")]}
    observation["subject"] = _ref(f"Patient/{client_id}")
    observation["valueString"] = text
    return observation


def is_strength(observation: dict[str, Any]) -> bool:
    """True for an Observation recording a client strength."""
    return _code_from([observation.get("code") or {}], "observation") == "strength"


# -- CarePlan ----------------------------------------------------------------------------------
def _activity(action: plain.Action) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if action.sessions is not None:
        detail["extension"] = [{"url": EXT["sessions"], "valueInteger": action.sessions}]
    code: dict[str, Any] = {"text": action.what}
    if action.service_type:
        code["coding"] = [_coding("aod-service-type", action.service_type)]
    detail["code"] = code
    detail["status"] = action.status
    _put(detail, "scheduledPeriod", _period(action.start, action.end))
    _put(detail, "location", {"display": action.where} if action.where else None)
    detail["performer"] = [
        {
            "extension": [{"url": EXT["responsibility"], "valueString": r.responsibility}],
            **_ref(r.who, r.name),
        }
        for r in action.who
    ]
    if not detail["performer"]:
        del detail["performer"]
    _put(detail, "description", action.how)
    return {"detail": detail}


def _action(activity: dict[str, Any]) -> plain.Action:
    detail = activity.get("detail") or {}
    period = detail.get("scheduledPeriod") or {}
    sessions = _ext(detail, "sessions")
    who = []
    for performer in detail.get("performer", []):
        responsibility = _ext(performer, "responsibility")
        if isinstance(performer.get("reference"), str):
            who.append(
                plain.Responsibility(
                    who=performer["reference"],
                    name=performer.get("display"),
                    responsibility=responsibility["valueString"] if responsibility else "involved",
                )
            )
    code = detail.get("code") or {}
    return plain.Action(
        what=code.get("text") or "unnamed action",
        how=detail.get("description"),
        where=(detail.get("location") or {}).get("display"),
        start=_date(period.get("start")),
        end=_date(period.get("end")),
        who=who,
        service_type=_code_from([code], "aod-service-type"),
        status=detail.get("status", "not-started"),
        sessions=sessions["valueInteger"] if sessions else None,
    )


def care_plan_to_fhir(
    plan: plain.CarePlan,
    *,
    client_id: str,
    case_id: str | None,
    goal_refs: list[str],
    need_refs: list[str],
    strength_refs: list[str],
) -> dict[str, Any]:
    """A care plan as a CarePlan (spec careplan.html): the model as category, actions as
    activity.detail (what = code, how = description, where = location, timeframe =
    scheduledPeriod, who = performer with a responsibility extension), goals, addressed
    needs, strengths and supports as supportingInfo; CTI phases in an extension."""
    fhir: dict[str, Any] = {"resourceType": "CarePlan"}
    _put(fhir, "id", plan.id)
    extensions = _case_extension(case_id)
    for phase in plan.phases:
        extensions.append(
            {
                "url": EXT["phase"],
                "extension": [
                    {"url": "name", "valueString": phase.name},
                    {"url": "period", "valuePeriod": _period(phase.start, phase.end)},
                ],
            }
        )
    if plan.review_due:
        extensions.append({"url": EXT["review"], "valueDate": plan.review_due.isoformat()})
    _put(fhir, "extension", extensions)
    fhir["status"] = plan.status
    fhir["intent"] = "plan"
    _put(
        fhir,
        "category",
        [{"coding": [_coding("case-management-model", plan.model)]}] if plan.model else None,
    )
    fhir["title"] = plan.title
    fhir["subject"] = _ref(f"Patient/{client_id}")
    _put(fhir, "period", _period(plan.start, plan.end))
    _put(fhir, "addresses", [_ref(r) for r in need_refs])
    supporting = [_ref(r) for r in strength_refs]
    supporting += [_ref(f"RelatedPerson/{s}") for s in plan.supports]
    _put(fhir, "supportingInfo", supporting)
    _put(fhir, "goal", [_ref(r) for r in goal_refs])
    _put(fhir, "activity", [_activity(a) for a in plan.actions])
    return fhir


# The CarePlan elements a plain care plan models (care_plan_to_fhir writes them, or leaves
# them out to clear them); a plain update keeps every other element as stored.
_PLAN_MODELLED: Final = frozenset(
    {"resourceType", "id", "meta", "text", "extension", "status", "intent", "category",
     "title", "subject", "period", "addresses", "supportingInfo", "goal", "activity",
     "careTeam"}
)  # fmt: skip


def keep_unmodelled(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """new (a plain care plan as a CarePlan) with what the plain model does not speak of
    kept from stored: other elements (basedOn, note, author, ...), other extensions,
    supportingInfo other than strengths and supports, and activities that are references
    (a referral's ServiceRequest) rather than planned actions. A plain update never drops
    what a FHIR client wrote."""
    for key, value in stored.items():
        if key not in _PLAN_MODELLED and key not in new:
            new[key] = value
    own = {EXT["case"], EXT["phase"], EXT["review"]}
    extensions = [e for e in stored.get("extension", []) if e.get("url") not in own]
    if extensions:
        new["extension"] = [*new.get("extension", []), *extensions]
    other = [
        s
        for s in stored.get("supportingInfo", [])
        if not str(s.get("reference", "")).startswith(("Observation/", "RelatedPerson/"))
    ]
    if other:
        new["supportingInfo"] = [*new.get("supportingInfo", []), *other]
    referenced = [a for a in stored.get("activity", []) if "detail" not in a]
    if referenced:
        new["activity"] = [*new.get("activity", []), *referenced]
    return new


def care_plan_from_fhir(
    plan: dict[str, Any],
    *,
    goals: dict[str, dict[str, Any]],
    needs: dict[str, dict[str, Any]],
    strengths: dict[str, dict[str, Any]],
) -> plain.CarePlan:
    """A CarePlan, with the Goals, Conditions and strength Observations it references
    (by "Type/id"), as a plain care plan. References to records not given are left out."""
    phases = []
    for extension in plan.get("extension", []):
        if extension.get("url") == EXT["phase"]:
            parts = {e["url"]: e for e in extension.get("extension", [])}
            period = parts["period"]["valuePeriod"]
            phases.append(
                plain.Phase(
                    name=parts["name"]["valueString"],
                    start=dt.date.fromisoformat(period["start"][:10]),
                    end=dt.date.fromisoformat(period["end"][:10]),
                )
            )
    period = plan.get("period") or {}
    supporting = [s.get("reference") for s in plan.get("supportingInfo", [])]
    review = _ext(plan, "review")
    return plain.CarePlan(
        id=plan.get("id"),
        title=plan.get("title") or "Care plan",
        model=_code_from(plan.get("category"), "case-management-model"),
        status=plan["status"],
        start=_date(period.get("start")),
        end=_date(period.get("end")),
        phases=phases,
        review_due=_date(review.get("valueDate")) if review else None,
        needs=[
            condition_to_need(needs[r["reference"]])
            for r in plan.get("addresses", [])
            if r.get("reference") in needs
        ],
        goals=[
            goal_from_fhir(goals[r["reference"]])
            for r in plan.get("goal", [])
            if r.get("reference") in goals
        ],
        actions=[_action(a) for a in plan.get("activity", []) if "detail" in a],
        strengths=[strengths[r]["valueString"] for r in supporting if r in strengths],
        supports=[r.split("/", 1)[1] for r in supporting if r and r.startswith("RelatedPerson/")],
    )


# -- DocumentReference (progress notes) ----------------------------------------------------------
def note_to_document(
    note: plain.ProgressNote, *, client_id: str, case_id: str | None
) -> dict[str, Any]:
    """A progress note as a DocumentReference (spec documentreference.html): plain text in
    the attachment, the case in context.encounter (which R4 allows to be an EpisodeOfCare),
    a contact's type in context.event, its length and a did-not-attend in extensions."""
    document: dict[str, Any] = {"resourceType": "DocumentReference"}
    _put(document, "id", note.id)
    extensions: list[dict[str, Any]] = []
    if note.duration_minutes is not None:
        extensions.append(
            {
                "url": EXT["duration"],
                "valueDuration": {
                    "value": note.duration_minutes,
                    "unit": "min",
                    "system": "http://unitsofmeasure.org",
                    "code": "min",
                },
            }
        )
    if note.did_not_attend:
        extensions.append({"url": EXT["dna"], "valueBoolean": True})
    _put(document, "extension", extensions)
    document["status"] = "current"
    document["type"] = {"coding": [PROGRESS_NOTE]}
    document["subject"] = _ref(f"Patient/{client_id}")
    document["date"] = f"{note.date.isoformat()}T00:00:00Z"
    _put(document, "author", [_ref(note.author)] if note.author else None)
    document["content"] = [
        {
            "attachment": {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(note.text.encode("utf-8")).decode("ascii"),
            }
        }
    ]
    context: dict[str, Any] = {}
    if case_id:
        context["encounter"] = [_ref(f"EpisodeOfCare/{case_id}")]
    if note.contact_type:
        context["event"] = [{"coding": [_coding("contact-type", note.contact_type)]}]
    _put(document, "context", context)
    return document


def contact_of(document: dict[str, Any]) -> tuple[str | None, bool]:
    """A note's contact type (None: no contact recorded) and whether the client did not
    attend."""
    contact = _code_from((document.get("context") or {}).get("event"), "contact-type")
    return contact, (_ext(document, "dna") or {}).get("valueBoolean") is True


def document_to_note(document: dict[str, Any]) -> plain.ProgressNote:
    """A DocumentReference holding a plain-text note as a progress note."""
    attachment = (document.get("content") or [{}])[0].get("attachment") or {}
    text = base64.b64decode(attachment.get("data", "")).decode("utf-8", errors="replace")
    duration = (_ext(document, "duration") or {}).get("valueDuration") or {}
    minutes = duration.get("value")
    contact, missed = contact_of(document)
    return plain.ProgressNote(
        id=document.get("id"),
        date=_date(document.get("date")) or dt.date.min,
        author=(document.get("author") or [{}])[0].get("reference"),
        text=text or "(empty note)",
        contact_type=contact,
        duration_minutes=int(minutes)
        if isinstance(minutes, (int, float)) and 0 <= minutes <= _MAX_MINUTES
        else None,
        did_not_attend=missed,
    )


# -- Observation (comprehensive assessment) ------------------------------------------------------
SOCIAL_HISTORY: Final = {"coding": [{"system": OBS_CATEGORY, "code": "social-history"}]}


def comprehensive_to_observations(
    assessment: plain.ComprehensiveAssessment, *, client_id: str, case_id: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A comprehensive assessment as a panel Observation and one Observation per domain
    (spec observation.html#obsgrouping: the panel's hasMember), category social-history,
    code from CodeSystem assessment-domain. The panel's hasMember is left for the caller,
    who knows the members' references."""

    def observation(code: str) -> dict[str, Any]:
        found: dict[str, Any] = {"resourceType": "Observation"}
        _put(found, "extension", _case_extension(case_id))
        found["status"] = "final"
        found["category"] = [SOCIAL_HISTORY]
        found["code"] = {"coding": [_coding("assessment-domain", code)]}
        found["subject"] = _ref(f"Patient/{client_id}")
        found["effectiveDateTime"] = assessment.date.isoformat()
        _put(found, "performer", [_ref(assessment.assessor)] if assessment.assessor else None)
        return found

    panel = observation("comprehensive-assessment")
    _put(panel, "id", assessment.id)
    members = []
    for code, name in plain.ASSESSMENT_DOMAINS.items():
        value = getattr(assessment, name)
        if not value:
            continue
        member = observation(code)
        if code == "living-situation":
            concept: dict[str, Any] = {"coding": [_coding("living-situation", value)]}
            _put(concept, "text", assessment.living_situation_note)
            member["valueCodeableConcept"] = concept
        else:
            member["valueString"] = value
        members.append(member)
    return panel, members


def is_comprehensive(observation: dict[str, Any]) -> bool:
    """The panel Observation of a comprehensive assessment."""
    return _code_from([observation.get("code") or {}], "assessment-domain") == (
        "comprehensive-assessment"
    )


def observations_to_comprehensive(
    panel: dict[str, Any], members: Sequence[dict[str, Any]]
) -> plain.ComprehensiveAssessment:
    """A panel and its domain Observations as a comprehensive assessment (domains not given,
    or not readable, are left out)."""
    values: dict[str, Any] = {}
    for member in members:
        code = _code_from([member.get("code") or {}], "assessment-domain")
        if code == "living-situation":
            concept = member.get("valueCodeableConcept") or {}
            values["living_situation"] = _code_from([concept], "living-situation")
            values["living_situation_note"] = concept.get("text")
        elif code in plain.ASSESSMENT_DOMAINS and isinstance(member.get("valueString"), str):
            values[plain.ASSESSMENT_DOMAINS[code]] = member["valueString"]
    return plain.ComprehensiveAssessment.model_construct(
        id=panel.get("id"),
        date=_date(panel.get("effectiveDateTime")) or dt.date.min,
        assessor=(panel.get("performer") or [{}])[0].get("reference"),
        **{name: values.get(name) for name in (*plain.ASSESSMENT_DOMAINS.values(),)},
        living_situation_note=values.get("living_situation_note"),
    )


# -- QuestionnaireResponse and score Observation -------------------------------------------------
def assessment_to_response(
    assessment: plain.Assessment, *, client_id: str, case_id: str | None
) -> dict[str, Any]:
    """An assessment as a completed QuestionnaireResponse to the project's instrument
    (spec questionnaireresponse.html); each answer a Coding of the answer-score system."""
    response: dict[str, Any] = {"resourceType": "QuestionnaireResponse"}
    _put(response, "id", assessment.id)
    _put(response, "extension", _case_extension(case_id))
    response["questionnaire"] = QUESTIONNAIRE_URLS[assessment.instrument]
    response["status"] = "completed"
    response["subject"] = _ref(f"Patient/{client_id}")
    response["authored"] = assessment.date.isoformat()
    items = [
        {
            "linkId": f"{assessment.instrument}-{number}",
            "answer": [{"valueCoding": {"system": system("answer-score"), "code": str(score)}}],
        }
        for number, score in sorted(assessment.answers.items())
    ]
    _put(response, "item", items)
    return response


def response_to_assessment(
    response: dict[str, Any],
    score: dict[str, Any] | None = None,
    flags: Sequence[str] = (),
) -> plain.Assessment:
    """A QuestionnaireResponse to one of the project's instruments (and the Observation of
    its score and the risks its answers raise, when given) as an assessment."""
    instrument = next(
        k for k, url in QUESTIONNAIRE_URLS.items() if url == response["questionnaire"]
    )
    answers: dict[int, int] = {}
    for item in response.get("item", []):
        number = int(str(item["linkId"]).rsplit("-", 1)[1])
        for answer in item.get("answer", []):
            coding = answer.get("valueCoding") or {}
            answers[number] = int(coding["code"])
    zone = None
    if score is not None:
        for concept in score.get("interpretation", []):
            zone = _code_from([concept], "assessment-zone") or zone
    return plain.Assessment(
        id=response.get("id"),
        instrument=instrument,
        date=_date(response.get("authored")) or dt.date.min,
        answers=answers,
        total=score.get("valueInteger") if score is not None else None,
        zone=zone,
        flags=list(flags),
    )


# -- ServiceRequest + Task (referrals) -----------------------------------------------------------
def referral_to_service_request(referral: plain.Referral) -> dict[str, Any]:
    """The request half of a referral: a ServiceRequest (spec servicerequest.html), labelled
    as substance-use information when sensitive (DS4P security labels)."""
    request: dict[str, Any] = {"resourceType": "ServiceRequest"}
    _put(request, "id", referral.id)
    if referral.sensitive:
        request["meta"] = {"security": [dict(label) for label in SENSITIVE_LABELS]}
    request["status"] = "active"
    request["intent"] = "order"
    request["priority"] = referral.priority
    request["code"] = {"coding": [_coding("aod-service-type", referral.service_type)]}
    request["subject"] = _ref(f"Patient/{referral.client_id}")
    request["authoredOn"] = referral.requested.isoformat()
    request["requester"] = _ref(referral.from_agency)
    request["performer"] = [_ref(referral.to_agency)]
    request["reasonCode"] = [{"text": referral.reason}]
    _put(
        request,
        "basedOn",
        [_ref(f"CarePlan/{referral.care_plan_id}")] if referral.care_plan_id else None,
    )
    _put(
        request,
        "supportingInfo",
        [_ref(f"Consent/{referral.consent_id}")] if referral.consent_id else None,
    )
    _put(request, "note", [{"text": referral.note}] if referral.note else None)
    return request


def referral_to_task(referral: plain.Referral, *, focus: str) -> dict[str, Any]:
    """The workflow half of a referral: a Task asking the receiving agency to act on the
    ServiceRequest `focus` (Gravity SDOH referral pattern; spec task.html)."""
    task: dict[str, Any] = {"resourceType": "Task"}
    if referral.sensitive:
        task["meta"] = {"security": [dict(label) for label in SENSITIVE_LABELS]}
    task["status"] = "requested"
    task["intent"] = "order"
    task["priority"] = referral.priority
    task["code"] = {
        "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
    }
    task["focus"] = _ref(focus)
    task["for"] = _ref(f"Patient/{referral.client_id}")
    task["authoredOn"] = referral.requested.isoformat()
    task["requester"] = _ref(referral.from_agency)
    task["owner"] = _ref(referral.to_agency)
    return task


def referral_bundle(
    referral: plain.Referral, plan: tuple[dict[str, Any], int] | None = None
) -> dict[str, Any]:
    """A referral as a transaction Bundle: the ServiceRequest and the Task that carries it
    to the receiving agency, linked by urn:uuid (spec bundle.html#transaction). With the
    care plan it serves (its body and version): the plan's goals go with the request, and
    the plan gains an activity that is the referral (If-Match: the version read)."""
    request_url = "urn:uuid:6f0c1b8e-0000-4000-8000-000000000001"
    task_url = "urn:uuid:6f0c1b8e-0000-4000-8000-000000000002"
    request = referral_to_service_request(referral)
    entry: dict[str, Any] = {"fullUrl": request_url, "resource": request}
    if referral.id:
        entry["request"] = {"method": "PUT", "url": f"ServiceRequest/{referral.id}"}
    else:
        entry["request"] = {"method": "POST", "url": "ServiceRequest"}
    entries = [
        entry,
        {
            "fullUrl": task_url,
            "resource": referral_to_task(referral, focus=request_url),
            "request": {"method": "POST", "url": "Task"},
        },
    ]
    if plan is not None:
        body, version = plan
        goals = [g for g in body.get("goal", []) if str(g.get("reference", "")).startswith("Goal/")]
        if goals:
            request["supportingInfo"] = [*request.get("supportingInfo", []), *goals]
        updated = {k: v for k, v in body.items() if k != "meta"}
        updated["activity"] = [*body.get("activity", []), {"reference": _ref(request_url)}]
        entries.append(
            {
                "resource": updated,
                "request": {
                    "method": "PUT",
                    "url": f"CarePlan/{body['id']}",
                    "ifMatch": f'W/"{version}"',
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def service_request_to_referral(request: dict[str, Any]) -> plain.Referral:
    """A ServiceRequest as a plain referral."""
    labels = {
        (s.get("system"), s.get("code")) for s in (request.get("meta") or {}).get("security", [])
    }
    consent = next(
        (c for c in (_id_of(s, "Consent") for s in request.get("supportingInfo", [])) if c), None
    )
    return plain.Referral(
        id=request.get("id"),
        client_id=_id_of(request.get("subject"), "Patient") or "unknown",
        from_agency=(request.get("requester") or {}).get("reference", ""),
        to_agency=(request.get("performer") or [{}])[0].get("reference", ""),
        service_type=_code_from([request.get("code") or {}], "aod-service-type"),
        reason=(request.get("reasonCode") or [{}])[0].get("text", ""),
        priority=request.get("priority", "routine"),
        requested=_date(request.get("authoredOn")) or dt.date.min,
        consent_id=consent,
        care_plan_id=next(
            (p for p in (_id_of(b, "CarePlan") for b in request.get("basedOn", [])) if p), None
        ),
        sensitive=(ACT_CODE, "ETH") in labels,
        note=(request.get("note") or [{}])[0].get("text"),
    )


# -- Consent -----------------------------------------------------------------------------------
def consent_to_fhir(consent: plain.Consent) -> dict[str, Any]:
    """The client's consent to disclose to an agency as a privacy Consent (spec
    consent.html): the recipient as a provision actor (IRCP), sensitive coverage as a
    provision security label."""
    fhir: dict[str, Any] = {"resourceType": "Consent"}
    _put(fhir, "id", consent.id)
    fhir["status"] = consent.status
    fhir["scope"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": "patient-privacy",
            }
        ]
    }
    fhir["category"] = [{"coding": [{"system": LOINC, "code": "59284-0"}], "text": consent.purpose}]
    fhir["patient"] = _ref(f"Patient/{consent.client_id}")
    fhir["policyRule"] = {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]}
    provision: dict[str, Any] = {"type": "permit"}
    _put(provision, "period", _period(consent.start, consent.end))
    provision["actor"] = [
        {
            "role": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP",
                    }
                ]
            },
            "reference": _ref(consent.recipient),
        }
    ]
    if consent.covers_sensitive:
        provision["securityLabel"] = [dict(SENSITIVE_LABELS[0])]
    if consent.use is not None:
        provision["purpose"] = [{"system": ACT_REASON, "code": CONSENT_USES[consent.use]}]
    fhir["provision"] = provision
    return fhir


def consent_from_fhir(consent: dict[str, Any]) -> plain.Consent:
    """A Consent as a plain consent."""
    provision = consent.get("provision") or {}
    period = provision.get("period") or {}
    labels = {(s.get("system"), s.get("code")) for s in provision.get("securityLabel", [])}
    purposes = {(p.get("system"), p.get("code")) for p in provision.get("purpose", [])}
    use = next((u for u, code in CONSENT_USES.items() if (ACT_REASON, code) in purposes), None)
    return plain.Consent(
        id=consent.get("id"),
        client_id=_id_of(consent.get("patient"), "Patient") or "unknown",
        status=consent["status"],
        recipient=((provision.get("actor") or [{}])[0].get("reference") or {}).get("reference", ""),
        purpose=(consent.get("category") or [{}])[0].get("text") or "disclosure",
        start=_date(period.get("start")),
        end=_date(period.get("end")),
        covers_sensitive=(ACT_CODE, "ETH") in labels,
        use=use,
    )
