"""Operation routes (spec operations.html): parse, call one service, render.

GET only: these operations change nothing, so the spec allows invoking them with GET and
their parameters in the query string (operations.html#request). POST with a Parameters body
is not served (405).

Scopes: $everything reads the focal resource (r on Patient or CarePlan) and lists every
type it serves, which is a search of each (s on each type named by _type; without _type it
serves every type, so a system/*.s scope is needed). A client with narrower scopes names
the types it may search in _type. Nothing is left out silently.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import CallerDep, ServicesDep, negotiate, require_named
from app.api.render import (
    fhir_response,
    notice_headers,
    notice_issues,
    page_links,
    query_pairs,
    release_labels,
)
from app.fhir.bundles import searchset_bundle
from app.fhir.disclosures import disclosures_bundle
from app.fhir.errors import Issue, operation_outcome
from app.security.scopes import named_types
from app.services.usecases.everything import EverythingPage

router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)])


@router.get("/Patient/{patient_id}/$everything")
def patient_everything(
    request: Request, patient_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """Patient $everything (spec patient-operation-everything.html)."""
    params = query_pairs(request)
    require_named(caller, request, named_types(params))
    page = services.everything.patient(caller=caller, patient_id=patient_id, params=params)
    return _render(services, f"/Patient/{patient_id}/$everything", page)


@router.get("/CarePlan/{care_plan_id}/$everything")
def care_plan_everything(
    request: Request, care_plan_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """CarePlan $everything: the care plan package (app/services/usecases/everything.py)."""
    params = query_pairs(request)
    require_named(caller, request, named_types(params))
    page = services.everything.care_plan(caller=caller, care_plan_id=care_plan_id, params=params)
    return _render(services, f"/CarePlan/{care_plan_id}/$everything", page)


@router.get("/Patient/{patient_id}/$disclosures")
def patient_disclosures(
    request: Request, patient_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """Patient $disclosures (this server's operation): every release of the client's
    records to an agency other than their owner, with the consent in force, as AuditEvents
    (docs/threat-model.md)."""
    page = services.disclosures.report(caller, patient_id, query_pairs(request))
    base = services.settings.base_url
    links = page_links(f"{base}/Patient/{patient_id}/$disclosures", page.applied, page.next_cursor)
    return fhir_response(disclosures_bundle(page.rows, base_url=base, links=links))


def _render(services: ServicesDep, path: str, page: EverythingPage) -> Response:
    """A searchset Bundle (spec search.html#return): members, included, then any warnings."""
    base = services.settings.base_url
    links = page_links(f"{base}{path}", page.applied, page.next_cursor)
    issues = [Issue("informational", n, "warning") for n in page.notes]
    issues += notice_issues(page.release)
    return fhir_response(
        searchset_bundle(
            page.matches,
            base_url=base,
            links=links,
            total=page.total,
            outcome=operation_outcome(issues) if issues else None,
            included=page.included,
            security=release_labels(page.release),
        ),
        headers=notice_headers(page.release),
    )
