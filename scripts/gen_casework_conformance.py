"""Write the project's own FHIR conformance resources under schemas/fhir/.

CodeSystems and ValueSets (schemas/fhir/terminology/) for the models of case-management
practice, AOD service types, case stages, settings, connection strengths and the project's
observation codes; Questionnaires (schemas/fhir/questionnaires/) for AUDIT, K10 and PHQ-9.

The instruments are free to use: AUDIT (WHO, 2001, "may be used freely"), K10 (Kessler et
al., 2002, public domain) and PHQ-9 (Pfizer: "no permission required to reproduce, translate,
display or distribute"). Scores are carried as ordinalValue extensions on each answer option
(spec questionnaire.html, extension-ordinalvalue.html); risk zones are in the project's
CodeSystem "assessment-zone" with the bounds of each zone as properties.

Run: .venv/bin/python scripts/gen_casework_conformance.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "https://casebridge.org/fhir"
ROOT = Path(__file__).resolve().parents[1] / "schemas" / "fhir"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
VERSION = "0.1.0"

# code, display, definition, extra properties
MODELS = [
    (
        "brokerage",
        "Brokerage",
        "Assess needs and refer to community services; the least intensive model (one or "
        "two sessions); the worker connects rather than delivers.",
        {"max-caseload": 50, "max-sessions": 2, "max-case-days": 90},
    ),
    (
        "generalist",
        "Generalist / traditional",
        "Brokerage functions plus a closer, continuing relationship: the worker coordinates "
        "care and supports the client through it.",
        {"max-caseload": 35},
    ),
    (
        "clinical",
        "Clinical",
        "The case manager also provides therapy or counselling alongside coordination.",
        {"max-caseload": 25},
    ),
    (
        "strengths-based",
        "Strengths-based",
        "Builds on the client's capabilities and resources: goals expressed by the client, "
        "strengths and informal supports recorded and referenced.",
        {"max-caseload": 20},
    ),
    (
        "intensive",
        "Intensive case management (ICM)",
        "For complex needs; a low staff-to-client ratio and support around the clock.",
        {"max-caseload": 15, "contact-within-days": 7},
    ),
    (
        "act",
        "Assertive community treatment (ACT)",
        "A multidisciplinary team shares responsibility for the client in the community, at "
        "low ratios.",
        {"max-caseload": 10, "multidisciplinary": True, "contact-within-days": 7},
    ),
    (
        "wraparound",
        "Wraparound",
        "A team of professionals and informal supports built around the client and family, "
        "sharing the caseload at low ratios.",
        {"max-caseload": 10, "multidisciplinary": True},
    ),
    (
        "cti",
        "Critical time intervention (CTI)",
        "Time-limited support through a transition (leaving hospital, prison or "
        "homelessness) in phases, building lasting links to community supports.",
        {"max-caseload": 20, "time-limited": True, "max-case-days": 270},
    ),
]

AOD_SERVICES = [
    ("counselling", "Counselling"),
    ("outreach", "Outreach"),
    ("home-withdrawal", "Home-based withdrawal"),
    ("outpatient-withdrawal", "Outpatient withdrawal"),
    ("peer-support", "Peer support / self-help programs"),
    ("telephone-counselling", "Telephone counselling"),
    ("residential-withdrawal", "Community residential withdrawal"),
    ("hospital-withdrawal", "Private hospital withdrawal"),
    ("rehabilitation", "Therapeutic / rehabilitation programs"),
    ("supported-accommodation", "AOD supported accommodation"),
    ("emergency", "Accident and emergency"),
    ("pharmacotherapy", "Pharmacotherapies"),
]

STAGES = [
    ("engagement", "Engagement", "Building a working relationship; consent recorded."),
    ("assessment", "Assessment", "Gathering information; strengths and challenges."),
    ("planning", "Planning", "Goals and an intervention plan agreed with the client."),
    ("implementation", "Implementation", "Services, referrals and supports delivered."),
    ("monitoring", "Monitoring", "Progress checked and the plan adjusted."),
    ("evaluation", "Evaluation", "Outcomes reviewed against the goals."),
    ("closure", "Closure", "The case is closed."),
]

CLOSURE_REASONS = [
    ("goals-achieved", "Goals achieved", "The client reached the goals of the plan."),
    ("client-withdrew", "Client withdrew", "The client chose to end the service."),
    ("transferred", "Transferred", "The client's care passed to another service."),
    ("moved-away", "Moved away", "The client left the service's area."),
    ("lost-contact", "Lost contact", "The client could not be contacted despite attempts."),
    ("ineligible", "Not eligible", "The client turned out not to be eligible for the service."),
    ("deceased", "Deceased", "The client died."),
    ("other", "Other", "Another reason, given in the closure summary."),
]

CONTACT_TYPES = [
    ("face-to-face", "Face to face", "Met in person at the service."),
    ("home-visit", "Home visit", "Met in person where the client lives."),
    ("outreach", "Outreach", "Met in person in the community (street, shelter, hospital)."),
    ("telephone", "Telephone", "Spoke by telephone."),
    ("video", "Video call", "Met by video call."),
    ("text-message", "Text message", "Exchanged text messages."),
    ("email", "Email", "Exchanged email."),
    ("group", "Group session", "Took part in a group session."),
    (
        "case-conference",
        "Case conference",
        "Met with the client and the care team or other agencies together.",
    ),
]

ASSESSMENT_DOMAINS = [
    (
        "comprehensive-assessment",
        "Comprehensive assessment",
        "The panel gathering the domains of one comprehensive assessment.",
    ),
    ("family", "Family history", "Family members, relationships and family history."),
    ("medical", "Medical history", "Health conditions, treatment and medication history."),
    (
        "socio-economic",
        "Socio-economic status",
        "Income, employment, education and financial situation.",
    ),
    ("cultural", "Culture", "Cultural identity, community, beliefs and practices that matter."),
    ("living-situation", "Living situation", "Where and with whom the client lives."),
]

LIVING_SITUATIONS = [
    ("own-home", "Own home", "Owns or is buying the home."),
    ("private-rental", "Private rental", "Rents privately."),
    ("social-housing", "Social housing", "Public or community housing."),
    ("with-family-or-friends", "With family or friends", "Lives with family or friends."),
    ("supported-accommodation", "Supported accommodation", "Accommodation with support."),
    ("boarding-house", "Boarding house", "A boarding or rooming house."),
    ("temporary", "Temporary", "Couch surfing, a refuge or short-term accommodation."),
    ("rough-sleeping", "Rough sleeping", "No shelter: sleeping rough."),
    ("institution", "Institution", "Hospital, prison or residential care."),
    ("other", "Other", "Another situation, described in the note."),
]

SETTINGS = [
    ("healthcare", "Healthcare"),
    ("mental-health", "Mental health"),
    ("child-welfare", "Child welfare"),
    ("community-services", "Community services"),
]

CONNECTIONS = [
    ("strong", "Strong", "A supportive, reliable tie."),
    ("moderate", "Moderate", "A tie of ordinary strength."),
    ("weak", "Weak", "A tenuous tie."),
    ("stressful", "Stressful", "A tie that causes stress or conflict."),
]

FLOWS = [
    (
        "to-client",
        "To the client",
        "Energy and resources flow from the person or system to the client.",
    ),
    (
        "from-client",
        "From the client",
        "Energy and resources flow from the client to the person or system.",
    ),
    ("both", "Both ways", "Energy and resources flow both ways."),
]

INFORMAL_SYSTEMS = [
    ("work", "Work", "A workplace: employer and colleagues."),
    ("school", "School", "A school, college or training course."),
    ("faith", "Faith community", "A church, mosque, temple or other faith community."),
    ("self-help", "Self-help group", "A mutual-help group: AA, NA, SMART Recovery and the like."),
    ("recreation", "Recreation", "A sports club, hobby group or other leisure activity."),
    ("community", "Community group", "A neighbourhood, cultural or other community group."),
]

SEPARATIONS = [
    ("separated", "Separated", "The partners live apart; the partnership is not dissolved."),
    ("divorced", "Divorced", "The marriage or partnership is dissolved."),
]

OBSERVATIONS = [
    ("strength", "Client strength", "A capability or resource of the client."),
    ("k10-total", "K10 total score", "Kessler Psychological Distress Scale (K10) total, 10-50."),
    ("risk-zone", "Assessment risk zone", "The zone a total score falls in."),
    (
        "self-harm-risk",
        "Risk of self-harm",
        "PHQ-9 item 9 (thoughts that you would be better off dead, or of hurting yourself) "
        "answered above 0: a risk to follow up the same day, whatever the total.",
    ),
]

# instrument, zone code, display, low, high (inclusive)
ZONES = [
    ("audit", "audit-low", "AUDIT zone I: low risk", 0, 7),
    ("audit", "audit-hazardous", "AUDIT zone II: hazardous (risky) drinking", 8, 15),
    ("audit", "audit-harmful", "AUDIT zone III: harmful drinking", 16, 19),
    ("audit", "audit-dependence", "AUDIT zone IV: possible dependence", 20, 40),
    ("k10", "k10-low", "K10: likely to be well", 10, 19),
    ("k10", "k10-mild", "K10: mild distress", 20, 24),
    ("k10", "k10-moderate", "K10: moderate distress", 25, 29),
    ("k10", "k10-severe", "K10: severe distress", 30, 50),
    # The ABS National Health Survey bands (population reporting), chosen with
    # CASEBRIDGE_K10_BANDS=abs; k10-abs names the band set, the instrument is K10.
    ("k10-abs", "k10-abs-low", "K10 (ABS bands): low distress", 10, 15),
    ("k10-abs", "k10-abs-moderate", "K10 (ABS bands): moderate distress", 16, 21),
    ("k10-abs", "k10-abs-high", "K10 (ABS bands): high distress", 22, 29),
    ("k10-abs", "k10-abs-very-high", "K10 (ABS bands): very high distress", 30, 50),
    ("phq9", "phq9-minimal", "PHQ-9: minimal depression", 0, 4),
    ("phq9", "phq9-mild", "PHQ-9: mild depression", 5, 9),
    ("phq9", "phq9-moderate", "PHQ-9: moderate depression", 10, 14),
    ("phq9", "phq9-moderately-severe", "PHQ-9: moderately severe depression", 15, 19),
    ("phq9", "phq9-severe", "PHQ-9: severe depression", 20, 27),
]


def _property(code: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"code": code, "valueBoolean": value}
    if isinstance(value, int):
        return {"code": code, "valueInteger": value}
    return {"code": code, "valueString": str(value)}


def code_system(
    slug: str,
    title: str,
    description: str,
    concepts: list[dict[str, Any]],
    properties: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "id": f"casebridge-{slug}",
        "url": f"{BASE}/CodeSystem/{slug}",
        "version": VERSION,
        "name": "".join(p.capitalize() for p in slug.split("-")),
        "title": title,
        "status": "active",
        "publisher": "casebridge",
        "description": description,
        "caseSensitive": True,
        "valueSet": f"{BASE}/ValueSet/{slug}",
        "content": "complete",
        "count": len(concepts),
    }
    if properties:
        resource["property"] = properties
    resource["concept"] = concepts
    return resource


def value_set(slug: str, title: str) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": f"casebridge-{slug}",
        "url": f"{BASE}/ValueSet/{slug}",
        "version": VERSION,
        "name": "".join(p.capitalize() for p in slug.split("-")),
        "title": title,
        "status": "active",
        "publisher": "casebridge",
        "description": f"Every code of the CodeSystem {BASE}/CodeSystem/{slug}.",
        "compose": {"include": [{"system": f"{BASE}/CodeSystem/{slug}"}]},
    }


def terminology() -> list[dict[str, Any]]:
    out = []
    models = [
        {
            "code": code,
            "display": display,
            "definition": definition,
            "property": [_property(k, v) for k, v in extra.items()],
        }
        for code, display, definition, extra in MODELS
    ]
    model_props = [
        {
            "code": "max-caseload",
            "description": "Open cases one case manager may hold under this model.",
            "type": "integer",
        },
        {"code": "max-sessions", "description": "Sessions a plan may plan.", "type": "integer"},
        {
            "code": "multidisciplinary",
            "description": "The model requires a care team of two or more disciplines.",
            "type": "boolean",
        },
        {
            "code": "time-limited",
            "description": "Plans under the model need a period and phases.",
            "type": "boolean",
        },
        {
            "code": "max-case-days",
            "description": "Days a case under the model stays open before it should close "
            "(brokerage: brief, link and close; CTI: nine months).",
            "type": "integer",
        },
        {
            "code": "contact-within-days",
            "description": "Most days between contacts with the client (intensive models: "
            "frequent contact).",
            "type": "integer",
        },
    ]
    out.append(
        code_system(
            "case-management-model",
            "Models of case-management practice",
            "Models of practice a care plan follows (CarePlan.category, EpisodeOfCare.type), "
            "with the caseload ratio and the rules each implies.",
            models,
            model_props,
        )
    )
    out.append(
        code_system(
            "aod-service-type",
            "Alcohol and other drug service types",
            "The AOD service system: what a HealthcareService offers and a ServiceRequest "
            "asks for.",
            [{"code": c, "display": d} for c, d in AOD_SERVICES],
        )
    )
    out.append(
        code_system(
            "case-stage",
            "Stages of the case-management process",
            "Where a case (EpisodeOfCare) is in the process, engagement to closure.",
            [{"code": c, "display": d, "definition": t} for c, d, t in STAGES],
        )
    )
    out.append(
        code_system(
            "case-closure-reason",
            "Reasons a case is closed",
            "Why a case (EpisodeOfCare) was closed; recorded with a closure summary.",
            [{"code": c, "display": d, "definition": t} for c, d, t in CLOSURE_REASONS],
        )
    )
    out.append(
        code_system(
            "contact-type",
            "Types of contact with a client",
            "How a worker was in contact with the client (a progress note's "
            "DocumentReference.context.event).",
            [{"code": c, "display": d, "definition": t} for c, d, t in CONTACT_TYPES],
        )
    )
    out.append(
        code_system(
            "assessment-domain",
            "Domains of a comprehensive assessment",
            "The domains a case manager assesses (Observation.code of each domain).",
            [{"code": c, "display": d, "definition": t} for c, d, t in ASSESSMENT_DOMAINS],
        )
    )
    out.append(
        code_system(
            "living-situation",
            "Living situations",
            "Where and with whom a client lives (the living-situation domain's value).",
            [{"code": c, "display": d, "definition": t} for c, d, t in LIVING_SITUATIONS],
        )
    )
    out.append(
        code_system(
            "practice-setting",
            "Case-management settings",
            "The setting a case is managed in.",
            [{"code": c, "display": d} for c, d in SETTINGS],
        )
    )
    out.append(
        code_system(
            "connection-strength",
            "Strength of a connection",
            "The strength or stress of a tie between the client and a person or agency (ecomap).",
            [{"code": c, "display": d, "definition": t} for c, d, t in CONNECTIONS],
        )
    )
    out.append(
        code_system(
            "energy-flow",
            "Direction of energy flow",
            "Which way energy and resources flow along a tie (the arrows of an ecomap).",
            [{"code": c, "display": d, "definition": t} for c, d, t in FLOWS],
        )
    )
    out.append(
        code_system(
            "informal-system",
            "Informal systems",
            "Kinds of informal system a client takes part in (Group.code; drawn on the ecomap).",
            [{"code": c, "display": d, "definition": t} for c, d, t in INFORMAL_SYSTEMS],
        )
    )
    out.append(
        code_system(
            "separation",
            "Ended partnerships",
            "How a partnership in the client's family ended (the marks of a genogram).",
            [{"code": c, "display": d, "definition": t} for c, d, t in SEPARATIONS],
        )
    )
    out.append(
        code_system(
            "observation",
            "casebridge observation codes",
            "Observation codes where no standard code exists.",
            [{"code": c, "display": d, "definition": t} for c, d, t in OBSERVATIONS],
        )
    )
    out.append(
        code_system(
            "assessment-zone",
            "Risk zones of assessment instruments",
            "The zone a total score falls in. AUDIT: WHO (2001) zones I-IV; K10: AIHW METeOR "
            "634146 bands, or the ABS National Health Survey bands (k10-abs); PHQ-9: Kroenke "
            "et al. (2001) severity bands.",
            [
                {
                    "code": code,
                    "display": display,
                    "property": [
                        _property("instrument", instrument),
                        _property("low", low),
                        _property("high", high),
                    ],
                }
                for instrument, code, display, low, high in ZONES
            ],
            [
                {
                    "code": "instrument",
                    "description": "audit, k10, k10-abs (K10 on the ABS bands) or phq9",
                    "type": "string",
                },
                {"code": "low", "description": "Lowest total in the zone", "type": "integer"},
                {"code": "high", "description": "Highest total in the zone", "type": "integer"},
            ],
        )
    )
    out.append(
        code_system(
            "answer-score",
            "Answer scores",
            "The score an answer option of a casebridge Questionnaire carries.",
            [{"code": str(n), "display": f"Score {n}"} for n in range(6)],
        )
    )
    titles = {cs["url"].rsplit("/", 1)[1]: cs["title"] for cs in out}
    out.extend(value_set(slug, title) for slug, title in titles.items())
    return out


def _options(scores: list[tuple[int, str]]) -> list[dict[str, Any]]:
    return [
        {
            "valueCoding": {
                "system": f"{BASE}/CodeSystem/answer-score",
                "code": str(score),
                "display": text,
            },
            "extension": [{"url": ORDINAL, "valueDecimal": score}],
        }
        for score, text in scores
    ]


AUDIT_FREQ = [
    (0, "Never"),
    (1, "Monthly or less"),
    (2, "2 to 4 times a month"),
    (3, "2 to 3 times a week"),
    (4, "4 or more times a week"),
]
AUDIT_QTY = [(0, "1 or 2"), (1, "3 or 4"), (2, "5 or 6"), (3, "7 to 9"), (4, "10 or more")]
AUDIT_OFTEN = [
    (0, "Never"),
    (1, "Less than monthly"),
    (2, "Monthly"),
    (3, "Weekly"),
    (4, "Daily or almost daily"),
]
AUDIT_YES = [(0, "No"), (2, "Yes, but not in the last year"), (4, "Yes, during the last year")]
AUDIT_ITEMS = [
    ("How often do you have a drink containing alcohol?", AUDIT_FREQ),
    ("How many drinks containing alcohol do you have on a typical day when drinking?", AUDIT_QTY),
    ("How often do you have six or more drinks on one occasion?", AUDIT_OFTEN),
    (
        "How often during the last year have you found that you were not able to stop "
        "drinking once you had started?",
        AUDIT_OFTEN,
    ),
    (
        "How often during the last year have you failed to do what was normally expected of "
        "you because of drinking?",
        AUDIT_OFTEN,
    ),
    (
        "How often during the last year have you needed a first drink in the morning to get "
        "yourself going after a heavy drinking session?",
        AUDIT_OFTEN,
    ),
    (
        "How often during the last year have you had a feeling of guilt or remorse after drinking?",
        AUDIT_OFTEN,
    ),
    (
        "How often during the last year have you been unable to remember what happened the "
        "night before because of your drinking?",
        AUDIT_OFTEN,
    ),
    ("Have you or someone else been injured because of your drinking?", AUDIT_YES),
    (
        "Has a relative, friend, doctor or other health worker been concerned about your "
        "drinking or suggested you cut down?",
        AUDIT_YES,
    ),
]
K10_SCALE = [
    (1, "None of the time"),
    (2, "A little of the time"),
    (3, "Some of the time"),
    (4, "Most of the time"),
    (5, "All of the time"),
]
K10_ITEMS = [
    "In the past 4 weeks, about how often did you feel tired out for no good reason?",
    "In the past 4 weeks, about how often did you feel nervous?",
    "In the past 4 weeks, about how often did you feel so nervous that nothing could calm "
    "you down?",
    "In the past 4 weeks, about how often did you feel hopeless?",
    "In the past 4 weeks, about how often did you feel restless or fidgety?",
    "In the past 4 weeks, about how often did you feel so restless you could not sit still?",
    "In the past 4 weeks, about how often did you feel depressed?",
    "In the past 4 weeks, about how often did you feel that everything was an effort?",
    "In the past 4 weeks, about how often did you feel so sad that nothing could cheer you up?",
    "In the past 4 weeks, about how often did you feel worthless?",
]
PHQ_SCALE = [
    (0, "Not at all"),
    (1, "Several days"),
    (2, "More than half the days"),
    (3, "Nearly every day"),
]
PHQ_ITEMS = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself, or that you are a failure or have let yourself or your "
    "family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed, or the opposite: "
    "being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
]


def questionnaire(
    slug: str, title: str, description: str, items: list[tuple[str, list[tuple[int, str]]]]
) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "id": f"casebridge-{slug}",
        "url": f"{BASE}/Questionnaire/{slug}",
        "version": VERSION,
        "name": slug.upper(),
        "title": title,
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "casebridge",
        "description": description,
        "item": [
            {
                "linkId": f"{slug}-{n}",
                "text": text,
                "type": "choice",
                "required": True,
                "answerOption": _options(scale),
            }
            for n, (text, scale) in enumerate(items, start=1)
        ],
    }


def questionnaires() -> list[dict[str, Any]]:
    return [
        questionnaire(
            "audit",
            "AUDIT: Alcohol Use Disorders Identification Test",
            "WHO (2001), free to use. Ten items; total 0-40.",
            AUDIT_ITEMS,
        ),
        questionnaire(
            "k10",
            "K10: Kessler Psychological Distress Scale",
            "Kessler et al. (2002), public domain. Ten items scored 1-5; total 10-50.",
            [(text, K10_SCALE) for text in K10_ITEMS],
        ),
        questionnaire(
            "phq9",
            "PHQ-9: Patient Health Questionnaire",
            "Kroenke, Spitzer and Williams (2001); no permission required. Over the last two "
            "weeks, how often have you been bothered by... Nine items scored 0-3; total 0-27.",
            [(text, PHQ_SCALE) for text in PHQ_ITEMS],
        ),
    ]


def _parameter(
    name: str, use: str, kind: str | None, low: int, high: str, text: str, **more: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "use": use, "min": low, "max": high}
    out["documentation"] = text
    if kind is not None:
        out["type"] = kind
    out.update(more)
    return out


def _operation(
    code: str,
    resource: str,
    title: str,
    description: str,
    parameters: list[dict[str, Any]],
    *,
    affects_state: bool,
) -> dict[str, Any]:
    op_id = f"{resource}-{code}"
    return {
        "resourceType": "OperationDefinition",
        "id": op_id,
        "url": f"{BASE}/OperationDefinition/{op_id}",
        "version": VERSION,
        "name": "".join(part.capitalize() for part in op_id.split("-")),
        "title": title,
        "status": "active",
        "kind": "operation",
        "publisher": "casebridge",
        "description": description,
        "affectsState": affects_state,
        "code": code,
        "resource": [resource],
        "system": False,
        "type": False,
        "instance": True,
        "parameter": parameters,
    }


_REASON = _parameter(
    "reason",
    "in",
    "string",
    0,
    "1",
    "Why (becomes Task.statusReason.text); decline, hold, fail and cancel require it.",
)
_RETURN_TASK = _parameter("return", "out", "Task", 1, "1", "The referral Task as written.")


def operations() -> list[dict[str, Any]]:
    """The project's own operations (the CapabilityStatement names them by these URLs)."""
    found = [
        _operation(
            "everything",
            "CarePlan",
            "A care plan and everything it refers to",
            "The plan, its goals, activities (requests, tasks), care team and the client: what "
            "a referral hands over, as a searchset Bundle. Refused (400) above 1,000 resources.",
            [
                _parameter("_since", "in", "instant", 0, "1", "Only resources changed since."),
                _parameter("_type", "in", "string", 0, "*", "Only resources of these types."),
                _parameter("_count", "in", "integer", 0, "1", "Page size."),
                _parameter("return", "out", "Bundle", 1, "1", "The plan's package."),
            ],
            affects_state=False,
        ),
        _operation(
            "check",
            "CarePlan",
            "What a care plan lacks",
            "Warnings about the plan as a contract: goals that are not SMART, actions without "
            "what, how, where, when or who, overdue goals, consent for sensitive referrals, "
            "caseload. Changes nothing.",
            [_parameter("return", "out", "OperationOutcome", 1, "1", "One issue per finding.")],
            affects_state=False,
        ),
        _operation(
            "disclosures",
            "Patient",
            "Accounting of disclosures",
            "Every release of the client's records to an agency that does not own them: when, "
            "to whom, which record and version, and the consent in force.",
            [_parameter("return", "out", "Bundle", 1, "1", "AuditEvents of the releases.")],
            affects_state=False,
        ),
    ]
    actions = [
        ("accept", "Accept a referral", "requested -> accepted, by the receiving agency."),
        ("decline", "Decline a referral", "requested -> rejected, by the receiving agency."),
        ("start", "Start work on a referral", "accepted -> in-progress."),
        ("hold", "Put a referral on hold", "accepted or in-progress -> on-hold."),
        ("resume", "Resume a referral", "on-hold -> in-progress."),
        ("complete", "Complete a referral", "-> completed, with its outcome (closing the loop)."),
        ("fail", "Record that a referral failed", "-> failed, by the receiving agency."),
        ("cancel", "Cancel a referral", "-> cancelled, by either agency."),
    ]
    for code, title, moves in actions:
        parameters = [_REASON]
        if code == "complete":
            parameters = [
                _parameter("summary", "in", "string", 0, "1", "What was done."),
                _parameter(
                    "resource",
                    "in",
                    "Resource",
                    0,
                    "*",
                    "Procedures and Observations to store as the outcome.",
                ),
                _parameter(
                    "reference", "in", "Reference", 0, "*", "Outcome records already stored."
                ),
                _parameter(
                    "goal",
                    "in",
                    None,
                    0,
                    "*",
                    "A goal of the referral and its achievement status.",
                    part=[
                        _parameter("goal", "in", "Reference", 1, "1", "Goal/{id}."),
                        _parameter(
                            "achievementStatus", "in", "code", 1, "1", "goal-achievement code."
                        ),
                    ],
                ),
            ]
        found.append(
            _operation(
                code,
                "Task",
                title,
                f"A referral Task (code fulfill) status change: {moves} Checks If-Match when "
                "sent; the referral state machine applies as to a PUT.",
                [*parameters, _RETURN_TASK],
                affects_state=True,
            )
        )
    return found


def _write(folder: str, resources: list[dict[str, Any]]) -> None:
    target = ROOT / folder
    target.mkdir(parents=True, exist_ok=True)
    for resource in resources:
        path = target / f"{resource['resourceType']}-{resource['id']}.json"
        path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    _write("terminology", terminology())
    _write("questionnaires", questionnaires())
    _write("operations", operations())


if __name__ == "__main__":
    main()
