"""Display names for references, as the signed-in person's agency may see them."""

from __future__ import annotations

from collections.abc import Callable

from app.fhir.errors import FHIRError
from app.security.caller import Caller
from app.services.container import Services
from app.web.views import body, person_name

Names = Callable[[str | None], str]


def names_for(services: Services, caller: Caller) -> Names:
    """A lookup of names for "Type/id" references, read once each per page; a record the
    agency may not see shows as "not shared" (a client) or as its reference."""
    cache: dict[str | None, str] = {}

    def name(reference: str | None) -> str:
        if reference not in cache:
            cache[reference] = _name(services, caller, reference)
        return cache[reference]

    return name


def _name(services: Services, caller: Caller, reference: str | None) -> str:
    if not reference or reference.count("/") != 1:
        return reference or "unknown"
    kind, rid = reference.split("/")
    try:
        found = services.resources.read(caller=caller, resource_type=kind, resource_id=rid)
    except FHIRError:
        return f"{kind} (not shared)" if kind == "Patient" else reference
    return person_name(body(found.version)) or reference


__all__ = ["Names", "names_for"]
