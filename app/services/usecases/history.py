"""History interactions: instance, type and whole-system (spec http.html#history)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import InvalidRequest, NotFound
from app.fhir.numbers import MAX_VERSION
from app.fhir.registry import is_resource_type, is_valid_id
from app.fhir.validation import check_type_and_id
from app.search.dates import parse_date_range
from app.security.caller import Caller
from app.security.policy import scope_for
from app.services.disclosure import NOTHING, DisclosureLog, Release
from app.services.params import Cursors, page_size, single
from app.services.uow import transaction
from app.storage.repository import HistoryCursor, StoredVersion


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history, newest first, and the cursor of the next page if any."""

    versions: list[StoredVersion]
    next_cursor: str | None
    total: int
    # What the page releases to an agency that does not own the records.
    release: Release = NOTHING


def _encode_cursor(cursors: Cursors, v: StoredVersion) -> str:
    return cursors.seal(
        orjson.dumps([v.last_updated.isoformat(), v.resource_type, v.id, v.version_id])
    )


def _decode_cursor(cursors: Cursors, token: str) -> HistoryCursor:
    try:
        ts, rtype, rid, vid = orjson.loads(cursors.open(token))
        moment = datetime.fromisoformat(ts)
        # The token comes back from the client: every field is checked before it reaches SQL.
        if (
            moment.tzinfo is None
            or moment.year < 2
            or not (isinstance(rtype, str) and is_resource_type(rtype))
            or not (isinstance(rid, str) and is_valid_id(rid))
            or not (type(vid) is int and 1 <= vid <= MAX_VERSION)
        ):
            raise ValueError("cursor fields out of range")
        return HistoryCursor(moment, rtype, rid, vid)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(
            "The _cursor paging token is not valid", expression=("_cursor",)
        ) from exc


class HistoryService:
    """Lists versions with _since, _count and stable keyset paging."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        default_count: int,
        max_count: int,
        disclosures: DisclosureLog,
        cursors: Cursors,
    ) -> None:
        self._cursors = cursors
        self._engine = engine
        self._clock = clock
        self._disclosures = disclosures
        self._default_count = default_count
        self._max_count = max_count

    def history(
        self,
        *,
        caller: Caller,
        resource_type: str | None,
        resource_id: str | None,
        params: Sequence[tuple[str, str]],
    ) -> HistoryPage:
        """A page of history for one resource, one type, or the whole system."""
        if resource_type is not None:
            check_type_and_id(resource_type, resource_id)
        known = {"_count", "_since", "_cursor"}
        for name, _ in params:
            if name not in known:
                raise InvalidRequest(
                    f"Parameter {name!r} is not supported on _history", expression=(name,)
                )
        count = page_size(params, default=self._default_count, maximum=self._max_count)
        since = None
        raw_since = single(params, "_since")
        if raw_since is not None:
            try:
                since = parse_date_range(raw_since).low
            except ValueError as exc:
                raise InvalidRequest(str(exc), expression=("_since",)) from exc
        raw_cursor = single(params, "_cursor")
        cursor = _decode_cursor(self._cursors, raw_cursor) if raw_cursor else None

        # One snapshot, so the page and its total agree.
        scope = scope_for(caller.agency, self._clock.now())
        with transaction(self._engine, write=False, snapshot=True, scope=scope) as repo:
            rows = repo.history(
                resource_type=resource_type,
                resource_id=resource_id,
                since=since,
                at=None,
                after=cursor,
                limit=count + 1,
            )
            total = repo.count_history(
                resource_type=resource_type, resource_id=resource_id, since=since
            )
            exists = (
                total > 0
                or bool(rows)
                or resource_id is None
                or (
                    resource_type is not None
                    and repo.current(resource_type, resource_id) is not None
                    and repo.is_visible(resource_type, resource_id)
                )
            )
        if not exists:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        page = rows[:count]
        more = len(rows) > count and bool(page)
        release = self._disclosures.record(caller, [v for v in page if not v.deleted], "history")
        return HistoryPage(
            page, _encode_cursor(self._cursors, page[-1]) if more else None, total, release
        )
