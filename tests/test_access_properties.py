"""The access invariant, over generated referral, consent and output graphs (issue 16).

Three agencies each keep a client, an Observation and a Goal; A is an AOD service (its
records are labelled). Hypothesis generates what they write: referrals (any writer, any
receiver, naming any client and any records), reports of outcomes in Task.output by the
receiver, and consents (any writer, any client, any recipient, with or without a purpose
that releases labelled records). Then every agency reads every record, and the answer must
be what the rule says - an agency reads a record only if it owns it, or a referral it is a
party to carries it (made by the record's owner), released by a consent in force that the
record's owner recorded; the referral itself and the receiver's report go to both parties
unless labelled. Finally every consent is revoked, and nothing of another agency's client
data, current or past versions, is readable any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories
from tests.conftest import Backend
from tests.support.server import LiveServer

AGENCIES = ("A", "B", "C")
ORG = {a: f"Organization/prop-{a.lower()}" for a in AGENCIES}
AGENCY_TYPE = "https://casebridge.org/fhir/CodeSystem/agency-type"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# The records each agency keeps for its client.
BASE = [
    f"{kind}/{kind[0].lower()}-{a.lower()}" for a in AGENCIES for kind in ("Observation", "Goal")
]
PATIENTS = [f"Patient/p-{a.lower()}" for a in AGENCIES]


def owner_of_base(key: str) -> str:
    return key.rsplit("-", 1)[1].upper()


@dataclass
class Referral:
    writer: str
    receiver: str
    patient: str
    carried: frozenset[str]
    task: str = ""
    request: str = ""
    etag: str = ""
    output: frozenset[str] = frozenset()


@dataclass
class Consent:
    writer: str
    patient: str
    actor: str
    releases_labelled: bool
    id: str = ""


@dataclass
class World:
    owner: dict[str, str] = field(default_factory=dict)
    referrals: list[Referral] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)

    def labelled(self, key: str) -> bool:
        return self.owner[key] == "A"

    def consented(self, agency: str, patient: str, grantor: str, labelled: bool) -> bool:
        return any(
            c.writer == grantor
            and c.patient == patient
            and c.actor == agency
            and (c.releases_labelled or not labelled)
            for c in self.consents
        )

    def may_read(self, agency: str, key: str) -> bool:
        """The rule, written from the threat model, independently of the code."""
        owner = self.owner[key]
        if owner == agency:
            return True
        labelled = self.labelled(key)
        for r in self.referrals:
            if agency not in (r.writer, r.receiver):
                continue
            released = not labelled or self.consented(agency, r.patient, r.writer, labelled)
            if key in (r.task, r.request) and released:
                return True
            carried = r.carried | {r.patient}
            consented = self.consented(agency, r.patient, r.writer, labelled)
            if key in carried and owner == r.writer and consented:
                return True
            reported = not labelled or self.consented(agency, r.patient, r.receiver, labelled)
            if key in r.output and owner == r.receiver and reported:
                return True
        return False


def _headers(agency: str | None, **extra: str) -> dict[str, str]:
    headers = {**factories.FHIR_JSON, **extra}
    if agency is not None:
        headers["X-Casebridge-Agency"] = ORG[agency]
    return headers


def _put(http: httpx.Client, agency: str | None, resource: dict[str, Any]) -> None:
    path = f"/{resource['resourceType']}/{resource['id']}"
    response = http.put(path, json=resource, headers=_headers(agency))
    assert response.status_code in (200, 201), response.text


def _post(http: httpx.Client, agency: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"/{resource['resourceType']}", json=resource, headers=_headers(agency))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _setup(http: httpx.Client) -> World:
    world = World()
    for agency in AGENCIES:
        org: dict[str, Any] = {"resourceType": "Organization", "id": ORG[agency].split("/")[1]}
        if agency == "A":
            org["type"] = [{"coding": [{"system": AGENCY_TYPE, "code": "aod"}]}]
        _put(http, None, org)
    for agency, patient in zip(AGENCIES, PATIENTS, strict=True):
        _put(http, agency, factories.patient(id=patient.split("/")[1]))
        world.owner[patient] = agency
    for key in BASE:
        kind, rid = key.split("/")
        body = factories.minimal(kind)
        body.update(id=rid, subject={"reference": f"Patient/p-{rid.rsplit('-', 1)[1]}"})
        agency = owner_of_base(key)
        _put(http, agency, body)
        world.owner[key] = agency
    return world


def _refer(http: httpx.Client, world: World, referral: Referral) -> None:
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": referral.patient},
    }
    if referral.carried:
        body["supportingInfo"] = [{"reference": k} for k in sorted(referral.carried)]
    request = _post(http, referral.writer, body)
    task = _post(
        http,
        referral.writer,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
            "focus": {"reference": f"ServiceRequest/{request['id']}"},
            "for": {"reference": referral.patient},
            "requester": {"reference": ORG[referral.writer]},
            "owner": {"reference": ORG[referral.receiver]},
        },
    )
    referral.request = f"ServiceRequest/{request['id']}"
    referral.task = f"Task/{task['id']}"
    world.owner[referral.request] = world.owner[referral.task] = referral.writer
    world.referrals.append(referral)


def _report(http: httpx.Client, referral: Referral, output: frozenset[str]) -> None:
    """The receiver accepts and reports records in Task.output, if it can see the Task."""
    current = http.get(f"/{referral.task}", headers=_headers(referral.receiver))
    if current.status_code != 200:
        return
    body = current.json()
    body["status"] = "accepted"
    body.pop("output", None)
    if output:
        body["output"] = [
            {"type": {"text": "outcome"}, "valueReference": {"reference": k}}
            for k in sorted(output)
        ]
    response = http.put(
        f"/{referral.task}",
        json=body,
        headers=_headers(referral.receiver, **{"If-Match": current.headers["etag"]}),
    )
    assert response.status_code == 200, response.text
    referral.output = output


def _consent_body(consent: Consent, status: str = "active") -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": "2026-01-01", "end": "2026-12-31"},
        "actor": [{"role": {"text": "recipient"}, "reference": {"reference": ORG[consent.actor]}}],
    }
    if consent.releases_labelled:
        provision["purpose"] = [{"system": V3_ACT_REASON, "code": "TREAT"}]
    body = {
        "resourceType": "Consent",
        "status": status,
        "scope": {"text": "treatment"},
        "category": [{"text": "referral"}],
        "patient": {"reference": consent.patient},
        "provision": provision,
    }
    if consent.id:
        body["id"] = consent.id
    return body


def _check(http: httpx.Client, world: World) -> None:
    for agency in AGENCIES:
        for key in sorted(world.owner):
            expected = world.may_read(agency, key)
            for path in (f"/{key}", f"/{key}/_history/1", f"/{key}/_history"):
                status = http.get(path, headers=_headers(agency)).status_code
                assert status == (200 if expected else 404), (agency, path, expected, world)


agency = st.sampled_from(AGENCIES)
records = st.frozensets(st.sampled_from(BASE + PATIENTS), max_size=3)
referral = st.builds(
    Referral,
    writer=agency,
    receiver=agency,
    patient=st.sampled_from(PATIENTS),
    carried=records,
)
consent = st.builds(
    Consent,
    writer=agency,
    patient=st.sampled_from(PATIENTS),
    actor=agency,
    releases_labelled=st.booleans(),
)
plan = st.tuples(
    st.lists(st.tuples(referral, records), min_size=1, max_size=3),
    st.lists(consent, max_size=4),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plan)
def test_an_agency_reads_only_what_the_rule_releases(
    live: LiveServer,
    backend: Backend,
    plan: tuple[list[tuple[Referral, frozenset[str]]], list[Consent]],
) -> None:
    backend.truncate()
    referrals, consents = plan
    with httpx.Client(base_url=live.fhir, timeout=30) as http:
        world = _setup(http)
        for chosen, _ in referrals:
            _refer(
                http,
                world,
                Referral(chosen.writer, chosen.receiver, chosen.patient, chosen.carried),
            )
        for given_consent in consents:
            made = Consent(**given_consent.__dict__)
            made.id = _post(http, made.writer, _consent_body(made))["id"]
            world.owner[f"Consent/{made.id}"] = made.writer
            world.consents.append(made)
        # Receivers report, after the consents that may let them see the referral.
        for sent, (_, output) in zip(world.referrals, referrals, strict=True):
            _report(http, sent, output)
        _check(http, world)
        # Revoked: nothing released by a consent remains, in any version.
        for made in world.consents:
            _put(http, made.writer, _consent_body(made, status="inactive"))
        world.consents = []
        _check(http, world)
