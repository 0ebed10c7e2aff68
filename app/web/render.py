"""HTML answers of the web app: Jinja2 templates (autoescaped) and the headers every page
carries (no caching of health records, a strict Content-Security-Policy, no framing)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.api.pictures.genogram import WORDS as RELATION_WORDS
from app.services.auth.people import Person
from app.web.views import STATUS_WORDS, text_of
from mappings.casework import CONSENT_USES
from schemas.conformance import display

HERE: Final = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

# Scripts and styles from this server only: htmx needs no eval, and the pages carry no
# inline script or style, so an injected one would not run.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _date(value: Any) -> str:
    """A FHIR date or dateTime as a case worker reads it: 5 Jan 2026."""
    if isinstance(value, (dt.date, dt.datetime)):
        day = value
    elif isinstance(value, str) and len(value) >= 10:
        try:
            day = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    else:
        return "" if value is None else str(value)
    return f"{day.day} {day:%b %Y}"


def _words(code: Any, slug: str) -> str:
    """A code of one of the project's CodeSystems as its display (the code when unknown)."""
    if not isinstance(code, str):
        return "" if code is None else str(code)
    try:
        return display(slug, code)
    except KeyError:
        return code


# What a worker calls the records a referral packet may carry besides the referral.
_KINDS: Final = {
    "Observation": "Observation or score",
    "QuestionnaireResponse": "Assessment",
    "DocumentReference": "Document or note",
    "Condition": "Need or condition",
    "RelatedPerson": "Support person",
    "Procedure": "Service delivered",
    "AllergyIntolerance": "Allergy",
    "MedicationStatement": "Medication",
}


def describe(resource: Any) -> str:
    """A packet record in a few words: its code's text, a value, a title or description."""
    if not isinstance(resource, dict):
        return ""
    for key in ("code", "type"):
        words = text_of(resource.get(key))
        if words:
            value = resource.get("valueQuantity") or {}
            shown = f" {value.get('value')}" if value.get("value") is not None else ""
            if isinstance(resource.get("valueString"), str):
                shown = f": {resource['valueString']}"
            return f"{words}{shown}"
    for key in ("title", "description", "name"):
        if isinstance(resource.get(key), str):
            return str(resource[key])
    return ""


# v3 ActReason purposes of use a consent names (mappings/casework.py CONSENT_USES).
_PURPOSES: Final = {v: k.replace("-", " ") for k, v in CONSENT_USES.items()}

templates.env.filters["day"] = _date
templates.env.filters["words"] = _words
templates.env.filters["purpose"] = lambda code: _PURPOSES.get(code, code)
templates.env.filters["status"] = lambda code: STATUS_WORDS.get(code, code)
templates.env.filters["relation"] = lambda code: RELATION_WORDS.get(code, code)
templates.env.filters["kind"] = lambda kind: _KINDS.get(str(kind), str(kind))
templates.env.filters["describe"] = describe


def page(
    request: Request,
    name: str,
    person: Person | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or a part of one, for htmx) from its template."""
    response = templates.TemplateResponse(
        request,
        name,
        {"person": person, "csrf": person.csrf if person else "", **context},
        status_code=status,
    )
    response.headers.update(PAGE_HEADERS)
    return response


def go(path: str) -> RedirectResponse:
    """After a form: see the page it changed (303 See Other: the browser GETs it)."""
    response = RedirectResponse(path, status_code=303)
    response.headers.update(PAGE_HEADERS)
    return response


__all__ = ["PAGE_HEADERS", "go", "page", "templates"]
