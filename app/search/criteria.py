"""Criteria of the conditional interactions (spec http.html#ccreate, #cond-update, #cdelete).

They use the search engine with strict handling: a parameter the server cannot evaluate is
an error here, never ignored, since ignoring it would widen the match and a conditional
write could then overwrite or delete the wrong record.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.fhir.errors import InvalidRequest
from app.search.query import Context, Criteria, parse_filters


def parse_criteria(
    resource_type: str, params: Sequence[tuple[str, str]], context: Context
) -> Criteria:
    """Parse conditional criteria; anything unsupported is refused (400)."""
    criteria = parse_filters(resource_type, params, context, strict=True)
    if not criteria.conditions:
        raise InvalidRequest("Conditional criteria must name at least one search parameter")
    return criteria
