"""Index rows for a resource about to be written, bounded (spec search.html).

Runs before the write transaction opens: the rows are computed from the validated body so
the database write lock is held only for the statements that store them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from app.fhir.errors import ResourceInvalid
from app.search.index_rows import index_rows
from app.storage.index import IndexRows, row_count

# Index rows are written inside the write lock: bound what one resource may cost. Case
# records hold tens to a few hundred rows; a few thousand means a pathological document.
MAX_INDEX_ROWS: Final = 5000


def extract_index(resource_type: str, resource: Mapping[str, Any], *, own_base: str) -> IndexRows:
    """The search-index rows of a validated resource; 422 if it would need too many."""
    rows = index_rows(resource_type, resource, own_base=own_base)
    count = row_count(rows)
    if count > MAX_INDEX_ROWS:
        raise ResourceInvalid(
            f"The resource would need {count} search-index entries; at most {MAX_INDEX_ROWS} "
            "are accepted (too many repeating elements)",
            expression=(resource_type,),
        )
    return rows
