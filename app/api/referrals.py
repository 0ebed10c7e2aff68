"""Referral routes (issue 5): /referrals, the friendly face, and the Task operations
($accept, ...) for FHIR-native clients. Parse, call one service, render.

SDOH CC IG referral workflow: https://hl7.org/fhir/us/sdoh-clinicalcare/referral_workflow.html
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import BundleBody, CallerDep, ResourceBody, ServicesDep, negotiate
from app.api.render import (
    fhir_response,
    if_match,
    notice_headers,
    query_pairs,
    release_labels,
    version_headers,
)
from app.clock import format_instant
from app.fhir.errors import NotFound
from app.fhir.jsonio import parse_json
from app.fhir.referral import (
    ACTIONS,
    Action,
    ActionInput,
    allowed_actions,
    flag_overdue,
    focus_service_request,
    parse_action_json,
    parse_action_parameters,
    reference_of,
)
from app.fhir.resource import etag
from app.security.caller import Caller
from app.security.scopes import allows
from app.services.container import Services
from app.services.usecases.referrals import Packet, ReferralPage, ReferralView, StatusChange

router = APIRouter(dependencies=[Depends(negotiate)])
_JSON = "application/json"


def _root(services: Services) -> str:
    """Where /referrals lives: the FHIR base without its /fhir."""
    base = services.settings.base_url
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


def _action(name: str) -> Action:
    chosen = ACTIONS.get(name)
    if chosen is None:
        raise NotFound(f"No referral action {name[:40]!r}; use {', '.join(ACTIONS)}")
    return chosen


def _text(value: Any) -> str | None:
    return value.get("text") if isinstance(value, dict) else None


def _view(view: ReferralView, services: Services) -> dict[str, Any]:
    """A referral as plain JSON: the summary both sides need, the Task, and links."""
    task = dict(view.task)
    if view.overdue:
        flag_overdue(task)
    tid = view.version.id
    root = _root(services)
    status = str(task.get("status"))
    period = task.get("executionPeriod")
    return {
        "id": tid,
        "status": status,
        "businessStatus": _text(task.get("businessStatus")),
        "statusReason": _text(task.get("statusReason")),
        "overdue": view.overdue is not None,
        "overdueReason": view.overdue,
        "etag": etag(view.version.version_id),
        "requester": reference_of(task.get("requester")),
        "owner": reference_of(task.get("owner")),
        "patient": reference_of(task.get("for")),
        "serviceRequest": focus_service_request(task),
        "authoredOn": task.get("authoredOn"),
        "acceptedAt": period.get("start") if isinstance(period, dict) else None,
        "lastModified": task.get("lastModified"),
        "task": task,
        "links": {
            "self": f"{services.settings.base_url}/Task/{tid}",
            "packet": f"{root}/referrals/{tid}",
            "history": f"{root}/referrals/{tid}/history",
            "actions": {
                name: f"{root}/referrals/{tid}/{name}"
                for name in allowed_actions(status, view.parties)
            },
        },
    }


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, headers=headers, media_type=_JSON)


def _one(view: ReferralView, services: Services, status: int = 200) -> Response:
    headers = version_headers(view.version, services.settings.base_url)
    headers.update(notice_headers(view.release))
    if status == 201:
        headers["Location"] = f"{_root(services)}/referrals/{view.version.id}"
    return _json(_view(view, services), status, headers)


@router.post("/referrals")
def submit(body: BundleBody, services: ServicesDep, caller: CallerDep) -> Response:
    """Submit a referral package: a transaction Bundle (spec http.html#transaction) with the
    Patient, ServiceRequest, Task, CarePlan, Goals, Consent, Observations and
    QuestionnaireResponses, stored atomically. 201 with the referral and its links."""
    view = services.referrals.submit(caller=caller, body=body)
    return _one(view, services, 201)


@router.get("/referrals")
def boxes(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """The caller's referrals: box=inbox (owner) | outbox (requester), status, overdue,
    _count; paged by next links."""
    page = services.referrals.listing(caller=caller, params=query_pairs(request))
    return _json(_page(page, services), headers=notice_headers(page.release))


def _page(page: ReferralPage, services: Services) -> dict[str, Any]:
    url = f"{_root(services)}/referrals"
    links = {"self": f"{url}?{urlencode(page.applied)}" if page.applied else url}
    if page.next_cursor:
        links["next"] = f"{url}?{urlencode([*page.applied, ('_cursor', page.next_cursor)])}"
    return {"referrals": [_view(v, services) for v in page.views], "links": links}


@router.get("/referrals/{task_id}")
def packet(task_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """The referral with its packet, as a collection Bundle (spec bundle.html): the Task
    first, then the ServiceRequest, the client, supporting information, plans and goals."""
    found = services.referrals.read(caller=caller, task_id=task_id)
    headers = version_headers(found.view.version, services.settings.base_url)
    headers.update(notice_headers(found.release))
    return fhir_response(orjson.dumps(_packet_bundle(found, services, caller)), headers=headers)


def _packet_bundle(found: Packet, services: Services, caller: Caller) -> dict[str, Any]:
    base = services.settings.base_url
    task = dict(found.view.task)
    if found.view.overdue:
        flag_overdue(task)
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/Task/{found.view.version.id}", "resource": task}
    ]
    entries += [
        {
            "fullUrl": f"{base}/{v.resource_type}/{v.id}",
            "resource": orjson.Fragment(v.body),
        }
        for v in found.resources
        # Only the types the token may read (as for _include).
        if v.body is not None and allows(caller, v.resource_type, "r")
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    labels = release_labels(found.release)
    if labels:
        # The labels of what the packet releases, as on a search Bundle (and the notice in
        # the response's header).
        bundle["meta"] = {"security": list(labels)}
    bundle.update(type="collection", timestamp=format_instant(services.clock.now()), entry=entries)
    return bundle


@router.get("/referrals/{task_id}/history")
def history(task_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Every status change of the referral: who (agency, client), when, why."""
    view, changes = services.referrals.history(caller=caller, task_id=task_id)
    return _json(
        {
            "id": task_id,
            "status": view.task.get("status"),
            "history": [_change(c) for c in changes],
        },
        headers=notice_headers(view.release),
    )


def _change(change: StatusChange) -> dict[str, Any]:
    return {
        "version": change.version_id,
        "status": change.status,
        "from": change.previous,
        "at": format_instant(change.at),
        "agency": change.agency,
        "client": change.client,
        "reason": change.reason,
        "businessStatus": change.business_status,
    }


@router.post("/referrals/{task_id}/{action}")
def act(
    request: Request,
    task_id: str,
    action: str,
    body: ResourceBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """One action: {"reason": "..."} or, for complete, {"outcome": {...}}; If-Match is the
    Task's ETag. One Task transition and its side effects, one transaction."""
    chosen = _action(action)
    given = _plain_input(body, chosen, services)
    view = services.referrals.act(
        caller=caller, task_id=task_id, action=action, if_match=if_match(request), given=given
    )
    return _one(view, services)


def _plain_input(body: bytes, action: Action, services: Services) -> ActionInput:
    data = parse_json(body, max_depth=services.settings.max_json_depth) if body.strip() else None
    return parse_action_json(data, action)


@router.post("/fhir/Task/{task_id}/${action}")
def task_operation(
    request: Request,
    task_id: str,
    action: str,
    body: ResourceBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """Task $accept, $decline, $start, $hold, $resume, $complete, $fail, $cancel (spec
    operations.html, instance level, a Parameters body): the referral actions for
    FHIR-native clients; answers the Task written."""
    chosen = _action(action)
    data = parse_json(body, max_depth=services.settings.max_json_depth) if body.strip() else None
    given = parse_action_parameters(data, chosen)
    view = services.referrals.act(
        caller=caller, task_id=task_id, action=action, if_match=if_match(request), given=given
    )
    assert view.version.body is not None
    headers = version_headers(view.version, services.settings.base_url)
    headers.update(notice_headers(view.release))
    return fhir_response(view.version.body, headers=headers)


__all__ = ["router"]
