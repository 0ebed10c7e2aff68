"""Index rows from a resource body (spec search.html#token for identifier).

Extraction for the full search-parameter registry arrives with the search engine; the
conditional interactions of the core need identifier tokens now.
"""

from __future__ import annotations

from typing import Any

from app.fhir.errors import ResourceInvalid
from app.storage.repository import TokenRow

_MAX_TOKEN = 255
# Index rows are written inside the write lock: bound what one resource may cost.
MAX_TOKENS = 1000


def _identifiers(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def extract_tokens(resource: dict[str, Any]) -> list[TokenRow]:
    """Token rows for the identifier parameter (Resource.identifier, single or repeating)."""
    rows: list[TokenRow] = []
    seen: set[tuple[str | None, str]] = set()
    for ident in _identifiers(resource.get("identifier")):
        code = ident.get("value")
        if not isinstance(code, str) or not code or len(code) > _MAX_TOKEN:
            continue
        system = ident.get("system")
        if not isinstance(system, str):
            system = None
        elif len(system) > _MAX_TOKEN:
            # Unindexable rather than indexed as "no system", which would match |value.
            continue
        if (system, code) not in seen:
            seen.add((system, code))
            rows.append(TokenRow("identifier", system, code))
    if len(rows) > MAX_TOKENS:
        raise ResourceInvalid(
            f"The resource has {len(rows)} identifiers; at most {MAX_TOKENS} are accepted",
            expression=(f"{resource.get('resourceType')}.identifier",),
        )
    return rows
