"""Reindexing: rebuild the search-index rows of every live resource (after a registry change).

Walks each resource type in id order, a batch at a time. Index rows are computed from a
batch read outside any write transaction; the write transaction then re-reads the same
range under the type's exclusive lock (PostgreSQL; on SQLite the write lock itself) and
replaces the rows, recomputing any resource that changed in between. So a write racing the
reindex never ends up with rows of an older body, and the lock is held only for the
statements of one batch: the server keeps serving between batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.engine import Engine

from app.config import Settings
from app.fhir.errors import FHIRError
from app.fhir.jsonio import loads_stored
from app.fhir.registry import resource_types
from app.fhir.validation import check_type_and_id
from app.search.extract import extract_index
from app.services.jobs.bulk import WalKeeper
from app.services.uow import transaction
from app.storage.index import IndexRows

log = logging.getLogger(__name__)

DEFAULT_BATCH: Final = 200
MAX_KEPT_PROBLEMS: Final = 1000


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """How far a reindex has got: resources done of the total, and the type at hand."""

    resource_type: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class ReindexProblem:
    """A resource whose rows could not be rebuilt (its old rows were left as they were)."""

    resource_type: str
    resource_id: str
    message: str


@dataclass
class ReindexSummary:
    """What a reindex did: resources per type, time taken, and resources it had to skip."""

    per_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    problems: list[ReindexProblem] = field(default_factory=list)

    @property
    def resources(self) -> int:
        """How many resources got new index rows."""
        return sum(self.per_type.values())

    @property
    def rate(self) -> float:
        """Resources reindexed per second."""
        return self.resources / self.seconds if self.seconds > 0 else 0.0


class _Indexer:
    def __init__(self, resource_type: str, own_base: str, problems: list[ReindexProblem]):
        self.resource_type = resource_type
        self.own_base = own_base
        self.problems = problems

    def rows(self, resource_id: str, body: bytes) -> IndexRows | None:
        """The resource's index rows, or None (recorded as a problem) if they cannot be had."""
        try:
            return extract_index(self.resource_type, loads_stored(body), own_base=self.own_base)
        except FHIRError as exc:
            message = exc.diagnostics
        except Exception as exc:  # one odd stored body must not stop the whole reindex
            log.exception("reindexing %s/%s failed", self.resource_type, resource_id)
            message = f"unexpected error ({type(exc).__name__})"
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(ReindexProblem(self.resource_type, resource_id, message))
        return None


def _types(resource_type: str | None) -> list[str]:
    if resource_type is None:
        return sorted(resource_types())
    check_type_and_id(resource_type)  # NotFound for an unknown type
    return [resource_type]


def count_live(engine: Engine, types: Sequence[str]) -> int:
    """How many live resources of these types there are (for a progress total)."""
    with transaction(engine, write=False) as repo:
        return sum(repo.count(resource_type, ()) for resource_type in types)


def reindex(
    engine: Engine,
    settings: Settings,
    *,
    resource_type: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[ReindexProgress], None] | None = None,
) -> ReindexSummary:
    """Rebuild the index rows of all live resources (of every type, or of one)."""
    types = _types(resource_type)
    batch_size = max(1, batch_size)
    total = count_live(engine, types) if on_progress is not None else 0
    summary = ReindexSummary()
    started = time.perf_counter()
    done = 0
    wal = WalKeeper(engine)
    for name in types:
        indexer = _Indexer(name, settings.base_url, summary.problems)
        count = 0
        after: str | None = None
        while True:
            with transaction(engine, write=False, single_read=True) as repo:
                rows = repo.live_ids(name, after_id=after, limit=batch_size)
            if not rows:
                break
            # Computed outside the write transaction: it is most of the work.
            computed = {rid: (body, indexer.rows(rid, body)) for rid, body in rows}
            with transaction(engine, write=True) as repo:
                # Writers of this type wait until the batch commits, so none can store
                # a newer body between the re-read below and the rows replaced from it.
                repo.lock_type(name, exclusive=True)
                current = repo.live_ids(name, after_id=after, limit=batch_size)
                for rid, body in current:
                    earlier = computed.get(rid)
                    index = (
                        earlier[1]
                        if earlier is not None and earlier[0] == body
                        else indexer.rows(rid, body)
                    )
                    if index is not None:
                        repo.replace_index(name, rid, index)
                        count += 1
            wal.between_batches()
            after = current[-1][0] if current else rows[-1][0]
            done += len(current)
            if on_progress is not None:
                on_progress(ReindexProgress(name, done, max(total, done)))
        if count:
            summary.per_type[name] = count
    wal.between_batches(final=True)
    summary.seconds = time.perf_counter() - started
    return summary


__all__ = [
    "DEFAULT_BATCH",
    "ReindexProblem",
    "ReindexProgress",
    "ReindexSummary",
    "count_live",
    "reindex",
]
