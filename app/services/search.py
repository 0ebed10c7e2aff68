"""Type-level search (spec search.html) over the parameters the index holds so far.

Supported now: _id, _lastUpdated and identifier (with :not), comma = OR, repeated = AND,
_count, _total, and stable paging. Unknown parameters are ignored and reported in an
OperationOutcome entry, or refused under Prefer: handling=strict (spec search.html#errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.registry import is_valid_id
from app.fhir.validation import check_type_and_id
from app.search.criteria import is_known_base, is_supported, parse_criteria
from app.services.params import decode_token, encode_token, page_size, single
from app.services.uow import transaction
from app.storage.repository import StoredVersion

RESULT_PARAMS = frozenset({"_count", "_cursor", "_total"})
MAX_DISTINCT_PARAMETERS = 100
_TOTAL_MODES = frozenset({"none", "estimate", "accurate"})


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches, the cursor of the next page, the total and what was ignored."""

    matches: list[StoredVersion]
    next_cursor: str | None
    total: int | None
    ignored: list[str] = field(default_factory=list)
    # The parameters actually used: the self link shows these (spec search.html#conformance).
    applied: list[tuple[str, str]] = field(default_factory=list)


def _decode_cursor(token: str) -> str:
    try:
        resource_id = decode_token(token).decode()
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            "The _cursor paging token is not valid", expression=("_cursor",)
        ) from exc
    if not is_valid_id(resource_id):
        raise InvalidRequest("The _cursor paging token is not valid", expression=("_cursor",))
    return resource_id


class SearchService:
    """GET [base]/[type]?... and POST [base]/[type]/_search."""

    def __init__(self, *, engine: Engine, default_count: int, max_count: int) -> None:
        self._engine = engine
        self._default_count = default_count
        self._max_count = max_count

    def search(
        self, *, resource_type: str, params: Sequence[tuple[str, str]], strict: bool
    ) -> SearchPage:
        """search-type (spec http.html#search): matches of the current, live versions."""
        check_type_and_id(resource_type)
        names = {k for k, _ in params if k not in RESULT_PARAMS}
        if len(names) > MAX_DISTINCT_PARAMETERS:
            raise TooCostly(f"At most {MAX_DISTINCT_PARAMETERS} distinct parameters are read")
        # A modifier this server cannot apply would widen the match (_id:not=x returning x):
        # refuse it rather than ignore it.
        bad_modifiers = sorted(n for n in names if is_known_base(n) and not is_supported(n))
        if bad_modifiers:
            raise InvalidRequest(
                f"Unsupported modifier in {', '.join(bad_modifiers)}",
                expression=tuple(bad_modifiers),
            )
        criteria = [(k, v) for k, v in params if k not in RESULT_PARAMS and is_supported(k)]
        ignored = sorted(n for n in names if not is_supported(n))
        if ignored and strict:
            raise InvalidRequest(
                f"Unsupported search parameters: {', '.join(ignored)}",
                expression=tuple(ignored),
            )
        count = page_size(params, default=self._default_count, maximum=self._max_count)
        total_mode = single(params, "_total")
        total_mode = "accurate" if total_mode is None else total_mode
        if total_mode not in _TOTAL_MODES:
            raise InvalidRequest(
                "_total must be none, estimate or accurate", expression=("_total",)
            )
        raw_cursor = single(params, "_cursor")
        after_id = _decode_cursor(raw_cursor) if raw_cursor else None
        conditions = parse_criteria(resource_type, criteria).conditions if criteria else ()

        # One snapshot, so the page and its total agree.
        with transaction(self._engine, write=False, snapshot=True) as repo:
            rows = repo.search(resource_type, conditions, after_id=after_id, limit=count + 1)
            total = None if total_mode == "none" else repo.count(resource_type, conditions)
        page = rows[:count]
        more = len(rows) > count and bool(page)
        return SearchPage(
            page,
            encode_token(page[-1].id.encode()) if more else None,
            total,
            ignored,
            applied=[(k, v) for k, v in params if k not in ignored],
        )
