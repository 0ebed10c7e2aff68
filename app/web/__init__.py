"""The web app for case workers (issue 20), served under /app by the same FastAPI app.

Server-rendered pages (Jinja2 templates) with htmx for partial updates and server-sent
events, calling the same services as the API as the signed-in person. Layout:

- ``session``: the session cookie, the person, the route and CSRF checks of every page;
- ``render``: templates and the headers every page carries;
- ``views``: FHIR records as a case worker reads them;
- ``pages``: signing in and out, the referral inbox and outbox, a referral, making one;
- ``case_pages``: the caseload, a case, notes, assessments, the team leader's report.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.fhir.errors import FHIRError
from app.web.render import HERE, go, page
from app.web.session import SignInNeeded, sign_in_path


def error_page(request: Request, error: FHIRError) -> Response | None:
    """An error under /app as a page (the API keeps its OperationOutcome)."""
    if not request.url.path.startswith("/app"):
        return None
    person = getattr(request.state, "person", None)
    return page(request, "error.html", person, status=error.status, error=error)


async def _sign_in_needed(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    return go(sign_in_path(exc.next_path))


def install(app: FastAPI) -> None:
    """The pages, their static files and the sign-in redirect on the app."""
    from app.web import case_pages, pages

    app.include_router(pages.router)
    app.include_router(case_pages.router)
    app.mount("/app/static", StaticFiles(directory=HERE / "static"), name="web-static")
    app.add_exception_handler(SignInNeeded, _sign_in_needed)


__all__ = ["error_page", "install"]
