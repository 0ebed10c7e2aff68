"""Type-level search (spec http.html#search, search.html).

Filters come from app.search.query (every indexed R4B parameter, chains, _has), order and
cursors from app.search.order, _include/_revinclude from app.search.include. One snapshot
serves the page, its total and its included resources, so they agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, false, not_, or_, true
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.jsonio import dumps, loads_stored
from app.fhir.registry import is_resource_type
from app.fhir.summary import parse_elements, parse_summary, select_elements, summarize
from app.fhir.validation import check_type_and_id
from app.search.capability import search_capabilities
from app.search.include import Include, parse_includes
from app.search.order import (
    SortKey,
    after,
    dump_cursor,
    load_cursor,
    order_by,
    parse_sort,
    parse_system_sort,
)
from app.search.query import RESULT_PARAMETERS, Context, Match, of_types, parse_filters
from app.security.caller import Caller
from app.security.policy import scope_for
from app.security.scopes import searched_through
from app.services.disclosure import NOTHING, DisclosureLog, Release
from app.services.params import Cursors, page_size, single
from app.services.uow import transaction
from app.storage.repository import Repository, StoredVersion

MAX_DISTINCT_PARAMETERS: Final = 100
# Included resources per page (spec search.html#include lets a server bound them).
MAX_INCLUDED: Final = 1000
# _total=estimate: an exact count when the criterion that drives the query has at most
# this many candidates (and so at most this many matches), none beyond.
ESTIMATE_LIMIT: Final = 1000
_TOTAL_MODES: Final = frozenset({"none", "estimate", "accurate"})
# Accepted and acted on elsewhere, or harmless to ignore silently.
_SILENT: Final = frozenset({"_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches and included resources, cursors, the total and what was ignored."""

    matches: list[StoredVersion]
    next_cursor: str | None
    total: int | None
    ignored: list[str] = field(default_factory=list)
    # The parameters actually used: the self link shows these (spec search.html#conformance).
    applied: list[tuple[str, str]] = field(default_factory=list)
    included: list[StoredVersion] = field(default_factory=list)
    previous_cursor: str | None = None
    # What the page releases to an agency that does not own the records.
    release: Release = NOTHING


class SearchService:
    """GET [base]/[type]?... and POST [base]/[type]/_search."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        own_base: str,
        default_count: int,
        max_count: int,
        disclosures: DisclosureLog,
        cursors: Cursors,
    ) -> None:
        self._disclosures = disclosures
        self._cursors = cursors
        self._engine = engine
        self._clock = clock
        self._own_base = own_base
        self._default_count = default_count
        self._max_count = max_count

    def context(self, caller: Caller | None = None) -> Context:
        """What parsing a search value needs: the server's base URL, the time now and the
        caller's access scope (chains and _has pass only through what it may see)."""
        now = self._clock.now()
        scope = None if caller is None else scope_for(caller.agency, now)
        return Context(
            own_base=self._own_base, now=now, scope=scope, through=searched_through(caller)
        )

    @staticmethod
    def capabilities(resource_type: str) -> Mapping[str, Any]:
        """searchParam, searchInclude, searchRevInclude for the CapabilityStatement."""
        return search_capabilities(resource_type)

    def search(
        self,
        *,
        caller: Caller,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        strict: bool,
        repo: Repository | None = None,
    ) -> SearchPage:
        """search-type (spec http.html#search): matches among the current, live versions.

        ``repo``: run inside that open transaction (a GET entry of a transaction Bundle).
        """
        check_type_and_id(resource_type)
        params = _checked(params)
        context = self.context(caller)
        criteria = parse_filters(resource_type, params, context, strict=strict)
        keys = parse_sort(resource_type, single(params, "_sort"))
        return self._run(
            caller,
            context,
            resource_type,
            params,
            criteria.conditions,
            criteria.ignored,
            keys,
            strict=strict,
            repo=repo,
            driver=criteria.driver,
            rest=criteria.rest,
        )

    def search_all(
        self,
        *,
        caller: Caller,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        repo: Repository,
        at_most: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every match of a search (page after page; at most at_most when given), as JSON:
        the reports and the caseload read whole sets the caller may see."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while at_most is None or len(found) < at_most:
            extra = [("_cursor", cursor)] if cursor else []
            page = self.search(
                caller=caller,
                resource_type=resource_type,
                params=[*params, ("_count", "1000"), *extra],
                strict=True,
                repo=repo,
            )
            found += [loads_stored(v.body) for v in page.matches if v.body is not None]
            cursor = page.next_cursor
            if cursor is None or not page.matches:
                break
        return found

    def search_system(
        self,
        *,
        caller: Caller,
        params: Sequence[tuple[str, str]],
        strict: bool,
    ) -> SearchPage:
        """search-system (spec http.html#search): across the types named by _type.

        Without _type only _id and _lastUpdated may filter (every other parameter is
        defined per type); each other parameter must be one every listed type defines.
        """
        params = _checked(params)
        raw_types = [v for k, v in params if k == "_type"]
        filters = [(k, v) for k, v in params if k != "_type"]
        context = self.context(caller)
        if not raw_types:
            names = sorted(
                {k for k, _ in filters if k not in RESULT_PARAMETERS} - {"_id", "_lastUpdated"}
            )
            if names:
                raise InvalidRequest(
                    f"Searching all types takes _id and _lastUpdated only; name the types "
                    f"with _type to use {', '.join(names)[:200]}",
                    expression=tuple(names[:10]),
                )
            criteria = parse_filters("Resource", filters, context, strict=True)
            conditions: tuple[ColumnElement[bool], ...] = criteria.conditions
            ignored: tuple[str, ...] = ()
        else:
            types = sorted({t for raw in raw_types for t in raw.split(",")})
            for name in types:
                if not is_resource_type(name):
                    raise InvalidRequest(
                        f"_type: {name[:64]!r} is not a resource type", expression=("_type",)
                    )
            per_type = {}
            ignored_by: dict[str, set[str]] = {}
            for name in types:
                criteria = parse_filters(name, filters, context, strict=strict)
                for parameter in criteria.ignored:
                    ignored_by.setdefault(parameter, set()).add(name)
                per_type[name] = criteria.conditions
            # A parameter some of the types lack would filter only the others: refuse it.
            partial = sorted(p for p, lacking in ignored_by.items() if len(lacking) < len(types))
            if partial:
                raise InvalidRequest(
                    f"{', '.join(partial)[:200]} is not defined for every type in _type",
                    expression=tuple(partial[:10]),
                )
            conditions = (of_types(per_type),)
            ignored = tuple(sorted(ignored_by))
        keys = parse_system_sort(single(params, "_sort"))
        return self._run(caller, context, None, params, conditions, ignored, keys, strict=strict)

    def search_any(
        self,
        *,
        caller: Caller,
        resource_type: str,
        alternatives: Sequence[Sequence[tuple[str, str]]],
        params: Sequence[tuple[str, str]],
        sort: str | None = None,
        excluding: Sequence[Sequence[tuple[str, str]]] = (),
    ) -> SearchPage:
        """Matches of any one of several sets of criteria and of none of the excluding
        sets, paged by the result parameters in params (_count, _cursor). The query string
        has no OR across parameters (search.html#combining); services that need one (the
        referral boxes) use this."""
        check_type_and_id(resource_type)
        params = _checked(params)
        context = self.context(caller)

        def any_of(sets: Sequence[Sequence[tuple[str, str]]]) -> ColumnElement[bool]:
            branches = [
                and_(true(), *parse_filters(resource_type, alt, context, strict=True).conditions)
                for alt in sets
            ]
            return or_(*branches) if branches else false()

        conditions = [any_of(alternatives)]
        if excluding:
            conditions.append(not_(any_of(excluding)))
        keys = parse_sort(resource_type, sort)
        return self._run(caller, context, resource_type, params, conditions, (), keys, strict=True)

    def _run(
        self,
        caller: Caller,
        context: Context,
        resource_type: str | None,
        params: list[tuple[str, str]],
        filters: Sequence[ColumnElement[bool]],
        ignored: Sequence[str],
        keys: tuple[SortKey, ...],
        *,
        strict: bool,
        repo: Repository | None = None,
        driver: Match | None = None,
        rest: Sequence[ColumnElement[bool]] = (),
    ) -> SearchPage:
        """One page: the matches after the cursor, the total and the included resources.

        ``driver``, ``rest``: the criterion that drives the query and the other conditions
        (parse_filters); a page in id order is then read by walking the driver's index rows.
        """
        count = page_size(params, default=self._default_count, maximum=self._max_count)
        asked = single(params, "_total")
        if asked is not None and asked not in _TOTAL_MODES:
            raise InvalidRequest(
                "_total must be none, estimate or accurate", expression=("_total",)
            )
        # Not asked: the total only when it costs nothing (the first page holds every
        # match), as a count of thousands of candidates costs more than their first page.
        total_mode = "free" if asked is None else asked
        if count == 0 and asked is None:  # a page of none asks for the total alone
            total_mode = "accurate"
        summary, elements, unknown_elements = _shape(resource_type, params)
        if unknown_elements and strict:
            raise InvalidRequest(
                f"Unknown elements in _elements: {', '.join(unknown_elements)}"[:300],
                expression=("_elements",),
            )
        if summary == "count":  # the total alone (spec search.html#summary)
            count, total_mode = 0, "accurate"
        raw_cursor = single(params, "_cursor")
        cursor = load_cursor(keys, self._cursors.open(raw_cursor)) if raw_cursor else None
        includes = parse_includes(params)
        backwards = cursor.backwards if cursor else False
        conditions = list(filters)
        if cursor is not None:
            conditions.append(after(keys, cursor.values, backwards=backwards))

        # A page, its total and its includes must agree (one snapshot); a page alone is one
        # statement and needs no BEGIN/COMMIT round trips of its own.
        agree = bool(includes) or total_mode in ("estimate", "accurate")
        scope: AbstractContextManager[Repository] = (
            nullcontext(repo.with_scope(context.scope))
            if repo is not None
            else transaction(
                self._engine,
                write=False,
                snapshot=agree,
                single_read=not agree,
                scope=context.scope,
            )
        )
        with scope as repo:
            if (
                driver is not None
                and driver.key is not None
                and resource_type is not None
                and len(keys) == 1
                and keys[0].name == "_id"
            ):
                rows = repo.search_driven(
                    resource_type,
                    driver.ids,
                    rest,
                    after_id=cursor.values[0] if cursor is not None else None,
                    descending=keys[0].descending != backwards,
                    limit=count + 1,
                )
            else:
                rows = repo.search(
                    resource_type,
                    conditions,
                    order_by=order_by(keys, backwards=backwards),
                    keys=[k.expression for k in keys],
                    limit=count + 1,
                )
            if cursor is None and len(rows) <= count and total_mode != "none":
                # The first page holds every match: it is the total, no count needed.
                total: int | None = len(rows)
            else:
                total = _total(repo, resource_type, filters, total_mode, driver)
            page = rows[:count]
            more = len(rows) > count and count > 0
            if backwards:
                page.reverse()
            matches = [_shaped(version, summary, elements) for version, _ in page]
            included = _included(repo, [v for v, _ in page], includes) if includes else []
            release = self._disclosures.record(
                caller,
                [*(v for v, _ in page), *included],
                "search",
                repo=repo,
            )

        next_cursor = previous_cursor = None
        if page:
            first_values, last_values = page[0][1], page[-1][1]
            if more or backwards:
                next_cursor = self._cursors.seal(dump_cursor(keys, last_values, backwards=False))
            if cursor is not None and (more or not backwards):
                previous_cursor = self._cursors.seal(
                    dump_cursor(keys, first_values, backwards=True)
                )
        skipped = set(ignored)
        return SearchPage(
            matches,
            next_cursor,
            total,
            [*ignored, *(f"_elements={n}" for n in unknown_elements)],
            applied=[(k, v) for k, v in params if k not in skipped],
            included=included,
            previous_cursor=previous_cursor,
            release=release,
        )


def _total(
    repo: Repository,
    resource_type: str | None,
    filters: Sequence[ColumnElement[bool]],
    mode: str,
    driver: Match | None,
) -> int | None:
    """Bundle.total (spec search.html#total) when the first page does not hold every
    match: none when not asked (mode "free") or for none; estimate counts exactly when that
    is cheap and leaves the total out otherwise; accurate always counts.

    Cheap: the criterion that drives the query has at most ESTIMATE_LIMIT candidates (those
    the caller may see), or, with no such criterion, there are at most ESTIMATE_LIMIT
    matches. Counting the matches among thousands of candidates (an agency's 3,000 Tasks,
    of which status=requested) costs ten times the page, which stops after 20."""
    if mode in ("none", "free"):
        return None
    if mode == "accurate":
        return repo.count(resource_type, filters)
    if driver is not None:
        candidates = repo.count_rows(driver.ids, driver.key, at_most=ESTIMATE_LIMIT)
        if candidates > ESTIMATE_LIMIT:
            return None
    counted = repo.count(resource_type, filters, at_most=ESTIMATE_LIMIT)
    return counted if counted <= ESTIMATE_LIMIT else None


def _checked(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    params = [(k, v) for k, v in params if k not in _SILENT]
    if len({k for k, _ in params}) > MAX_DISTINCT_PARAMETERS:
        raise TooCostly(f"At most {MAX_DISTINCT_PARAMETERS} distinct parameters are read")
    return params


def _shape(
    resource_type: str | None, params: Sequence[tuple[str, str]]
) -> tuple[str | None, tuple[str, ...] | None, tuple[str, ...]]:
    """_summary and _elements (spec search.html#summary, #elements): one or the other."""
    raw_summary = single(params, "_summary")
    summary = parse_summary(raw_summary) if raw_summary is not None else None
    raw_elements = [v for k, v in params if k == "_elements"]
    if not raw_elements:
        return (None if summary == "false" else summary), None, ()
    if summary is not None and summary != "false":
        raise InvalidRequest(
            "_summary and _elements cannot be combined", expression=("_summary", "_elements")
        )
    if resource_type is None:
        raise InvalidRequest(
            "_elements needs a single resource type (search that type)", expression=("_elements",)
        )
    selection = parse_elements(resource_type, ",".join(raw_elements))
    return None, selection.names, selection.unknown


def _shaped(
    version: StoredVersion, summary: str | None, elements: tuple[str, ...] | None
) -> StoredVersion:
    """A match as the client asked to see it (subsetted resources are tagged SUBSETTED)."""
    if version.body is None or (summary is None and elements is None):
        return version
    resource = loads_stored(version.body)
    shaped = (
        summarize(resource, summary)
        if summary is not None
        else select_elements(resource, elements or ())
    )
    return StoredVersion(
        version.resource_type,
        version.id,
        version.version_id,
        version.last_updated,
        version.deleted,
        dumps(shaped),
        version.method,
    )


def _included(
    repo: Repository, matches: list[StoredVersion], includes: Sequence[Include]
) -> list[StoredVersion]:
    """Resources the directives add to a page: first round from the matches, then the
    :iterate directives once more from what the first round added."""
    seen = {(v.resource_type, v.id) for v in matches}
    pool: dict[str, list[str]] = {}
    for version in matches:
        pool.setdefault(version.resource_type, []).append(version.id)
    added: list[StoredVersion] = []
    for round_number in (0, 1):
        directives = [d for d in includes if round_number == 0 or d.iterate]
        wanted: dict[str, list[str]] = {}
        for directive in directives:
            for target_type, target_id in _follow(repo, directive, pool):
                if (target_type, target_id) not in seen:
                    wanted.setdefault(target_type, []).append(target_id)
        pool = {}
        for target_type, ids in sorted(wanted.items()):
            for version in repo.live(target_type, ids):
                key = (version.resource_type, version.id)
                if key in seen:
                    continue
                seen.add(key)
                added.append(version)
                pool.setdefault(target_type, []).append(version.id)
                if len(added) >= MAX_INCLUDED:
                    return added
        if not pool:
            break
    return added


def _follow(
    repo: Repository, directive: Include, pool: dict[str, list[str]]
) -> list[tuple[str, str]]:
    if not directive.reverse:
        sources = pool.get(directive.source_type)
        if not sources:
            return []
        return repo.referenced(
            directive.source_type,
            sources,
            directive.params,
            directive.target_type,
            MAX_INCLUDED,
        )
    found: list[tuple[str, str]] = []
    for target_type, ids in pool.items():
        if directive.target_type is not None and directive.target_type != target_type:
            continue
        for source_id in repo.referencing(
            directive.source_type, directive.params, target_type, ids, MAX_INCLUDED
        ):
            found.append((directive.source_type, source_id))
    return found


__all__ = ["SearchPage", "SearchService"]
