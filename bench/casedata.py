"""Deterministic case-management data: Patients and the records around them, as NDJSON.

Per patient (10.2 resources on average): a Patient, 1-3 Goals, 1-3 CarePlans pointing at the
Goals, 1-2 ServiceRequests, 1-2 Tasks fulfilling the ServiceRequests and owned by one of the
organizations, and 1-3 social-history or survey Observations spread over two years. The
organizations come first. Ids are the generator's own (``pat-000042``, ``cp-000042-1``), so
every reference resolves and a seed always yields the same bytes.

`python -m bench.casedata --patients 1000 --out cases.ndjson` writes a file; the search
benchmark (bench/search.py) draws its query values from the returned `CaseDataPools`.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Final

import orjson

CLIENT_SYSTEM: Final = "https://casebridge.example.org/clients"
MEDICARE_SYSTEM: Final = "http://ns.electronichealth.net.au/id/medicare-number"
ORG_SYSTEM: Final = "https://casebridge.example.org/organizations"
CAREPLAN_SYSTEM: Final = "https://casebridge.example.org/careplans"
REFERRAL_SYSTEM: Final = "https://casebridge.example.org/referrals"
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
ORGANIZATIONS: Final = 50

# The observation window: two years, so a one-year date search matches about half.
OBS_START: Final = datetime(2024, 7, 1, tzinfo=timezone(timedelta(hours=10)))
OBS_DAYS: Final = 730

FAMILIES: Final = (
    "Rivera", "Nguyễn", "Smith", "García", "Müller", "O'Brien", "Kowalski", "Tran", "Brown",
    "Wilson", "Taylor", "Martínez", "Ng", "Papadopoulos", "Jones", "Williams", "Zhāng",
    "Lefèvre", "Andersson", "Singh", "Kaur", "Patel", "Murphy", "Kelly", "Walker", "Thompson",
    "White", "Harris", "Lewis", "Robinson", "Young", "King", "Wright", "Scott", "Green",
    "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips",
    "Evans", "Turner", "Torres", "Parker", "Collins", "Edwards", "Stewart", "Morris", "Núñez",
    "Sánchez", "Dubois", "Ahmed", "Hussain", "Ali", "Watson", "Brooks", "Jensen", "Björk",
)  # fmt: skip
GIVEN: Final = (
    "Alex", "Sam", "Jordan", "Taylor", "Chloé", "Zoë", "José", "Mai", "Linh", "Aroha", "Jack",
    "Olivia", "Noah", "Amelia", "Liam", "Isla", "Ethan", "Mia", "Lucas", "Ava", "Mason", "Grace",
    "Leo", "Ruby", "Oscar", "Harper", "Henry", "Ella", "William", "Sophie", "Thomas", "Renée",
    "Ngaio", "Tama", "Priya", "Arjun", "Fatima", "Omar", "Aisha", "Yusuf", "Kai", "Hana",
)  # fmt: skip
STREETS: Final = (
    "High Street", "Station Road", "Church Street", "Victoria Parade", "King William Road",
    "Smith Street", "Elizabeth Street", "Brunswick Road", "Sydney Road", "Albert Street",
)  # fmt: skip
PLACES: Final = (
    ("Fitzroy", "VIC", "3065"), ("Footscray", "VIC", "3011"), ("Newtown", "NSW", "2042"),
    ("Parramatta", "NSW", "2150"), ("Fortitude Valley", "QLD", "4006"), ("Logan", "QLD", "4114"),
    ("Elizabeth", "SA", "5112"), ("Midland", "WA", "6056"), ("Launceston", "TAS", "7250"),
    ("Darwin", "NT", "0800"), ("Belconnen", "ACT", "2617"), ("Geelong", "VIC", "3220"),
)  # fmt: skip
SERVICES: Final = (
    ("AOD counselling service", "prov"), ("community health centre", "prov"),
    ("housing support service", "cg"), ("mental health team", "prov"),
    ("family services", "govt"), ("hospital outreach team", "prov"),
)  # fmt: skip
GOALS: Final = (
    "Secure stable housing within three months",
    "Reduce alcohol use to under ten standard drinks a week",
    "Attend weekly AOD counselling sessions",
    "Reconnect with family supports",
    "Complete a TAFE enrolment",
    "Stop injecting drug use",
    "Manage debts with a financial counsellor",
    "Keep regular GP appointments",
)  # fmt: skip
CAREPLAN_CATEGORIES: Final = (
    ("734163000", "Care plan", "Strengths-based case management"),
    ("718347000", "Mental health care plan", "Mental health and wellbeing"),
    ("736366004", "Drug abuse care plan", "Alcohol and other drugs"),
    ("735324008", "Treatment escalation plan", "Crisis and safety"),
)  # fmt: skip
REFERRALS: Final = (
    ("306206005", "Referral to service", "Referral to AOD counselling"),
    ("710915002", "Referral to community service", "Referral to housing support"),
    ("183524004", "Referral to psychiatric service", "Referral to mental health team"),
    ("308470006", "Referral to general practitioner", "Referral to GP for health check"),
    ("415222009", "Referral to social worker", "Referral to financial counselling"),
)  # fmt: skip
ACTIVITIES: Final = (
    ("ServiceRequest", "Weekly AOD counselling", "Client attends; counsellor reports monthly."),
    ("Task", "Apply for social housing", "Client completes the form; case manager lodges it."),
    ("Appointment", "GP health check", "Annual health check with the client's GP."),
    ("Task", "Centrelink appointment", "Case manager attends with the client."),
)  # fmt: skip
# (LOINC code, display, category, value kind)
OBSERVATIONS: Final = (
    ("75626-2", "Total score [AUDIT-C]", "survey", "score"),
    ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score", "survey", "score"),
    ("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score", "survey", "score"),
    ("71802-3", "Housing status", "social-history", "housing"),
    ("72166-2", "Tobacco smoking status", "social-history", "smoking"),
    ("67875-5", "Employment status current", "social-history", "employment"),
    ("68517-2", "How many times in the past year have you used an illegal drug",
     "social-history", "count"),
    ("11331-6", "History of Alcohol use", "social-history", "alcohol"),
    ("93159-2", "Feeling lonely", "survey", "lonely"),
)  # fmt: skip
_ANSWERS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "housing": (
        (LOINC, "LA31993-1", "I have housing"),
        (LOINC, "LA31994-9", "I do not have housing"),
        (LOINC, "LA31995-6", "I choose not to answer"),
    ),
    "smoking": (
        (SNOMED, "449868002", "Smokes tobacco daily"),
        (SNOMED, "8517006", "Ex-smoker"),
        (SNOMED, "266919005", "Never smoked tobacco"),
    ),
    "employment": (
        (LOINC, "LA17956-6", "Unemployed"),
        (LOINC, "LA17958-2", "Part-time or temporary work"),
        (LOINC, "LA17957-4", "Full-time work"),
    ),
    "alcohol": (
        (SNOMED, "219006", "Current drinker of alcohol"),
        (SNOMED, "105542008", "Non-drinker of alcohol"),
        (SNOMED, "82581004", "Ex-drinker of alcohol"),
    ),
    "lonely": (
        (LOINC, "LA6270-8", "Never"),
        (LOINC, "LA10066-1", "Rarely"),
        (LOINC, "LA10082-8", "Sometimes"),
        (LOINC, "LA10044-8", "Often"),
    ),
}
_SCORE_MAX: Final = {"75626-2": 12, "44261-6": 27, "55758-7": 6}
TASK_STATUSES: Final = ("requested", "requested", "accepted", "in-progress", "completed")
CAREPLAN_STATUSES: Final = ("active", "active", "completed", "draft")
SR_STATUSES: Final = ("active", "active", "completed", "draft", "revoked")
GOAL_STATUSES: Final = ("active", "active", "accepted", "proposed", "completed")
AEST: Final = timezone(timedelta(hours=10))


@dataclass
class CaseDataPools:
    """What a search benchmark draws its values from (filled while generating)."""

    patients: int
    organization_ids: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    observation_codes: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many resources were generated."""
        return sum(self.counts.values())


def patient_id(n: int) -> str:
    """The id of the n-th patient (1-based)."""
    return f"pat-{n:06d}"


def client_identifier(n: int) -> tuple[str, str]:
    """(system, value) of the n-th patient's client identifier."""
    return CLIENT_SYSTEM, f"CL-{n:07d}"


def org_id(n: int) -> str:
    """The id of the n-th organization (1-based)."""
    return f"org-{n:03d}"


def _date(day: date) -> str:
    return day.isoformat()


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _ref(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"{resource_type}/{resource_id}"}
    if display is not None:
        out["display"] = display
    return out


def _coded(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text is not None:
        out["text"] = text
    return out


def organizations() -> Iterator[dict[str, Any]]:
    """The ORGANIZATIONS agencies the records refer to."""
    rng = random.Random(7)
    for n in range(1, ORGANIZATIONS + 1):
        city, state, postcode = PLACES[n % len(PLACES)]
        service, kind = SERVICES[n % len(SERVICES)]
        yield {
            "resourceType": "Organization",
            "id": org_id(n),
            "identifier": [{"system": ORG_SYSTEM, "value": f"ORG-{n:03d}"}],
            "active": True,
            "type": [
                _coded(
                    "http://terminology.hl7.org/CodeSystem/organization-type",
                    kind,
                    {"prov": "Healthcare Provider", "cg": "Community Group", "govt": "Government"}[
                        kind
                    ],
                )
            ],
            "name": f"{city} {service}",
            "telecom": [
                {"system": "phone", "value": f"+61 3 9{rng.randrange(10**6, 10**7)}", "use": "work"}
            ],
            "address": [
                {
                    "line": [f"{rng.randrange(1, 300)} {rng.choice(STREETS)}"],
                    "city": city,
                    "state": state,
                    "postalCode": postcode,
                    "country": "AU",
                }
            ],
        }


class _PatientRecords:
    """Builds one patient's resources from a random stream (one instance per patient)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.rng = rng
        self.pid = patient_id(n)
        self.key = f"{n:06d}"
        self.subject = _ref("Patient", self.pid)
        self.referred = date(2024, 1, 1) + timedelta(days=rng.randrange(700))

    def org(self) -> str:
        return org_id(self.rng.randrange(1, ORGANIZATIONS + 1))

    def patient(self) -> tuple[dict[str, Any], str]:
        rng = self.rng
        system, value = client_identifier(self.n)
        family = rng.choice(FAMILIES)
        given = [rng.choice(GIVEN)] + ([rng.choice(GIVEN)] if rng.random() < 0.3 else [])
        city, state, postcode = rng.choice(PLACES)
        identifiers: list[dict[str, Any]] = [
            {
                "use": "usual",
                "type": _coded(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"
                ),
                "system": system,
                "value": value,
            }
        ]
        if rng.random() < 0.6:
            number = f"{rng.randrange(2, 7)}{rng.randrange(10**8, 10**9)}{rng.randrange(1, 10)}"
            identifiers.append({"system": MEDICARE_SYSTEM, "value": number})
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": self.pid,
            "identifier": identifiers,
            "active": True,
            "name": [{"use": "official", "family": family, "given": given}],
            "gender": rng.choices(("female", "male", "other", "unknown"), (48, 48, 3, 1))[0],
            "birthDate": _date(date(1950, 1, 1) + timedelta(days=rng.randrange(58 * 365))),
            "address": [
                {
                    "use": "home",
                    "line": [f"{rng.randrange(1, 400)} {rng.choice(STREETS)}"],
                    "city": city,
                    "state": state,
                    "postalCode": postcode,
                    "country": "AU",
                }
            ],
        }
        if rng.random() < 0.7:
            mobile = f"04{rng.randrange(10**7, 10**8)}"
            resource["telecom"] = [{"system": "phone", "value": mobile, "use": "mobile"}]
        return resource, family

    def goals(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for k in range(1, rng.choice((1, 2, 2, 3)) + 1):
            start = self.referred + timedelta(days=rng.randrange(30))
            out.append(
                {
                    "resourceType": "Goal",
                    "id": f"goal-{self.key}-{k}",
                    "lifecycleStatus": rng.choice(GOAL_STATUSES),
                    "description": {"text": rng.choice(GOALS)},
                    "subject": self.subject,
                    "startDate": _date(start),
                    "target": [{"dueDate": _date(start + timedelta(days=rng.randrange(60, 240)))}],
                }
            )
        return out

    def care_plans(self, goal_ids: list[str]) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for k in range(1, rng.choice((1, 2, 2, 3)) + 1):
            code, display, text = rng.choice(CAREPLAN_CATEGORIES)
            start = self.referred + timedelta(days=rng.randrange(60))
            kind, activity, description = rng.choice(ACTIVITIES)
            out.append(
                {
                    "resourceType": "CarePlan",
                    "id": f"cp-{self.key}-{k}",
                    "identifier": [{"system": CAREPLAN_SYSTEM, "value": f"CP-{self.key}-{k}"}],
                    "status": rng.choice(CAREPLAN_STATUSES),
                    "intent": "plan",
                    "category": [_coded(SNOMED, code, display, text)],
                    "title": f"{text}: plan {k}",
                    "subject": self.subject,
                    "period": {
                        "start": _date(start),
                        "end": _date(start + timedelta(days=rng.choice((90, 180, 365)))),
                    },
                    "created": _instant(datetime.combine(start, datetime.min.time(), AEST)),
                    "author": _ref("Organization", self.org()),
                    "goal": [_ref("Goal", g) for g in goal_ids],
                    "activity": [
                        {
                            "detail": {
                                "kind": kind,
                                "code": {"text": activity},
                                "status": rng.choice(("scheduled", "in-progress", "not-started")),
                                "description": description,
                            }
                        }
                    ],
                }
            )
        return out

    def service_requests(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for k in range(1, rng.choice((1, 2)) + 1):
            code, display, text = rng.choice(REFERRALS)
            authored = datetime.combine(
                self.referred + timedelta(days=rng.randrange(90)), datetime.min.time(), AEST
            ) + timedelta(minutes=rng.randrange(8 * 60, 17 * 60))
            out.append(
                {
                    "resourceType": "ServiceRequest",
                    "id": f"sr-{self.key}-{k}",
                    "identifier": [{"system": REFERRAL_SYSTEM, "value": f"REF-{self.key}-{k}"}],
                    "status": rng.choice(SR_STATUSES),
                    "intent": "order",
                    "code": _coded(SNOMED, code, display, text),
                    "subject": self.subject,
                    "authoredOn": _instant(authored),
                    "requester": _ref("Organization", self.org()),
                    "performer": [_ref("Organization", self.org())],
                    "reasonCode": [{"text": rng.choice(GOALS)}],
                }
            )
        return out

    def tasks(self, request_ids: list[str]) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for k in range(1, rng.choice((1, 2)) + 1):
            authored = datetime.combine(
                self.referred + timedelta(days=rng.randrange(120)), datetime.min.time(), AEST
            ) + timedelta(minutes=rng.randrange(8 * 60, 17 * 60))
            modified = authored + timedelta(hours=rng.randrange(1, 24 * 30))
            out.append(
                {
                    "resourceType": "Task",
                    "id": f"task-{self.key}-{k}",
                    "status": rng.choice(TASK_STATUSES),
                    "intent": "order",
                    "code": _coded(
                        "http://hl7.org/fhir/CodeSystem/task-code",
                        "fulfill",
                        "Fulfill the focal request",
                    ),
                    "description": "Accept the referral and book a first appointment",
                    "focus": _ref("ServiceRequest", rng.choice(request_ids)),
                    "for": self.subject,
                    "authoredOn": _instant(authored),
                    "lastModified": _instant(modified),
                    "requester": _ref("Organization", self.org()),
                    "owner": _ref("Organization", self.org()),
                }
            )
        return out

    def observations(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        # A few more than two on average, so 100,000 patients make over a million resources.
        for k in range(1, rng.choice((1, 2, 2, 3, 3)) + 1):
            code, display, category, kind = rng.choice(OBSERVATIONS)
            effective = OBS_START + timedelta(minutes=rng.randrange(OBS_DAYS * 24 * 60))
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "id": f"obs-{self.key}-{k}",
                "status": "final",
                "category": [_coded(OBS_CATEGORY, category, category.replace("-", " ").title())],
                "code": _coded(LOINC, code, display),
                "subject": self.subject,
                "effectiveDateTime": _instant(effective),
                "performer": [_ref("Organization", self.org())],
            }
            if kind in ("score", "count"):
                top = _SCORE_MAX.get(code, 50)
                unit = "{score}" if kind == "score" else "/a"
                resource["valueQuantity"] = {
                    "value": rng.randrange(top + 1),
                    "unit": "score" if kind == "score" else "times per year",
                    "system": UCUM,
                    "code": unit,
                }
            else:
                system, answer, text = rng.choice(_ANSWERS[kind])
                resource["valueCodeableConcept"] = _coded(system, answer, text, text)
            out.append(resource)
        return out


def generate(
    patients: int, *, seed: int = 2026, pools: CaseDataPools | None = None
) -> Iterator[dict[str, Any]]:
    """Every resource for `patients` patients (organizations first), reproducibly from seed."""
    pools = pools if pools is not None else CaseDataPools(patients)
    pools.organization_ids = [org_id(n) for n in range(1, ORGANIZATIONS + 1)]
    pools.observation_codes = [(LOINC, code) for code, *_ in OBSERVATIONS]
    families: set[str] = set()
    counts = pools.counts
    for org in organizations():
        counts["Organization"] = counts.get("Organization", 0) + 1
        yield org
    rng = random.Random(seed)
    for n in range(1, patients + 1):
        records = _PatientRecords(n, rng)
        patient, family = records.patient()
        families.add(family)
        goals = records.goals()
        plans = records.care_plans([g["id"] for g in goals])
        requests = records.service_requests()
        tasks = records.tasks([r["id"] for r in requests])
        for resource in (patient, *goals, *plans, *requests, *tasks, *records.observations()):
            kind = resource["resourceType"]
            counts[kind] = counts.get(kind, 0) + 1
            yield resource
    pools.families = sorted(families)


def write_ndjson(out: IO[bytes], patients: int, *, seed: int = 2026) -> CaseDataPools:
    """Write the data set as NDJSON (one compact resource per line) and return its pools."""
    pools = CaseDataPools(patients)
    buffer: list[bytes] = []
    for resource in generate(patients, seed=seed, pools=pools):
        buffer.append(orjson.dumps(resource))
        if len(buffer) >= 4096:
            out.write(b"\n".join(buffer) + b"\n")
            buffer.clear()
    if buffer:
        out.write(b"\n".join(buffer) + b"\n")
    return pools


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.casedata --patients N --out FILE`."""
    parser = argparse.ArgumentParser(prog="python -m bench.casedata", description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, required=True, help="NDJSON file to write")
    args = parser.parse_args(argv)
    with args.out.open("wb") as out:
        pools = write_ndjson(out, args.patients, seed=args.seed)
    summary = ", ".join(f"{k} {v:,}" for k, v in sorted(pools.counts.items()))
    print(f"wrote {pools.total:,} resources to {args.out} ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
