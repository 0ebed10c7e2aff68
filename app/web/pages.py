"""The web app's pages for signing in and for referrals: the inbox and outbox, a referral's
packet and its actions, making a referral, and the event stream that keeps the boxes fresh.

Each page calls the same services as the API (no second copy of a rule) as the signed-in
person, with their agency's access rules; a record the agency may not see is a page that
says "not found", exactly as for a record that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

import orjson
import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServicesDep
from app.fhir.errors import FHIRError, Forbidden, InvalidRequest, NotFound
from app.fhir.referral import ACTIONS, parse_action_json
from app.services.auth.people import Pending, Person
from app.services.container import Services
from app.services.usecases.caseload import CaseFilters
from app.web.names import Names, names_for
from app.web.render import PAGE_HEADERS, go, page
from app.web.session import (
    PersonDep,
    check_origin,
    cookie_name,
    current_person,
    safe_next,
    secure_cookies,
)
from app.web.views import (
    SERVICE_TYPES,
    body,
    order_lines,
    packet_view,
    person_name,
    referral_line,
    text_of,
)
from schemas.casework import Consent, NewCase, TeamMember

router = APIRouter()
FormText = Annotated[str, Form()]
FormOptional = Annotated[str | None, Form()]


def _names(services: Services, person: Person) -> Names:
    return names_for(services, person.caller())


# -- signing in -----------------------------------------------------------------------------
@router.get("/")
def root() -> RedirectResponse:
    """The web app lives under /app."""
    return RedirectResponse("/app/", status_code=303)


@router.get("/app/")
async def home(request: Request) -> Response:
    """The inbox for a signed-in person, else the sign-in page."""
    person = await current_person(request)
    return go("/app/referrals" if person else "/app/sign-in")


@router.get("/app/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return page(request, "sign_in.html", None, next=safe_next(next), error=None)


@router.post("/app/sign-in")
def sign_in(
    request: Request,
    services: ServicesDep,
    email: FormText,
    password: FormText,
    next: FormOptional = None,
) -> Response:
    """Check the password; a session cookie and on to the page asked for, or the form again
    with one message for every failure (no hint whether the address has an account)."""
    check_origin(request)
    target = safe_next(next)
    try:
        signed = services.people.sign_in(email=email, password=password)
    except FHIRError as exc:
        return page(request, "sign_in.html", None, status=401, next=target, error=exc.diagnostics)
    # With a second factor to give, the session opens only the code page.
    response = go(target if signed.stage == "full" else sign_in_code_path(target))
    settings = services.settings
    response.set_cookie(
        cookie_name(settings),
        signed.token,
        max_age=settings.web_session_max_hours * 3600,
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )
    return response


def sign_in_code_path(target: str) -> str:
    """The second-factor page, going on to target afterwards."""
    return f"/app/sign-in/code?next={quote(target, safe='/')}"


def _code_page(
    request: Request, pending: Pending, target: str, error: str | None, status: int
) -> Response:
    uri = pending.enrol_uri()
    qr = segno.make(uri, error="m").svg_inline(scale=4, title="QR code") if uri else None
    return page(
        request,
        "sign_in_code.html",
        None,
        status=status,
        pending=pending,
        next=target,
        qr=qr,
        error=error,
        code_csrf=pending.csrf,
    )


@router.get("/app/sign-in/code")
def sign_in_code_page(
    request: Request,
    services: ServicesDep,
    next: str | None = None,
) -> Response:
    """The second factor: the code from the person's authenticator app (and, the first
    time, the secret to add to it, as a QR code and as text)."""
    token = request.cookies.get(cookie_name(services.settings), "")
    pending = services.people.pending(token)
    if pending is None:
        return go("/app/sign-in")
    return _code_page(request, pending, safe_next(next), None, 200)


@router.post("/app/sign-in/code")
def sign_in_code(
    request: Request,
    services: ServicesDep,
    code: FormText,
    csrf: FormOptional = None,
    next: FormOptional = None,
) -> Response:
    """Check the code: the session is signed in, or the page again (wrong codes count
    towards the lockout)."""
    check_origin(request)
    token = request.cookies.get(cookie_name(services.settings), "")
    pending = services.people.pending(token)
    if pending is None:
        return go("/app/sign-in")
    if csrf is None or not hmac.compare_digest(csrf, pending.csrf):
        raise Forbidden("The form has expired or did not come from this site: reload the page")
    target = safe_next(next)
    try:
        services.people.second_factor(token, code)
    except FHIRError as exc:
        return _code_page(request, pending, target, exc.diagnostics, exc.status)
    return go(target)


@router.post("/app/sign-out")
def sign_out(services: ServicesDep, person: PersonDep, everywhere: FormOptional = None) -> Response:
    """End this session (or, with everywhere, every session of the person)."""
    services.people.sign_out(person, everywhere=everywhere == "yes")
    response = go("/app/sign-in")
    response.delete_cookie(cookie_name(services.settings), path="/")
    return response


# -- referrals ------------------------------------------------------------------------------
def _box(services: Services, person: Person, box: str) -> list[Any]:
    page_ = services.referrals.listing(
        caller=person.caller(), params=[("box", box), ("_count", "100")]
    )
    names = _names(services, person)
    wanted = {v.task["id"]: _request_id(v.task) for v in page_.views}
    services_of = _services_asked(services, person, {r for r in wanted.values() if r})
    return order_lines(
        referral_line(v, names, services_of.get(wanted[v.task["id"]] or "")) for v in page_.views
    )


def _request_id(task: dict[str, Any]) -> str | None:
    focus = (task.get("focus") or {}).get("reference")
    if not isinstance(focus, str) or not focus.startswith("ServiceRequest/"):
        return None
    return focus.split("/")[1]


def _services_asked(services: Services, person: Person, request_ids: set[str]) -> dict[str, str]:
    """The service each referral asks for (its ServiceRequest's code), by request id: one
    search for the whole box, not a read per line."""
    if not request_ids:
        return {}
    found = services.search.search(
        caller=person.caller(),
        resource_type="ServiceRequest",
        params=[("_id", ",".join(sorted(request_ids))), ("_count", str(len(request_ids)))],
        strict=True,
    )
    asked = {v.id: text_of(body(v).get("code")) for v in found.matches}
    return {k: v for k, v in asked.items() if v}


def _boxes(request: Request, services: Services, person: Person, template: str) -> Response:
    inbox, outbox = _box(services, person, "inbox"), _box(services, person, "outbox")
    return page(request, template, person, inbox=inbox, outbox=outbox)


@router.get("/app/referrals")
def referrals(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """The referral inbox and outbox: overdue first, then new, then open."""
    return _boxes(request, services, person, "referrals.html")


@router.get("/app/referrals/boxes")
def referral_boxes(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """The two boxes alone: what the page swaps in when the event stream says so."""
    return _boxes(request, services, person, "referral_boxes.html")


@router.get("/app/events")
async def events(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """Server-sent events: "referrals" whenever a referral the agency may see changes (the
    boxes reload without the page). A stream lasts at most a few minutes; the browser
    reconnects (EventSource retry) and the session is checked again."""
    caller = person.caller()
    poll = services.settings.web_events_poll_s
    token = request.cookies.get(cookie_name(services.settings), "")

    async def stream() -> AsyncIterator[bytes]:
        since = services.clock.now()
        yield b"retry: 2000\n\n"
        waited = 0.0
        while waited < 300:
            await asyncio.sleep(poll)
            waited += poll
            if await request.is_disconnected():
                return
            now = services.clock.now()
            changed = await run_in_threadpool(
                services.referrals.changed_since, caller=caller, since=since
            )
            if changed:
                since = now
                yield b"event: referrals\ndata: changed\n\n"
            if (
                int(waited) % 30 == 0
                and await run_in_threadpool(services.people.session, token) is None
            ):
                return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**PAGE_HEADERS, "X-Accel-Buffering": "no"},
    )


@router.get("/app/referrals/new")
def new_referral(
    request: Request,
    services: ServicesDep,
    person: PersonDep,
    case: str | None = None,
    find_type: str | None = None,
    place: str | None = None,
) -> Response:
    """The referral form: the client's case, a service found in the directory (by type and
    place) or an agency, why, and the consent that lets the records go."""
    values = {"find_type": find_type or "", "place": place or ""}
    return _referral_form(request, services, person, case, values, None, 200)


def _referral_form(
    request: Request,
    services: Services,
    person: Person,
    case_id: str | None,
    values: dict[str, Any],
    error: str | None,
    status: int,
) -> Response:
    caller = person.caller()
    cases = services.caseload.list_cases(caller=caller, filters=_all_open()).cases
    agencies = _agencies(services, person)
    try:
        found = services.directory.find(
            caller=caller,
            service_type=values.get("find_type") or None,
            place=values.get("place") or None,
        )
    except FHIRError:
        found = []
    found = [f for f in found if f.agency != person.user.agency]
    consents: list[Any] = []
    plans: list[Any] = []
    if case_id:
        try:
            consents = [
                c
                for c in services.cases.consents(caller=caller, case_id=case_id).value
                if c.status == "active"
            ]
            plans = services.cases.care_plans(caller=caller, case_id=case_id).value
        except NotFound:
            case_id = None
    return page(
        request,
        "referral_new.html",
        person,
        status=status,
        cases=cases,
        case_id=case_id,
        agencies=agencies,
        found=found,
        service_types=SERVICE_TYPES,
        consents=consents,
        plans=plans,
        values=values,
        error=error,
        today=services.clock.now().date().isoformat(),
    )


def _all_open() -> CaseFilters:
    """The agency's open cases, to choose the client a referral is for."""
    return CaseFilters(count=200)


def _agencies(services: Services, person: Person) -> list[tuple[str, str]]:
    """The directory: every agency but the person's own, by name."""
    page_ = services.search.search(
        caller=person.caller(),
        resource_type="Organization",
        params=[("_count", "500"), ("_sort", "name")],
        strict=True,
    )
    found = []
    for version in page_.matches:
        org = body(version)
        reference = f"Organization/{org['id']}"
        if reference != person.user.agency:
            found.append((reference, person_name(org) or reference))
    return found


@router.post("/app/referrals/new")
def make_referral(
    request: Request,
    services: ServicesDep,
    person: PersonDep,
    case: FormText,
    reason: FormText,
    to_agency: FormOptional = None,
    service_type: FormOptional = None,
    service: FormOptional = None,
    priority: FormOptional = "routine",
    care_plan: FormOptional = None,
    consent: FormOptional = None,
    consent_now: FormOptional = None,
    consent_purpose: FormOptional = None,
    sensitive: FormOptional = None,
) -> Response:
    """Send the referral: the consent captured now (when the worker records it with the
    client) and the referral, which the server refuses when the records could not go."""
    caller = person.caller()
    if service:
        # A service chosen in the directory names the agency and the service type.
        chosen = next((f for f in services.directory.find(caller=caller) if f.id == service), None)
        if chosen is not None:
            to_agency, service_type = chosen.agency, chosen.service_type or service_type
    values = {
        "to_agency": to_agency,
        "service_type": service_type,
        "reason": reason,
        "priority": priority,
        "care_plan": care_plan,
        "consent": consent,
        "consent_purpose": consent_purpose,
        "sensitive": sensitive,
    }
    try:
        if not to_agency or not service_type:
            raise InvalidRequest("Choose a service from the directory, or an agency and a service")
        stored_case = services.cases.read_case(caller=caller, case_id=case)
        client_id = stored_case.value.client_id
        consent_id = consent or None
        if consent_now == "yes":
            made = services.cases.add_consent(
                caller=caller,
                case_id=case,
                consent=Consent(
                    client_id=client_id,
                    recipient=to_agency,
                    purpose=(consent_purpose or "Referral").strip() or "Referral",
                    start=services.clock.now().date(),
                    covers_sensitive=sensitive == "yes",
                ),
            )
            consent_id = made.value.id
        referral: dict[str, Any] = {
            "client_id": client_id,
            "from_agency": person.user.agency,
            "to_agency": to_agency,
            "service_type": service_type,
            "reason": reason,
            "priority": priority or "routine",
            "requested": services.clock.now().date().isoformat(),
            "sensitive": sensitive == "yes",
        }
        if consent_id:
            referral["consent_id"] = consent_id
        if care_plan:
            referral["care_plan_id"] = care_plan
        view = services.referrals.submit(caller=caller, body=orjson.dumps(referral))
    except FHIRError as exc:
        return _referral_form(request, services, person, case, values, exc.diagnostics, exc.status)
    return go(f"/app/referrals/{view.task['id']}")


# -- the agency's services (the directory) -------------------------------------------------
def _services_page(
    request: Request, services: Services, person: Person, error: str | None, status: int
) -> Response:
    own = services.directory.find(caller=person.caller(), agency=person.user.agency)
    return page(
        request,
        "services.html",
        person,
        status=status,
        own=own,
        service_types=SERVICE_TYPES,
        error=error,
    )


@router.get("/app/services")
def our_services(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """The agency's services in the directory and their capacity switch."""
    return _services_page(request, services, person, None, 200)


@router.post("/app/services")
def add_service(
    request: Request,
    services: ServicesDep,
    person: PersonDep,
    name: FormText,
    service_type: FormText,
    city: FormText,
    postcode: FormOptional = None,
) -> Response:
    """A service of the agency, at a place, in the directory."""
    try:
        services.directory.add(
            caller=person.caller(),
            name=name,
            service_type=service_type,
            city=city,
            postcode=postcode,
        )
    except FHIRError as exc:
        return _services_page(request, services, person, exc.diagnostics, exc.status)
    return go("/app/services")


@router.post("/app/services/{service_id}/capacity")
def capacity(
    request: Request,
    service_id: str,
    services: ServicesDep,
    person: PersonDep,
    taking: FormText,
    version: FormOptional = None,
) -> Response:
    """The capacity switch: taking new referrals, or not."""
    try:
        services.directory.set_accepting(
            caller=person.caller(),
            service_id=service_id,
            taking=taking == "yes",
            if_match=int(version) if version and version.isdigit() else None,
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="service")
    except FHIRError as exc:
        return _services_page(request, services, person, exc.diagnostics, exc.status)
    return go("/app/services")


@router.get("/app/referrals/{task_id}")
def referral(request: Request, task_id: str, services: ServicesDep, person: PersonDep) -> Response:
    """A referral's packet as a readable summary, its history and what may be done next."""
    return _referral_page(request, services, person, task_id, None, 200)


def _referral_page(
    request: Request,
    services: Services,
    person: Person,
    task_id: str,
    error: str | None,
    status: int,
) -> Response:
    caller = person.caller()
    try:
        packet = services.referrals.read(caller=caller, task_id=task_id)
        _view, changes = services.referrals.history(caller=caller, task_id=task_id)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="referral")
    names = _names(services, person)
    resources = [body(v) for v in packet.resources if v.body is not None]
    notice = packet.release.regime.notice if packet.release.sensitive else None
    shown = packet_view(packet.view, resources, names, notice)
    return page(
        request,
        "referral.html",
        person,
        status=status,
        p=shown,
        changes=[(c, names(c.agency)) for c in changes],
        error=error,
        etag=packet.view.version.version_id,
    )


# Attachments shown in the browser as what they are; anything else is downloaded. A PDF,
# plain text and the common image types cannot run script in this origin (the sandbox
# below also stops what a browser might still render).
_SHOWN_TYPES = frozenset({"application/pdf", "text/plain", "image/png", "image/jpeg", "image/gif"})


@router.get("/app/referrals/{task_id}/documents/{document_id}/{index}")
def referral_document(
    request: Request,
    task_id: str,
    document_id: str,
    index: int,
    services: ServicesDep,
    person: PersonDep,
) -> Response:
    """An attachment of a document sent with a referral (DocumentReference.content, its
    inline data), only as part of that referral's packet: a document the packet does not
    hold answers as a missing one."""
    try:
        packet = services.referrals.read(caller=person.caller(), task_id=task_id)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="document")
    documents = [
        body(v)
        for v in packet.resources
        if v.resource_type == "DocumentReference" and v.id == document_id and v.body
    ]
    contents = documents[0].get("content") or [] if documents else []
    attachment = contents[index].get("attachment") or {} if 0 <= index < len(contents) else {}
    data = attachment.get("data")
    if not isinstance(data, str):
        return page(request, "not_found.html", person, status=404, what="document")
    declared = str(attachment.get("contentType") or "").split(";")[0].strip().lower()
    shown = declared in _SHOWN_TYPES
    filename = re.sub(r"[^A-Za-z0-9._ -]", "_", str(attachment.get("title") or "document"))[:80]
    try:
        content = base64.b64decode(data, validate=True)
    except ValueError:
        return page(request, "not_found.html", person, status=404, what="document")
    headers = {
        **PAGE_HEADERS,
        # No script of a document runs in this origin (Chrome shows a PDF only unsandboxed,
        # in its own viewer).
        "Content-Security-Policy": "default-src 'none'; img-src 'self'"
        + ("" if declared == "application/pdf" else "; sandbox"),
        "Content-Disposition": f'{"inline" if shown else "attachment"}; filename="{filename}"',
    }
    return Response(
        content,
        media_type=declared if shown else "application/octet-stream",
        headers=headers,
    )


@router.post("/app/referrals/{task_id}/case")
def open_case_for_referral(
    request: Request, task_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """The receiving agency opens its own case for the referred client (the client's
    record as the consent shares it; the case names the referral that opened it)."""
    caller = person.caller()
    try:
        packet = services.referrals.read(caller=caller, task_id=task_id)
        task = packet.view.task
        client = (task.get("for") or {}).get("reference", "")
        focus = (task.get("focus") or {}).get("reference")
        if not client.startswith("Patient/"):
            raise NotFound("The referral names no client")
        case = NewCase(
            client_id=client.split("/", 1)[1],
            stage="engagement",
            managing_agency=person.user.agency,
            care_manager=person.user.practitioner,
            care_team=[
                TeamMember(
                    member=person.user.practitioner, name=person.user.name, role="case manager"
                )
            ],
            referral=focus
            if isinstance(focus, str) and focus.startswith("ServiceRequest/")
            else None,
            start=services.clock.now().date(),
        )
        stored = services.cases.create_case(caller=caller, case=case)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="referral")
    except FHIRError as exc:
        return _referral_page(request, services, person, task_id, exc.diagnostics, exc.status)
    return go(f"/app/cases/{stored.value.id}")


@router.post("/app/referrals/{task_id}/{action}")
def act(
    request: Request,
    task_id: str,
    action: str,
    services: ServicesDep,
    person: PersonDep,
    version: FormOptional = None,
    reason: FormOptional = None,
    summary: FormOptional = None,
    goals_achieved: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """One action on a referral, from its page (If-Match: the version the page showed, so
    a change made meanwhile by the other agency is never overwritten)."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        return page(request, "not_found.html", person, status=404, what="action")
    data: dict[str, Any] = {}
    if reason and reason.strip():
        data["reason"] = reason.strip()
    if action == "complete":
        outcome: dict[str, Any] = {}
        if summary and summary.strip():
            outcome["summary"] = summary.strip()
        if goals_achieved:
            outcome["goals"] = [
                {"goal": g, "achievementStatus": "achieved"} for g in goals_achieved if g
            ]
        data["outcome"] = outcome
    try:
        given = parse_action_json(data, chosen)
        if_match = int(version) if version and version.isdigit() else None
        services.referrals.act(
            caller=person.caller(), task_id=task_id, action=action, if_match=if_match, given=given
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="referral")
    except FHIRError as exc:
        message = exc.diagnostics
        if exc.status == 412:
            message = (
                "The other agency changed this referral while you were looking at it. It is "
                "shown as it is now: check it and try again."
            )
        return _referral_page(request, services, person, task_id, message, exc.status)
    return go(f"/app/referrals/{task_id}")


__all__ = ["router"]
