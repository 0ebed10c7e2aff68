"""What search supports per resource type, for the CapabilityStatement (spec
capabilitystatement.html: rest.resource.searchParam, searchInclude, searchRevInclude).

Derived from the same registry that indexing and query building use, so the statement
cannot claim a parameter the engine does not evaluate.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from app.search.index_rows import RESOURCE_COLUMNS
from app.search.query import TABLE_BY_TYPE
from app.search.registry import params_for

RESULT_PARAMS = (
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_has",
)


def _supported(code: str, kind: str, indexed: bool) -> bool:
    return code in RESOURCE_COLUMNS or (indexed and kind in TABLE_BY_TYPE)


@cache
def search_capabilities(resource_type: str) -> dict[str, Any]:
    """searchParam, searchInclude and searchRevInclude of one resource type."""
    params = params_for(resource_type)
    search_params = [
        {"name": code, "definition": p.url, "type": p.type}
        for code, p in sorted(params.items())
        if _supported(code, p.type, p.indexed)
    ]
    includes = sorted(
        f"{resource_type}:{code}" for code, p in params.items() if p.type == "reference"
    )
    revincludes = sorted(
        f"{p.resource_type}:{p.code}"
        for source in _reference_sources()
        for p in source
        if resource_type in p.targets
    )
    return {
        "searchParam": search_params,
        "searchInclude": [*includes, "*"] if includes else [],
        "searchRevInclude": revincludes,
    }


@cache
def _reference_sources() -> tuple[tuple[Any, ...], ...]:
    from app.search.registry import resource_types

    return tuple(
        tuple(p for p in params_for(t).values() if p.type == "reference")
        for t in sorted(resource_types())
    )
