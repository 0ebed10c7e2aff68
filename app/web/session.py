"""Who is at the browser: the session cookie, the person behind it, and the checks every
page request passes (signed in, the route's declared access, CSRF on what changes data).

- The cookie holds a random token only (the database keeps its SHA-256). It is HttpOnly,
  SameSite=Lax and, under https, Secure with the __Host- prefix (so Path=/).
- Every POST carries the session's CSRF token (a hidden form field, or the X-CSRF-Token
  header htmx sends) and, when the browser says where it comes from (Origin), comes from
  this server: a page of another site cannot act for the person (OWASP CSRF cheat sheet:
  synchronizer token plus origin check).
- The person acts with their agency's access rules (a Caller with the agency and the
  Practitioner they are), so every page sees exactly what the agency's API client would, and
  every AuditEvent names the person.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import quote, urlsplit

import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import check_route
from app.config import Settings
from app.fhir.errors import FHIRError, Forbidden
from app.services.auth.people import Person, csrf_matches
from app.services.container import Services

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"


class SignInNeeded(Exception):
    """The request needs a signed-in person; the browser is sent to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def secure_cookies(settings: Settings) -> bool:
    """Whether session cookies are Secure (https base URL, or forced)."""
    if settings.web_secure_cookies == "always":
        return True
    if settings.web_secure_cookies == "never":
        return False
    return settings.base_url.startswith("https://")


def cookie_name(settings: Settings) -> str:
    """__Host- binds a Secure cookie to this host and path / (RFC 6265bis)."""
    return "__Host-casebridge" if secure_cookies(settings) else "casebridge_session"


def sign_in_path(next_path: str) -> str:
    """The sign-in page, coming back to next_path (a local path only) afterwards."""
    return f"/app/sign-in?next={quote(safe_next(next_path), safe='/')}"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the web app, never another site."""
    if not value or not value.startswith("/app/") or value.startswith("//") or "\\" in value:
        return "/app/referrals"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/app/referrals"
    return value


async def current_person(request: Request) -> Person | None:
    """The person of the request's session cookie, if it is live."""
    services: Services = request.app.state.services
    token = request.cookies.get(cookie_name(services.settings))
    if not token:
        return None
    return await run_in_threadpool(services.people.session, token)


async def signed_in(request: Request) -> Person:
    """The page's person: signed in (else to the sign-in page), the route's declared access
    (app/security/routes.py) and, for a POST, the session's CSRF token and this origin."""
    person = await current_person(request)
    if person is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target if request.method in SAFE_METHODS else "/app/referrals")
    caller = person.caller()
    # For the request's audit, as the API does for a token's caller; and the error page.
    request.state.caller = caller
    request.state.person = person
    request.state.agency_name = await run_in_threadpool(_agency_name, request, person)
    check_route(caller, request)
    if request.method not in SAFE_METHODS:
        await check_csrf(request, person)
    return person


async def check_csrf(request: Request, person: Person) -> None:
    """403 unless the request carries the session's CSRF token and, when the browser names
    it, comes from this server's origin."""
    check_origin(request)
    offered = request.headers.get(CSRF_HEADER)
    if offered is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    if not csrf_matches(person, offered):
        raise Forbidden("The form has expired or did not come from this site: reload the page")


# Agency names for the page header, by agency (directory data; renamed agencies show their
# new name after a restart or after _NAMES_KEPT lookups of others).
_NAMES: dict[str, str] = {}
_NAMES_KEPT: Final = 1000


def _agency_name(request: Request, person: Person) -> str:
    agency = person.user.agency
    if agency not in _NAMES:
        services: Services = request.app.state.services
        if len(_NAMES) >= _NAMES_KEPT:
            _NAMES.clear()
        try:
            found = services.resources.read(
                caller=person.caller(),
                resource_type="Organization",
                resource_id=agency.split("/", 1)[1],
            )
            body = orjson.loads(found.version.body or b"{}")
            _NAMES[agency] = str(body.get("name") or agency)
        except FHIRError:
            return agency
    return _NAMES[agency]


def check_origin(request: Request) -> None:
    """403 for a POST another site's page sent (the browser's Origin header says so)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    # The host only: behind a proxy that ends TLS the scheme seen here is not the browser's.
    if urlsplit(origin).netloc != request.url.netloc:
        raise Forbidden("This form was sent from another site")


PersonDep = Annotated[Person, Depends(signed_in)]

__all__ = [
    "CSRF_FIELD",
    "PersonDep",
    "SignInNeeded",
    "check_csrf",
    "check_origin",
    "cookie_name",
    "current_person",
    "safe_next",
    "secure_cookies",
    "sign_in_path",
    "signed_in",
]
