"""The plain case-management JSON: what a case worker writes and reads, in their own terms.

Agencies without a FHIR system post these; mappings/ turns them into FHIR resources and back.
Codes come from the project's CodeSystems (schemas/fhir/terminology, canonical base
https://casebridge.org/fhir/CodeSystem/...); the Literal types below list the same codes, and a
test keeps the two in step. Ids are FHIR ids, filled in by the server on create.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
AgencyRef = Annotated[str, StringConstraints(pattern=r"^Organization/[A-Za-z0-9\-.]{1,64}$")]
WORKER_PATTERN = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$"
WorkerRef = Annotated[str, StringConstraints(pattern=WORKER_PATTERN)]
# Who may take part in care: workers, agencies, the client, their supports, other teams.
PartyRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^(Practitioner|PractitionerRole|Organization|Patient|RelatedPerson|CareTeam)"
        r"/[A-Za-z0-9\-.]{1,64}$"
    ),
]

Model = Literal[
    "brokerage",
    "generalist",
    "clinical",
    "strengths-based",
    "intensive",
    "act",
    "wraparound",
    "cti",
]
Stage = Literal[
    "engagement",
    "assessment",
    "planning",
    "implementation",
    "monitoring",
    "evaluation",
    "closure",
]
Setting = Literal["healthcare", "mental-health", "child-welfare", "community-services"]
ConsentUse = Literal["care-coordination", "care-management", "treatment", "emergency-treatment"]
ServiceType = Literal[
    "counselling",
    "outreach",
    "home-withdrawal",
    "outpatient-withdrawal",
    "peer-support",
    "telephone-counselling",
    "residential-withdrawal",
    "hospital-withdrawal",
    "rehabilitation",
    "supported-accommodation",
    "emergency",
    "pharmacotherapy",
]
Connection = Literal["strong", "moderate", "weak", "stressful"]
# Which way energy and resources flow along a tie (the ecomap's arrows).
Flow = Literal["to-client", "from-client", "both"]
# Informal systems the client takes part in (ecomap): a workplace, a school, a faith
# community, a self-help group (AA, NA, SMART Recovery), a club, a community group.
SystemKind = Literal["work", "school", "faith", "self-help", "recreation", "community"]
# How a partnership ended (the genogram's marks: one slash separated, two divorced).
Separation = Literal["separated", "divorced"]
CaseStatus = Literal["planned", "waitlist", "active", "onhold", "finished", "cancelled"]
# Why a case closed (CodeSystem case-closure-reason).
ClosureReason = Literal[
    "goals-achieved",
    "client-withdrew",
    "transferred",
    "moved-away",
    "lost-contact",
    "ineligible",
    "deceased",
    "other",
]
# How a worker was in contact with the client (CodeSystem contact-type).
ContactType = Literal[
    "face-to-face",
    "home-visit",
    "outreach",
    "telephone",
    "video",
    "text-message",
    "email",
    "group",
    "case-conference",
]
Gender = Literal["male", "female", "other", "unknown"]
# HL7 v3 RoleCode family relationships (http://terminology.hl7.org/CodeSystem/v3-RoleCode).
Relationship = Literal[
    "MTH",
    "FTH",
    "PRN",
    "STPMTH",
    "STPFTH",
    "SIB",
    "SIS",
    "BRO",
    "HSIB",
    "HSIS",
    "HBRO",
    "CHILD",
    "DAU",
    "SON",
    "SPS",
    "DOMPART",
    "SIGOTHR",
    "FMRSPS",
    "GRMTH",
    "GRFTH",
    "GRPRN",
    "MGRMTH",
    "MGRFTH",
    "PGRMTH",
    "PGRFTH",
    "AUNT",
    "UNCLE",
    "MAUNT",
    "MUNCLE",
    "PAUNT",
    "PUNCLE",
    "COUSN",
    "FRND",
    "NBOR",
    "ROOM",
]
# A parent recorded among the client's family (genogram): a support or a family history.
ParentRef = Annotated[
    str,
    StringConstraints(pattern=r"^(RelatedPerson|FamilyMemberHistory)/[A-Za-z0-9\-.]{1,64}$"),
]
Instrument = Literal["audit", "k10", "phq9"]
# Aboriginal and Torres Strait Islander status (the Australian standard question; AU Base
# indigenous-status, METeOR 602543 codes 1, 2, 3, 4, 9).
IndigenousStatus = Literal[
    "aboriginal", "torres-strait-islander", "both", "neither", "not-stated"
]  # fmt: skip
# Where the client lives (CodeSystem living-situation).
LivingSituation = Literal[
    "own-home",
    "private-rental",
    "social-housing",
    "with-family-or-friends",
    "supported-accommodation",
    "boarding-house",
    "temporary",
    "rough-sleeping",
    "institution",
    "other",
]
# A BCP 47 language tag: en, vi, ar, zh-Hant, pjt.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}$"
Language = Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN)]


class Plain(BaseModel):
    """Shared settings: unknown fields are refused, so a typo is an error and not lost data."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Client(Plain):
    """The person the case is about (FHIR Patient)."""

    id: FhirId | None = None
    given_names: list[Text] = Field(default_factory=list, max_length=5)
    family_name: Text | None = None
    birth_date: dt.date | None = None
    gender: Gender | None = None
    phone: Text | None = None
    deceased: bool | None = None
    indigenous_status: IndigenousStatus | None = None
    # The language the client prefers to speak, and whether they need an interpreter in it.
    language: Language | None = None
    interpreter_needed: bool | None = None


class Support(Plain):
    """Family, friends and other informal supports (FHIR RelatedPerson); with a kind other
    than person, an informal system the client takes part in: a workplace, a school, a faith
    community, a self-help group (FHIR Group with the client as member)."""

    id: FhirId | None = None
    kind: Literal["person"] | SystemKind = "person"
    name: Text
    relationship: Relationship | None = None
    gender: Gender | None = None
    birth_date: dt.date | None = None
    # A death date implies deceased.
    deceased: bool | None = None
    death_date: dt.date | None = None
    # Genogram: how this person's partnership ended. The partner is the one the relationship
    # implies: the client for a spouse or partner (FMRSPS is divorced already), the other
    # parent for a parent, the client's parent for a step-parent, the other grandparent of
    # the same side for a grandparent.
    separation: Separation | None = None
    # Genogram: a parent of this person where the relationship alone does not tell: the
    # parent a half-sibling shares with the client, or the client's partner or former
    # partner who is the other parent of the client's child.
    parent: ParentRef | None = None
    phone: Text | None = None
    # How the tie feels to the client, and which way energy flows along it (the ecomap).
    connection: Connection | None = None
    flow: Flow | None = None
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Support:
        if self.death_date is not None:
            if self.deceased is False:
                raise ValueError("death_date is given, so deceased cannot be false")
            self.deceased = True
        if self.kind != "person":
            personal = [name for name in _PERSONAL if getattr(self, name) is not None]
            if personal:
                raise ValueError(
                    f"{', '.join(personal)}: only for a person, not for a system ({self.kind})"
                )
        return self


# What only a person has (not an informal system).
_PERSONAL = (
    "relationship",
    "gender",
    "birth_date",
    "deceased",
    "death_date",
    "separation",
    "parent",
    "phone",
)


class TeamMember(Plain):
    """One member of the care team: who, and the discipline or role they bring."""

    member: PartyRef
    name: Text | None = None
    role: Text


class Alert(Plain):
    """A risk on the client a worker must see first (an active FHIR Flag): what, since
    when, and the assessment that raised it."""

    code: str
    text: str
    since: dt.date | None = None
    assessment: FhirId | None = None


class Case(Plain):
    """A case (FHIR EpisodeOfCare): the client, who manages it and where it stands."""

    id: FhirId | None = None
    # Read only, first: the client's active risk flags (e.g. self-harm-risk).
    alerts: list[Alert] = Field(default_factory=list)
    client_id: FhirId | None = None
    status: CaseStatus = "active"
    stage: Stage = "engagement"
    model: Model | None = None
    setting: Setting | None = None
    managing_agency: AgencyRef | None = None
    care_manager: WorkerRef | None = None
    care_team: list[TeamMember] = Field(default_factory=list, max_length=50)
    # The referral (ServiceRequest) that opened the case.
    referral: (
        Annotated[str, StringConstraints(pattern=r"^ServiceRequest/[A-Za-z0-9\-.]{1,64}$")] | None
    ) = None
    start: dt.date | None = None
    end: dt.date | None = None
    # Closing a case (stage closure, or status finished or cancelled) needs both.
    closure_reason: ClosureReason | None = None
    closure_summary: Text | None = None
    # Read only: the id of the CareTeam the server keeps for care_team.
    care_team_id: FhirId | None = None
    # Read only, on a write's answer: what the process rules warn about (a skipped stage,
    # open plans or referrals at closure).
    warnings: list[str] = Field(default_factory=list)


class NewCase(Case):
    """POST /cases: a case and, for a client not yet known, the client."""

    client: Client | None = None


class Need(Plain):
    """A need or problem the plan addresses (FHIR Condition)."""

    id: FhirId | None = None
    # A label the goals of the same request use in `addresses` (not stored).
    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9\-]{1,40}$")] | None = None
    description: Text


class Goal(Plain):
    """A goal set with the client: SMART when each letter has something to stand on."""

    id: FhirId | None = None
    description: Text
    # Measurable: what is measured and the value aimed at.
    measure: Text | None = None
    target: Text | None = None
    # Achievable: why the client and worker think it can be reached.
    achievable_because: Text | None = None
    # Relevant: the needs (Need.key of the same request, or Condition ids) it serves.
    addresses: list[Text] = Field(default_factory=list, max_length=20)
    # Time-bound.
    due: dt.date | None = None
    status: Literal["proposed", "planned", "accepted", "active", "completed", "cancelled"] = (
        "active"
    )
    achievement: (
        Literal["in-progress", "improving", "worsening", "no-change", "achieved", "not-achieved"]
        | None
    ) = None
    # In the client's own words (strengths-based practice).
    expressed_by_client: bool = False


class Responsibility(Plain):
    """Who is involved in an action and what they are responsible for."""

    who: PartyRef
    name: Text | None = None
    responsibility: Text


class Action(Plain):
    """One action of the plan: what, how and where, when, and who does what."""

    what: Text
    how: Text | None = None
    where: Text | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    who: list[Responsibility] = Field(default_factory=list, max_length=20)
    service_type: ServiceType | None = None
    status: Literal[
        "not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled"
    ] = "not-started"
    # Planned sessions (brokerage plans plan one or two).
    sessions: int | None = Field(default=None, ge=0, le=1000)


class Phase(Plain):
    """A phase of a time-limited plan (critical time intervention)."""

    name: Text
    start: dt.date
    end: dt.date


class CarePlan(Plain):
    """The care plan: a contract between worker and client."""

    id: FhirId | None = None
    title: Text
    model: Model | None = None
    status: Literal["draft", "active", "on-hold", "revoked", "completed"] = "active"
    start: dt.date | None = None
    end: dt.date | None = None
    phases: list[Phase] = Field(default_factory=list, max_length=12)
    # When the plan is next reviewed with the client; past it, the review is overdue.
    review_due: dt.date | None = None
    needs: list[Need] = Field(default_factory=list, max_length=50)
    goals: list[Goal] = Field(default_factory=list, max_length=50)
    actions: list[Action] = Field(default_factory=list, max_length=100)
    # The client's strengths, recorded and referenced by the plan.
    strengths: list[Text] = Field(default_factory=list, max_length=50)
    # Informal supports the plan relies on (RelatedPerson ids).
    supports: list[FhirId] = Field(default_factory=list, max_length=50)


class ProgressNote(Plain):
    """A contact summary or case note (FHIR DocumentReference)."""

    id: FhirId | None = None
    date: dt.date
    author: WorkerRef | None = None
    text: Text
    # A contact with the client: how, how long, and whether the client did not attend a
    # planned one (engagement is measured by these). A plain case note has none.
    contact_type: ContactType | None = None
    duration_minutes: int | None = Field(default=None, ge=0, le=1440)
    did_not_attend: bool = False


class Assessment(Plain):
    """A standardised instrument filled in with the client (FHIR QuestionnaireResponse).

    answers: item number (1-based, as printed on the form) -> the score chosen.
    """

    id: FhirId | None = None
    instrument: Instrument
    date: dt.date
    answers: dict[Annotated[int, Field(ge=1, le=20)], Annotated[int, Field(ge=0, le=10)]]
    # Filled in by the server from the Observation it derives.
    total: int | None = None
    zone: str | None = None
    # Risks the answers raise whatever the total (PHQ-9 item 9 above 0: self-harm-risk);
    # each is also an active FHIR Flag on the client.
    flags: list[str] = Field(default_factory=list)


class ComprehensiveAssessment(Plain):
    """The comprehensive assessment of the brief's assessment stage, one domain per field
    (each a FHIR Observation, gathered by a panel Observation). At least one is given."""

    id: FhirId | None = None
    date: dt.date
    assessor: WorkerRef | None = None
    family: Text | None = None
    medical: Text | None = None
    socio_economic: Text | None = None
    cultural: Text | None = None
    living_situation: LivingSituation | None = None
    living_situation_note: Text | None = None

    @model_validator(mode="after")
    def _some_domain(self) -> ComprehensiveAssessment:
        if not any(getattr(self, name) for name in ASSESSMENT_DOMAINS.values()):
            raise ValueError(
                "a comprehensive assessment records at least one domain: "
                + ", ".join(ASSESSMENT_DOMAINS.values())
            )
        if self.living_situation_note and not self.living_situation:
            raise ValueError("living_situation_note describes a living_situation: give both")
        return self


# The domains of a comprehensive assessment: CodeSystem assessment-domain code -> field.
ASSESSMENT_DOMAINS: dict[str, str] = {
    "family": "family",
    "medical": "medical",
    "socio-economic": "socio_economic",
    "cultural": "cultural",
    "living-situation": "living_situation",
}


class Referral(Plain):
    """A request to another agency to provide a service (FHIR ServiceRequest + Task)."""

    id: FhirId | None = None
    client_id: FhirId
    from_agency: AgencyRef
    to_agency: AgencyRef
    service_type: ServiceType
    reason: Text
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    requested: dt.date
    # The Consent that allows the disclosure (required when the referral is sensitive).
    consent_id: FhirId | None = None
    # The referring agency's care plan this referral serves: the plan and its goals go
    # with the referral (ServiceRequest.basedOn, supportingInfo), and the plan gains an
    # action that is the referral, so completing it records the goals' achievement.
    care_plan_id: FhirId | None = None
    # Carries AOD / substance-use information (labelled with a security label).
    sensitive: bool = False
    note: Text | None = None


class Consent(Plain):
    """The client's consent to disclose records to an agency (FHIR Consent)."""

    id: FhirId | None = None
    client_id: FhirId
    status: Literal["draft", "proposed", "active", "rejected", "inactive"] = "active"
    recipient: AgencyRef
    purpose: Text
    # What the disclosure is for (Consent.provision.purpose): labelled (sensitive) records
    # are released only for care: coordination, management or treatment. None: no purpose
    # stated (a FHIR Consent written without one), which releases no labelled records.
    use: ConsentUse | None = "care-coordination"
    start: dt.date | None = None
    end: dt.date | None = None
    # Covers substance-use (sensitive) records.
    covers_sensitive: bool = False


class Transfer(Plain):
    """POST /cases/{id}/transfer: the case passes to another worker of the agency, with a
    handover note kept in the case's notes."""

    to: WorkerRef
    name: Text | None = None
    note: Text
    # The worker handing over (the note's author); the current care manager when left out.
    by: WorkerRef | None = None
    date: dt.date | None = None


class Overdue(Plain):
    """What is late in a case (each list holds FHIR references)."""

    # Referrals not accepted or not started in time (as GET /referrals?overdue=true).
    referrals: list[str] = Field(default_factory=list)
    # Care plans whose review date has passed.
    reviews: list[str] = Field(default_factory=list)
    # Goals still being worked on whose due date has passed.
    goals: list[str] = Field(default_factory=list)


class CaseSummary(Plain):
    """One line of a caseload (GET /cases)."""

    id: FhirId
    client_id: FhirId | None = None
    client_name: str | None = None
    status: CaseStatus
    stage: Stage
    model: Model | None = None
    managing_agency: AgencyRef | None = None
    care_manager: WorkerRef | None = None
    start: dt.date | None = None
    # The latest contact with the client the notes record (a did-not-attend is no contact).
    last_contact: dt.date | None = None
    overdue: Overdue = Field(default_factory=Overdue)


class Caseload(Plain):
    """GET /cases: one page of cases, the filters applied and the total."""

    total: int
    page: int
    count: int
    cases: list[CaseSummary]
    next: str | None = None


# The models published as JSON Schema at /schemas/{name}.json.
PUBLISHED: dict[str, type[BaseModel]] = {
    "client": Client,
    "support": Support,
    "case": Case,
    "new-case": NewCase,
    "need": Need,
    "goal": Goal,
    "action": Action,
    "care-plan": CarePlan,
    "progress-note": ProgressNote,
    "assessment": Assessment,
    "comprehensive-assessment": ComprehensiveAssessment,
    "referral": Referral,
    "consent": Consent,
    "transfer": Transfer,
    "case-summary": CaseSummary,
    "caseload": Caseload,
}

__all__ = [
    "PUBLISHED",
    "Action",
    "Assessment",
    "CarePlan",
    "Case",
    "CaseSummary",
    "Caseload",
    "Client",
    "ComprehensiveAssessment",
    "Consent",
    "Goal",
    "Need",
    "NewCase",
    "Overdue",
    "Phase",
    "ProgressNote",
    "Referral",
    "Responsibility",
    "Support",
    "TeamMember",
    "Transfer",
]
