"""Use cases for the FHIR RESTful interactions on single resources (spec http.html).

Validation runs before the write transaction opens, so the database write lock is held only
for the few statements of the write itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import jsonpatch
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import (
    Gone,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    ResourceInvalid,
    StructureError,
    Transient,
)
from app.fhir.jsonio import loads_stored, parse_json
from app.fhir.resource import stamp
from app.fhir.validation import check_resource, check_type_and_id
from app.search.criteria import parse_criteria
from app.search.extract import extract_tokens
from app.storage.errors import StorageUnavailable
from app.storage.repository import Repository, StoredVersion, unit_of_work

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of a write: the version now current, and whether it created the resource."""

    version: StoredVersion
    created: bool
    # False when a conditional create found its match and wrote nothing.
    changed: bool = True


class ResourceService:
    """Create, read, update, patch, delete and conditional variants for any resource type."""

    def __init__(self, *, engine: Engine, clock: Clock, settings: Settings) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings

    # -- plumbing ----------------------------------------------------------------------
    @contextmanager
    def _uow(self, *, write: bool) -> Iterator[Repository]:
        try:
            with unit_of_work(self._engine, write=write) as repo:
                yield repo
        except StorageUnavailable as exc:
            raise Transient(f"The database is unavailable; retry later ({exc})") from exc

    def _parse(self, body: bytes) -> Any:
        return parse_json(body, max_depth=self._settings.max_json_depth)

    def _now_after(self, previous: StoredVersion | None) -> datetime:
        now = self._clock.now()
        # lastUpdated never goes backwards within a resource's history, even across hosts.
        if previous is not None and now <= previous.last_updated:
            now = previous.last_updated + timedelta(microseconds=1)
        return now

    def _write(
        self,
        repo: Repository,
        *,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any] | None,
        current: StoredVersion | None,
        method: str,
    ) -> StoredVersion:
        version_id = current.version_id + 1 if current else 1
        now = self._now_after(current)
        body = (
            stamp(resource, resource_id=resource_id, version_id=version_id, last_updated=now)
            if resource is not None
            else None
        )
        version = StoredVersion(
            resource_type, resource_id, version_id, now, resource is None, body, method
        )
        tokens = extract_tokens(resource) if resource is not None else []
        repo.write_version(version=version, exists=current is not None, tokens=tokens)
        return version

    @staticmethod
    def _check_if_match(current: StoredVersion | None, if_match: int | None) -> None:
        if if_match is None:
            return
        if current is None or current.deleted:
            raise PreconditionFailed(
                f"If-Match names version {if_match} but the resource does not exist"
            )
        if current.version_id != if_match:
            raise PreconditionFailed(
                f"Version conflict: If-Match names version {if_match}, "
                f"the current version is {current.version_id}"
            )

    # -- create ------------------------------------------------------------------------
    def create(
        self,
        *,
        resource_type: str,
        body: bytes,
        if_none_exist: Sequence[tuple[str, str]] | None = None,
    ) -> WriteResult:
        """create and conditional create (spec http.html#create, #ccreate)."""
        check_type_and_id(resource_type)
        resource = check_resource(self._parse(body), resource_type=resource_type, resource_id=None)
        with self._uow(write=True) as repo:
            if if_none_exist is not None:
                parsed = parse_criteria(resource_type, if_none_exist)
                # Same criteria, same lock: parallel conditional creates see each other.
                repo.lock(parsed.canonical)
                matches = repo.find_ids(resource_type, parsed.conditions, limit=2)
                if len(matches) > 1:
                    raise PreconditionFailed(
                        f"If-None-Exist criteria {parsed.canonical} match more than one resource"
                    )
                if matches:
                    existing = repo.current(resource_type, matches[0])
                    assert existing is not None
                    return WriteResult(existing, created=False, changed=False)
            resource_id = self._clock.new_id()
            version = self._write(
                repo,
                resource_type=resource_type,
                resource_id=resource_id,
                resource=resource,
                current=None,
                method="POST",
            )
        return WriteResult(version, created=True)

    # -- read --------------------------------------------------------------------------
    def read(self, *, resource_type: str, resource_id: str) -> StoredVersion:
        """read (spec http.html#read): 404 if never existed, 410 if deleted."""
        check_type_and_id(resource_type, resource_id)
        with self._uow(write=False) as repo:
            current = repo.current(resource_type, resource_id)
        if current is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            raise Gone(
                f"{resource_type}/{resource_id} was deleted",
                headers={"ETag": f'W/"{current.version_id}"'},
            )
        return current

    def vread(self, *, resource_type: str, resource_id: str, version_id: str) -> StoredVersion:
        """vread (spec http.html#vread)."""
        check_type_and_id(resource_type, resource_id)
        if not version_id.isdigit() or len(version_id) > 9:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id!r}")
        with self._uow(write=False) as repo:
            version = repo.version(resource_type, resource_id, int(version_id))
        if version is None:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id}")
        if version.deleted:
            raise Gone(f"Version {version_id} of {resource_type}/{resource_id} is a deletion")
        return version

    # -- update ------------------------------------------------------------------------
    def update(
        self,
        *,
        resource_type: str,
        resource_id: str,
        body: bytes,
        if_match: int | None = None,
    ) -> WriteResult:
        """update, including update-as-create with a client-chosen id (spec http.html#update)."""
        check_type_and_id(resource_type, resource_id)
        resource = check_resource(
            self._parse(body), resource_type=resource_type, resource_id=resource_id
        )
        with self._uow(write=True) as repo:
            return self._update_locked(repo, resource_type, resource_id, resource, if_match, "PUT")

    def _update_locked(
        self,
        repo: Repository,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        if_match: int | None,
        method: str,
    ) -> WriteResult:
        repo.lock(f"{resource_type}/{resource_id}")
        current = repo.current(resource_type, resource_id)
        self._check_if_match(current, if_match)
        version = self._write(
            repo,
            resource_type=resource_type,
            resource_id=resource_id,
            resource=resource,
            current=current,
            method=method,
        )
        return WriteResult(version, created=current is None or current.deleted)

    def conditional_update(
        self,
        *,
        resource_type: str,
        criteria: Sequence[tuple[str, str]],
        body: bytes,
        if_match: int | None = None,
    ) -> WriteResult:
        """Conditional update (spec http.html#cond-update): 0 -> create, 1 -> update, 2+ -> 412."""
        check_type_and_id(resource_type)
        parsed_body = self._parse(body)
        body_id = parsed_body.get("id") if isinstance(parsed_body, dict) else None
        if body_id is not None and not isinstance(body_id, str):
            raise StructureError(
                "Resource.id must be a string", expression=(f"{resource_type}.id",)
            )
        if body_id is not None:
            check_type_and_id(resource_type, body_id)
        # Validate before the write transaction opens; only the id is settled inside it.
        resource = check_resource(parsed_body, resource_type=resource_type, resource_id=body_id)
        with self._uow(write=True) as repo:
            parsed = parse_criteria(resource_type, criteria)
            repo.lock(parsed.canonical)
            matches = repo.find_ids(resource_type, parsed.conditions, limit=2)
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"Conditional update criteria {parsed.canonical} match more than one resource"
                )
            if matches:
                target = matches[0]
                if body_id is not None and body_id != target:
                    raise InvalidRequest(
                        f"The resource id {body_id!r} differs from the matched resource {target!r}",
                        expression=(f"{resource_type}.id",),
                    )
            else:
                target = body_id if body_id is not None else self._clock.new_id()
            resource["id"] = target
            return self._update_locked(repo, resource_type, target, resource, if_match, "PUT")

    # -- patch -------------------------------------------------------------------------
    def patch(
        self,
        *,
        resource_type: str,
        resource_id: str,
        body: bytes,
        if_match: int | None = None,
    ) -> WriteResult:
        """patch with a JSON Patch document (spec http.html#patch, RFC 6902)."""
        check_type_and_id(resource_type, resource_id)
        operations = self._parse(body)
        if not isinstance(operations, list):
            raise StructureError("A JSON Patch document is an array of operations (RFC 6902)")
        try:
            patch = jsonpatch.JsonPatch(operations)
        except (jsonpatch.InvalidJsonPatch, TypeError, AttributeError) as exc:
            raise StructureError(f"Invalid JSON Patch document: {exc}") from exc
        # The patch applies to the version current under the lock, so concurrent patches
        # serialise instead of failing; validation runs inside the lock only for PATCH.
        with self._uow(write=True) as repo:
            repo.lock(f"{resource_type}/{resource_id}")
            current = repo.current(resource_type, resource_id)
            if current is None:
                raise NotFound(f"{resource_type}/{resource_id} is not known")
            if current.deleted or current.body is None:
                raise Gone(f"{resource_type}/{resource_id} was deleted")
            self._check_if_match(current, if_match)
            try:
                patched = patch.apply(loads_stored(current.body))
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ResourceInvalid(f"The patch cannot be applied: {exc}") from exc
            except (TypeError, KeyError, IndexError, ValueError) as exc:
                raise ResourceInvalid(f"The patch cannot be applied: {exc!r}") from exc
            resource = check_resource(patched, resource_type=resource_type, resource_id=resource_id)
            version = self._write(
                repo,
                resource_type=resource_type,
                resource_id=resource_id,
                resource=resource,
                current=current,
                method="PATCH",
            )
        return WriteResult(version, created=False)

    # -- delete ------------------------------------------------------------------------
    def delete(
        self, *, resource_type: str, resource_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        """delete (spec http.html#delete): idempotent; history keeps the deletion."""
        check_type_and_id(resource_type, resource_id)
        with self._uow(write=True) as repo:
            return self._delete_locked(repo, resource_type, resource_id, if_match)

    def _delete_locked(
        self, repo: Repository, resource_type: str, resource_id: str, if_match: int | None
    ) -> StoredVersion | None:
        repo.lock(f"{resource_type}/{resource_id}")
        current = repo.current(resource_type, resource_id)
        self._check_if_match(current, if_match)
        if current is None or current.deleted:
            return current
        return self._write(
            repo,
            resource_type=resource_type,
            resource_id=resource_id,
            resource=None,
            current=current,
            method="DELETE",
        )

    def conditional_delete(
        self, *, resource_type: str, criteria: Sequence[tuple[str, str]]
    ) -> StoredVersion | None:
        """Conditional delete (spec http.html#cdelete): one match deleted, several -> 412."""
        check_type_and_id(resource_type)
        with self._uow(write=True) as repo:
            parsed = parse_criteria(resource_type, criteria)
            repo.lock(parsed.canonical)
            matches = repo.find_ids(resource_type, parsed.conditions, limit=2)
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"Conditional delete criteria {parsed.canonical} match more than one resource"
                )
            if not matches:
                return None
            return self._delete_locked(repo, resource_type, matches[0], None)

    # -- helpers for other services ----------------------------------------------------
    def run_read(self, work: Callable[[Repository], T]) -> T:
        """Run a read-only unit of work (used by history and health checks)."""
        with self._uow(write=False) as repo:
            return work(repo)
