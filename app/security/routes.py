"""What each HTTP route touches: one table of the interactions (SMART ``cruds`` letters) and
resource types behind every route the server offers (docs/threat-model.md, "Every route
declares what it needs").

The API checks a request's token against its route's entry before the handler runs
(app/api/deps.py, ``get_caller``); a route that has no entry is refused, and a test fails
for it, so a new endpoint cannot ship unchecked. Which records an agency may touch is a
second, separate question (tenancy, referral shares, consent): the services answer it.

A type is written literally, or as one of:
  PATH_TYPE   the type named in the path ({resource_type})
  NAMED       the types a request names in _type (every type when it names none); the
              handler checks them once it has read them (a form body may carry _type)
Routes whose parts each need their own scopes (batch and transaction entries, a referral
package) declare what every request needs at least, and the service checks each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

PATH_TYPE: Final = "{resource_type}"
NAMED: Final = "_type"


@dataclass(frozen=True, slots=True)
class Needs:
    """What one route touches: (type, letters of cruds) pairs; public routes need no
    caller at all (health, metadata, the token endpoint)."""

    touches: tuple[tuple[str, str], ...] = ()
    public: bool = False
    # Where finer checks happen, for the reader of the table.
    refined_by: str = ""


PUBLIC: Final = Needs(public=True)


def needs(*pairs: str, refined_by: str = "") -> Needs:
    """Needs from "Type.letters" words: needs("Patient.r", "Observation.s")."""
    touches = []
    for pair in pairs:
        resource_type, _, letters = pair.rpartition(".")
        touches.append((resource_type, letters))
    return Needs(tuple(touches), refined_by=refined_by)


_CASE = ("EpisodeOfCare.r", "Patient.r")
# A plain care plan holds its goals, the needs they address (Condition) and the strengths
# it builds on (Observation).
_PLAN = ("CarePlan.r", "Goal.r", "Condition.r", "Observation.r")
_PLANS = ("CarePlan.s", "Goal.s", "Condition.s", "Observation.s")
# The client's network (ecomap, genogram): supports, informal systems, family, services and
# the care team, with the names of the agencies and workers in it.
_NETWORK = (
    "RelatedPerson.s",
    "Group.s",
    "Organization.r",
    "Practitioner.r",
    "FamilyMemberHistory.s",
    "ServiceRequest.s",
    "Task.s",
    "CareTeam.r",
)
# Routes that answer 405 to whoever asks (a caller is still needed).
_REFUSED = needs(refined_by="refused to every caller (405)")
_FHIR = "/fhir"
_ONE = f"{_FHIR}/{{resource_type}}/{{resource_id}}"

ROUTES: Final[Mapping[tuple[str, str], Needs]] = {
    # -- public: health, conformance, the token endpoint, published schemas --------------
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/auth/token"): PUBLIC,
    # The caller presents the token to introspect as its own credential (RFC 7662).
    ("POST", "/auth/introspect"): PUBLIC,
    ("GET", "/auth/jwks"): PUBLIC,
    ("GET", "/.well-known/smart-configuration"): PUBLIC,
    ("GET", "/fhir/.well-known/smart-configuration"): PUBLIC,
    ("GET", "/fhir/metadata"): PUBLIC,
    ("GET", "/fhir/$versions"): PUBLIC,
    ("GET", "/schemas"): PUBLIC,
    ("GET", "/schemas/{name}.json"): PUBLIC,
    # -- FHIR RESTful interactions (spec http.html) ---------------------------------------
    ("GET", _FHIR): needs(f"{NAMED}.s"),
    ("GET", f"{_FHIR}/"): needs(f"{NAMED}.s"),
    ("POST", f"{_FHIR}/_search"): needs(f"{NAMED}.s"),
    ("GET", f"{_FHIR}/_history"): needs("*.s"),
    ("POST", _FHIR): needs(refined_by="each entry's interaction (app/services/usecases/bundle.py)"),
    ("POST", f"{_FHIR}/"): needs(
        refined_by="each entry's interaction (app/services/usecases/bundle.py)"
    ),
    ("GET", f"{_FHIR}/{{resource_type}}"): needs(f"{PATH_TYPE}.s"),
    ("POST", f"{_FHIR}/{{resource_type}}/_search"): needs(f"{PATH_TYPE}.s"),
    ("POST", f"{_FHIR}/{{resource_type}}"): needs(
        f"{PATH_TYPE}.c", refined_by="If-None-Exist also searches"
    ),
    ("PUT", f"{_FHIR}/{{resource_type}}"): needs(f"{PATH_TYPE}.us"),
    ("DELETE", f"{_FHIR}/{{resource_type}}"): needs(f"{PATH_TYPE}.ds"),
    ("GET", f"{_FHIR}/{{resource_type}}/_history"): needs(f"{PATH_TYPE}.s"),
    ("GET", _ONE): needs(f"{PATH_TYPE}.r"),
    ("PUT", _ONE): needs(f"{PATH_TYPE}.u"),
    ("PATCH", _ONE): needs(f"{PATH_TYPE}.u"),
    ("DELETE", _ONE): needs(f"{PATH_TYPE}.d"),
    ("GET", f"{_ONE}/_history"): needs(f"{PATH_TYPE}.r"),
    ("GET", f"{_ONE}/_history/{{version_id}}"): needs(f"{PATH_TYPE}.r"),
    # -- operations -----------------------------------------------------------------------
    ("GET", "/fhir/Patient/{patient_id}/$everything"): needs("Patient.r", f"{NAMED}.s"),
    ("GET", "/fhir/CarePlan/{care_plan_id}/$everything"): needs("CarePlan.r", f"{NAMED}.s"),
    ("GET", "/fhir/Patient/{patient_id}/$disclosures"): needs("Patient.r", "AuditEvent.s"),
    ("GET", "/fhir/CarePlan/{care_plan_id}/$check"): needs("CarePlan.r", "Goal.s"),
    ("GET", "/fhir/Subscription/{subscription_id}/$status"): needs("Subscription.r"),
    # The topics the server ships are conformance data, public like the metadata.
    ("GET", "/fhir/SubscriptionTopic"): PUBLIC,
    ("GET", "/fhir/SubscriptionTopic/{topic_id}"): PUBLIC,
    # Bulk Data Access: rs on each exported type; the job's and its files' routes are the
    # requesting client's own (app/services/jobs/export.py checks it).
    ("GET", "/fhir/$export"): needs(f"{NAMED}.rs"),
    ("POST", "/fhir/$export"): _REFUSED,
    ("GET", "/fhir/Patient/$export"): needs(f"{NAMED}.rs"),
    ("POST", "/fhir/Patient/$export"): _REFUSED,
    ("GET", "/fhir/$export-status/{job_id}"): needs(refined_by="the job's own client"),
    ("DELETE", "/fhir/$export-status/{job_id}"): needs(refined_by="the job's own client"),
    ("GET", "/fhir/$export-file/{job_id}/{name}"): needs(refined_by="the job's own client"),
    # -- the audit log: read-only ----------------------------------------------------------
    ("GET", "/fhir/AuditEvent"): needs("AuditEvent.s"),
    ("POST", "/fhir/AuditEvent/_search"): needs("AuditEvent.s"),
    ("GET", "/fhir/AuditEvent/{event_id}"): needs("AuditEvent.r"),
    ("POST", "/fhir/AuditEvent"): _REFUSED,
    ("PUT", "/fhir/AuditEvent"): _REFUSED,
    ("DELETE", "/fhir/AuditEvent"): _REFUSED,
    ("PUT", "/fhir/AuditEvent/{event_id}"): _REFUSED,
    ("PATCH", "/fhir/AuditEvent/{event_id}"): _REFUSED,
    ("DELETE", "/fhir/AuditEvent/{event_id}"): _REFUSED,
    # -- referrals (issue 5) ----------------------------------------------------------------
    ("POST", "/referrals"): needs(
        "Task.c", "ServiceRequest.c", refined_by="each entry of the package (bundle entries)"
    ),
    ("GET", "/referrals"): needs("Task.s"),
    ("GET", "/referrals/{task_id}"): needs(
        "Task.r", refined_by="the packet holds only the types the token may read"
    ),
    ("GET", "/referrals/{task_id}/history"): needs("Task.r"),
    ("POST", "/referrals/{task_id}/{action}"): needs(
        "Task.u", refined_by="complete also creates (c) its outcome records and updates Goals"
    ),
    ("POST", "/fhir/Task/{task_id}/${action}"): needs(
        "Task.u", refined_by="complete also creates (c) its outcome records and updates Goals"
    ),
    # -- plain case management (issue 7); writes are transaction entries, checked each -----
    ("POST", "/cases"): needs("EpisodeOfCare.c", "Patient.c", refined_by="bundle entries"),
    ("GET", "/cases"): needs(
        "EpisodeOfCare.s",
        "Patient.r",
        "CarePlan.s",
        "Goal.s",
        "Task.s",
        "DocumentReference.s",
    ),
    ("POST", "/cases/{case_id}/transfer"): needs(
        *_CASE, "EpisodeOfCare.u", "DocumentReference.c", refined_by="bundle entries"
    ),
    ("GET", "/cases/{case_id}"): needs(*_CASE, "CareTeam.r", "Flag.s"),
    ("PUT", "/cases/{case_id}"): needs(*_CASE, "EpisodeOfCare.u", refined_by="bundle entries"),
    ("GET", "/cases/{case_id}/client"): needs(*_CASE, "Patient.r"),
    ("PUT", "/cases/{case_id}/client"): needs(*_CASE, "Patient.u", refined_by="bundle entries"),
    ("POST", "/cases/{case_id}/comprehensive-assessments"): needs(
        *_CASE, "Observation.c", refined_by="bundle entries"
    ),
    ("GET", "/cases/{case_id}/comprehensive-assessments"): needs(*_CASE, "Observation.s"),
    # A support is a RelatedPerson, an informal system a Group.
    ("POST", "/cases/{case_id}/supports"): needs(*_CASE, "RelatedPerson.c", "Group.c"),
    ("GET", "/cases/{case_id}/supports"): needs(*_CASE, "RelatedPerson.s", "Group.s"),
    ("POST", "/cases/{case_id}/consents"): needs(*_CASE, "Consent.c"),
    ("GET", "/cases/{case_id}/consents"): needs(*_CASE, "Consent.s"),
    ("POST", "/cases/{case_id}/careplans"): needs(
        *_CASE, *_PLAN, "CarePlan.c", refined_by="bundle entries"
    ),
    ("GET", "/cases/{case_id}/careplans"): needs(*_CASE, *_PLANS),
    ("GET", "/cases/{case_id}/careplans/{plan_id}"): needs(*_CASE, *_PLAN),
    ("PUT", "/cases/{case_id}/careplans/{plan_id}"): needs(
        *_CASE, *_PLAN, "CarePlan.u", refined_by="bundle entries"
    ),
    ("POST", "/cases/{case_id}/notes"): needs(*_CASE, "DocumentReference.c"),
    ("GET", "/cases/{case_id}/notes"): needs(*_CASE, "DocumentReference.s"),
    ("POST", "/cases/{case_id}/assessments"): needs(
        *_CASE, "QuestionnaireResponse.c", "Observation.r", refined_by="bundle entries"
    ),
    ("GET", "/cases/{case_id}/assessments"): needs(
        *_CASE, "QuestionnaireResponse.s", "Observation.s"
    ),
    ("GET", "/cases/{case_id}/check"): needs(*_CASE, *_PLANS, "ServiceRequest.s", "Consent.s"),
    ("GET", "/cases/{case_id}/outcomes"): needs(*_CASE, "Observation.s", "QuestionnaireResponse.s"),
    ("GET", "/cases/{case_id}/outcomes.svg"): needs(
        *_CASE, "Observation.s", "QuestionnaireResponse.s"
    ),
    ("GET", "/cases/{case_id}/ecomap.svg"): needs(*_CASE, *_NETWORK),
    ("GET", "/cases/{case_id}/genogram.svg"): needs(*_CASE, *_NETWORK),
    ("GET", "/reports/caseload"): needs("EpisodeOfCare.s", "Task.s", "Goal.s"),
    # -- the web app (issue 20): a signed-in person, with the agency's access rules --------
    ("GET", "/"): PUBLIC,
    ("GET", "/app/"): PUBLIC,
    ("GET", "/app/sign-in"): PUBLIC,
    ("POST", "/app/sign-in"): PUBLIC,
    # The second factor: the half-open session of the cookie, checked by the page itself.
    ("GET", "/app/sign-in/code"): PUBLIC,
    ("POST", "/app/sign-in/code"): PUBLIC,
    ("POST", "/app/sign-out"): needs(),
    ("GET", "/app/referrals"): needs("Task.s", "ServiceRequest.r", "Patient.r"),
    ("GET", "/app/referrals/boxes"): needs("Task.s", "ServiceRequest.r", "Patient.r"),
    ("GET", "/app/events"): needs("Task.s"),
    ("GET", "/app/referrals/new"): needs(
        "EpisodeOfCare.s", "Consent.s", "Organization.s", "HealthcareService.s"
    ),
    ("POST", "/app/referrals/new"): needs(
        "Task.c", "ServiceRequest.c", "Consent.c", refined_by="bundle entries"
    ),
    ("GET", "/app/referrals/{task_id}"): needs(
        "Task.r", refined_by="the packet holds only the types the agency may read"
    ),
    ("GET", "/app/referrals/{task_id}/documents/{document_id}/{index}"): needs(
        "Task.r", "DocumentReference.r", refined_by="only a document the packet holds"
    ),
    ("POST", "/app/referrals/{task_id}/case"): needs(
        "Task.r", "EpisodeOfCare.c", refined_by="bundle entries"
    ),
    ("POST", "/app/referrals/{task_id}/{action}"): needs(
        "Task.u", refined_by="complete also creates (c) its outcome records and updates Goals"
    ),
    ("GET", "/app/services"): needs("HealthcareService.s", "Location.r", "Organization.r"),
    ("POST", "/app/services"): needs(
        "HealthcareService.c", "Location.c", refined_by="bundle entries"
    ),
    ("POST", "/app/services/{service_id}/capacity"): needs("HealthcareService.u"),
    ("GET", "/app/cases"): needs("EpisodeOfCare.s", "Patient.r"),
    ("GET", "/app/cases/new"): needs(),
    ("POST", "/app/cases/new"): needs("EpisodeOfCare.c", "Patient.c", refined_by="bundle entries"),
    ("GET", "/app/cases/{case_id}"): needs(*_CASE, *_PLANS, "DocumentReference.s"),
    ("POST", "/app/cases/{case_id}/stage"): needs(*_CASE, "EpisodeOfCare.u"),
    ("GET", "/app/cases/{case_id}/plans/new"): needs(*_CASE, "CareTeam.r"),
    ("POST", "/app/cases/{case_id}/plans/check"): needs(
        *_CASE, "CareTeam.r", "EpisodeOfCare.s", "ServiceRequest.s", "Consent.s"
    ),
    ("POST", "/app/cases/{case_id}/plans"): needs(
        *_CASE, *_PLAN, "CarePlan.c", refined_by="bundle entries"
    ),
    ("GET", "/app/cases/{case_id}/plans/{plan_id}/edit"): needs(*_CASE, *_PLAN, "CareTeam.r"),
    ("POST", "/app/cases/{case_id}/plans/{plan_id}"): needs(
        *_CASE, *_PLAN, "CarePlan.u", refined_by="bundle entries"
    ),
    ("POST", "/app/cases/{case_id}/notes"): needs(*_CASE, "DocumentReference.c"),
    ("POST", "/app/cases/{case_id}/supports"): needs(*_CASE, "RelatedPerson.c", "Group.c"),
    ("POST", "/app/cases/{case_id}/assessments"): needs(
        *_CASE, "QuestionnaireResponse.c", "Observation.r", refined_by="bundle entries"
    ),
    ("GET", "/app/cases/{case_id}/pictures/{name}.svg"): needs(*_CASE, *_NETWORK),
    ("GET", "/app/reports/caseload"): needs("EpisodeOfCare.s", "Task.s", "Goal.s"),
}


def route_needs(method: str, path: str) -> Needs | None:
    """The entry of one route (method, path template), None when it has none."""
    return ROUTES.get((method, path))


__all__ = ["NAMED", "PATH_TYPE", "PUBLIC", "ROUTES", "Needs", "needs", "route_needs"]
