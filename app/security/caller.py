"""Who is asking: the agency (an Organization) a request acts for, and what it may do.

Every service entry point takes a Caller. It is resolved once per request by the API layer
(from a SMART access token, or in local development from the X-Casebridge-Agency header)
and never from anything inside a resource body.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from app.fhir.errors import InvalidRequest

_AGENCY = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")


def parse_agency(value: str, *, what: str = "X-Casebridge-Agency") -> str:
    """An agency reference "Organization/{id}", checked for shape (400 otherwise)."""
    value = value.strip()
    if not _AGENCY.match(value):
        raise InvalidRequest(f"{what} must be Organization/{{id}}, not {value[:80]!r}")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """The acting party of one request.

    agency: "Organization/{id}", or None for the local operator (auth off, no agency named),
    which is not confined to any agency's records.
    scopes: the granted SMART scopes, or None when scopes are not enforced (auth off, or a
    person signed in to the web app, who acts with their agency's access rules).
    person: "Practitioner/{id}" of a person signed in to the web app, named in the audit.
    """

    agency: str | None = None
    client_id: str | None = None
    scopes: frozenset[str] | None = None
    person: str | None = None

    @property
    def is_operator(self) -> bool:
        """True for the unconfined local operator (development mode without an agency)."""
        return self.agency is None

    @property
    def who(self) -> str:
        """A short label for logs, audit and error messages."""
        if self.person:
            return f"{self.person} ({self.agency})"
        if self.client_id:
            return f"{self.client_id} ({self.agency})"
        return self.agency or "local operator"


OPERATOR = Caller()


def is_loopback(host: str) -> bool:
    """True if binding host exposes the server to this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
