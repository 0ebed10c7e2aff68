"""Use cases for the FHIR RESTful interactions on single resources (spec http.html).

Validation runs before the write transaction opens, so the database write lock is held only
for the few statements of the write itself. Every write runs through the one pipeline of
app/services/writes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import jsonpatch
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import (
    Conflict,
    Gone,
    InvalidRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    StructureError,
)
from app.fhir.jsonio import parse_json
from app.fhir.numbers import ascii_int
from app.fhir.resource import etag
from app.fhir.validation import check_resource, check_type_and_id
from app.search.criteria import parse_criteria
from app.search.query import Context, Criteria
from app.security.caller import Caller
from app.security.policy import scope_for
from app.security.scopes import searched_through
from app.services.disclosure import NOTHING, DisclosureLog, Release
from app.services.uow import transaction
from app.services.writes import Change, JsonPatchDocument, WritePipeline, Written
from app.storage.access import AccessScope
from app.storage.index import IndexRows
from app.storage.repository import Repository, StoredVersion

_NO_ROWS = IndexRows()


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of a write: the version now current, and whether it created the resource."""

    version: StoredVersion
    # False also when a conditional create found its match and wrote nothing.
    created: bool
    # Warnings about what was written (OperationOutcome issues).
    issues: tuple[Issue, ...] = ()
    # What answering with the version releases to an agency that does not own it (a
    # conditional create answered with the record it matched).
    release: Release = NOTHING


@dataclass(frozen=True, slots=True)
class Released:
    """A version read, and what reading it released to an agency that does not own it."""

    version: StoredVersion
    release: Release


class ResourceService:
    """Create, read, update, patch, delete and conditional variants for any resource type."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        settings: Settings,
        disclosures: DisclosureLog,
        pipeline: WritePipeline,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._disclosures = disclosures
        self._pipeline = pipeline

    # -- plumbing ----------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The database engine (bundles open one transaction around several writes)."""
        return self._engine

    @property
    def disclosures(self) -> DisclosureLog:
        """The accounting of disclosures (services that release records log them there)."""
        return self._disclosures

    def new_id(self) -> str:
        """A fresh server-assigned id."""
        return self._clock.new_id()

    def _uow(
        self, caller: Caller, *, write: bool, single_read: bool = False
    ) -> AbstractContextManager[Repository]:
        return transaction(
            self._engine,
            write=write,
            single_read=single_read,
            scope=self.scope(caller),
        )

    def scope(self, caller: Caller) -> AccessScope | None:
        """The caller's access scope now (None: the unconfined operator)."""
        return scope_for(caller.agency, self._clock.now())

    def _parse(self, body: bytes) -> Any:
        return parse_json(body, max_depth=self._settings.max_json_depth)

    def context(self, caller: Caller) -> Context:
        """What parsing conditional criteria needs: the base URL, now, and the caller's
        access scope, so that chains and _has in criteria pass only through what the
        caller may see (a hidden record answers a conditional write as a missing one)."""
        now = self._clock.now()
        return Context(
            own_base=self._settings.base_url,
            now=now,
            scope=scope_for(caller.agency, now),
            through=searched_through(caller),
        )

    def _index(self, resource_type: str, resource: dict[str, Any]) -> IndexRows:
        return self._pipeline.index(resource_type, resource)

    def may_choose_ids(self, caller: Caller) -> bool:
        """Whether the caller may create a record with an id it chose (WritePipeline)."""
        return self._pipeline.may_choose_ids(caller)

    @staticmethod
    def _result(written: Written) -> WriteResult:
        assert written.version is not None
        return WriteResult(written.version, created=written.created, issues=written.issues)

    # -- create ------------------------------------------------------------------------
    def create(
        self,
        *,
        caller: Caller,
        resource_type: str,
        body: bytes,
        if_none_exist: Sequence[tuple[str, str]] | None = None,
    ) -> WriteResult:
        """create and conditional create (spec http.html#create, #ccreate)."""
        check_type_and_id(resource_type)
        resource = check_resource(self._parse(body), resource_type=resource_type, resource_id=None)
        index = self._index(resource_type, resource)
        parsed = (
            parse_criteria(resource_type, if_none_exist, self.context(caller))
            if if_none_exist is not None
            else None
        )
        with self._uow(caller, write=True) as repo:
            if parsed is not None:
                repo.lock_type(resource_type, exclusive=True)
            return self.create_in(
                repo, caller, resource_type, resource, index=index, criteria=parsed
            )

    def create_in(
        self,
        repo: Repository,
        caller: Caller,
        resource_type: str,
        resource: dict[str, Any],
        *,
        index: IndexRows | None = None,
        criteria: Criteria | None = None,
        resource_id: str | None = None,
    ) -> WriteResult:
        """Create inside an open write transaction; with criteria the caller holds the type
        lock exclusively. A conditional create that finds its match returns it unwritten."""
        if criteria is not None:
            existing = self.find_one(repo, resource_type, criteria, "If-None-Exist")
            if existing is not None:
                # The match is answered with its body: a release like a read.
                release = self._disclosures.record(caller, [existing], "read", repo=repo)
                return WriteResult(existing, created=False, release=release)
        change = Change(
            caller,
            "create",
            resource_type,
            resource_id or self._clock.new_id(),
            resource=resource,
            index=index,
        )
        return self._result(self._pipeline.run(repo, change))

    @staticmethod
    def find_one(
        repo: Repository, resource_type: str, criteria: Criteria, what: str
    ) -> StoredVersion | None:
        """The one live resource matching conditional criteria, None, or 412 for several."""
        matches = repo.find_ids(resource_type, criteria.conditions, limit=2)
        if len(matches) > 1:
            raise PreconditionFailed(
                f"{what} criteria {criteria.canonical} match more than one resource"
            )
        if not matches:
            return None
        return repo.current(resource_type, matches[0])

    # -- read --------------------------------------------------------------------------
    def read(self, *, caller: Caller, resource_type: str, resource_id: str) -> Released:
        """read (spec http.html#read): 404 if never existed (or the caller may not see it),
        410 if deleted; a release to another agency is recorded."""
        check_type_and_id(resource_type, resource_id)
        with self._uow(caller, write=False, single_read=True) as repo:
            version = self.read_in(repo, resource_type, resource_id)
            release = self._disclosures.record(caller, [version], "read", repo=repo)
        return Released(version, release)

    @staticmethod
    def read_in(repo: Repository, resource_type: str, resource_id: str) -> StoredVersion:
        """read inside an open transaction (a GET entry of a transaction Bundle)."""
        current, visible = repo.current_checked(resource_type, resource_id)
        if current is None or not visible:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            raise Gone(
                f"{resource_type}/{resource_id} was deleted",
                headers={"ETag": etag(current.version_id)},
            )
        return current

    def vread(
        self,
        *,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        version_id: str,
    ) -> Released:
        """vread (spec http.html#vread); a release to another agency is recorded."""
        check_type_and_id(resource_type, resource_id)
        with self._uow(caller, write=False, single_read=True) as repo:
            version = self.vread_in(repo, resource_type, resource_id, version_id)
            release = self._disclosures.record(caller, [version], "vread", repo=repo)
        return Released(version, release)

    @staticmethod
    def vread_in(
        repo: Repository, resource_type: str, resource_id: str, version_id: str
    ) -> StoredVersion:
        """vread inside an open transaction."""
        try:
            number = ascii_int(version_id, minimum=1)
        except ValueError as exc:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id!r}") from exc
        version = repo.version(resource_type, resource_id, number)
        if version is None or not repo.is_visible(resource_type, resource_id):
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id}")
        if version.deleted:
            raise Gone(f"Version {version_id} of {resource_type}/{resource_id} is a deletion")
        return version

    # -- update ------------------------------------------------------------------------
    def update(
        self,
        *,
        caller: Caller,
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
        index = self._index(resource_type, resource)
        with self._uow(caller, write=True) as repo:
            return self.update_in(
                repo, caller, resource_type, resource_id, resource, if_match, "PUT", index=index
            )

    def update_in(
        self,
        repo: Repository,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        if_match: int | None,
        method: str = "PUT",
        *,
        index: IndexRows | None = None,
    ) -> WriteResult:
        """Update (or create with this id) inside an open write transaction."""
        change = Change(
            caller,
            "update",
            resource_type,
            resource_id,
            resource=resource,
            if_match=if_match,
            index=index,
            method=method,
        )
        return self._result(self._pipeline.run(repo, change))

    def conditional_update(
        self,
        *,
        caller: Caller,
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
        index = self._index(resource_type, resource)
        parsed = parse_criteria(resource_type, criteria, self.context(caller))
        with self._uow(caller, write=True) as repo:
            repo.lock_type(resource_type, exclusive=True)
            target = self.conditional_target(repo, caller, resource_type, parsed, body_id)
            resource["id"] = target
            return self.update_in(
                repo, caller, resource_type, target, resource, if_match, "PUT", index=index
            )

    def conditional_target(
        self,
        repo: Repository,
        caller: Caller,
        resource_type: str,
        criteria: Criteria,
        body_id: str | None,
    ) -> str:
        """The id a conditional update writes to (spec http.html#cond-update): the one match
        the caller can see, else the body's id (409 if the caller can see that id and it did
        not match; refused like a missing id when the caller may not choose ids or the id
        is hidden), else a new id."""
        match = self.find_one(repo, resource_type, criteria, "Conditional update")
        if match is not None:
            if body_id is not None and body_id != match.id:
                raise InvalidRequest(
                    f"The resource id {body_id!r} differs from the matched resource {match.id!r}",
                    expression=(f"{resource_type}.id",),
                )
            return match.id
        if body_id is None:
            return self._clock.new_id()
        stored, existing = self._pipeline.seen(repo, caller, resource_type, body_id)
        if existing is not None and not existing.deleted:
            # No match yet the id exists: updating it would overwrite a record the criteria
            # did not select (spec http.html#cond-update: 409).
            raise Conflict(
                f"No {resource_type} matches {criteria.canonical}, but {resource_type}/"
                f"{body_id} exists; refusing to overwrite it"
            )
        if existing is None and not self.may_choose_ids(caller):
            # Whether the id is free or taken by a hidden record, the same refusal.
            raise InvalidRequest(
                f"No {resource_type} matches {criteria.canonical}, and an agency does not "
                f"choose ids: leave Resource.id out to create (the server assigns it)",
                expression=(f"{resource_type}.id",),
            )
        if existing is None and stored is not None:
            raise Conflict(
                f"No {resource_type} matches {criteria.canonical}, but {resource_type}/"
                f"{body_id} is taken; refusing to overwrite it"
            )
        return body_id

    # -- patch -------------------------------------------------------------------------
    def patch(
        self,
        *,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        body: bytes,
        if_match: int | None = None,
    ) -> WriteResult:
        """patch with a JSON Patch document (spec http.html#patch, RFC 6902)."""
        check_type_and_id(resource_type, resource_id)
        patch = self.parse_patch(body)
        # The patch applies to the version current under the lock, so concurrent patches
        # serialise instead of failing; validation runs inside the lock only for PATCH.
        with self._uow(caller, write=True) as repo:
            return self.patch_in(repo, caller, resource_type, resource_id, patch, if_match)

    def parse_patch(self, body: bytes | Any, *, parsed: bool = False) -> JsonPatchDocument:
        """A JSON Patch document (RFC 6902), checked for shape before any lock is taken."""
        operations = body if parsed else self._parse(body)
        if not isinstance(operations, list):
            raise StructureError("A JSON Patch document is an array of operations (RFC 6902)")
        try:
            patch = jsonpatch.JsonPatch(operations)
        except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:
            raise StructureError(f"Invalid JSON Patch document: {exc}") from exc
        except AttributeError as exc:
            raise StructureError("Invalid JSON Patch document: operations must be objects") from exc
        return JsonPatchDocument(patch, operations)

    def patch_in(
        self,
        repo: Repository,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        patch: JsonPatchDocument,
        if_match: int | None,
    ) -> WriteResult:
        """Apply a patch inside an open write transaction: to the version current under
        the lock, so concurrent patches serialise instead of failing. Access comes before
        anything reads the record: a patch applied to a hidden record would answer with
        what its test operations or binding errors reveal."""
        change = Change(caller, "patch", resource_type, resource_id, patch=patch, if_match=if_match)
        return self._result(self._pipeline.run(repo, change))

    # -- delete ------------------------------------------------------------------------
    def delete(
        self,
        *,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        if_match: int | None = None,
    ) -> StoredVersion | None:
        """delete (spec http.html#delete): idempotent; history keeps the deletion."""
        check_type_and_id(resource_type, resource_id)
        with self._uow(caller, write=True) as repo:
            return self.delete_in(repo, caller, resource_type, resource_id, if_match)

    def delete_in(
        self,
        repo: Repository,
        caller: Caller,
        resource_type: str,
        resource_id: str,
        if_match: int | None,
    ) -> StoredVersion | None:
        """Delete inside an open write transaction (None: it never existed)."""
        change = Change(caller, "delete", resource_type, resource_id, if_match=if_match)
        return self._pipeline.run(repo, change).version

    def conditional_delete(
        self, *, caller: Caller, resource_type: str, criteria: Sequence[tuple[str, str]]
    ) -> StoredVersion | None:
        """Conditional delete (spec http.html#cdelete): one match deleted, several -> 412."""
        check_type_and_id(resource_type)
        parsed = parse_criteria(resource_type, criteria, self.context(caller))
        with self._uow(caller, write=True) as repo:
            repo.lock_type(resource_type, exclusive=True)
            match = self.find_one(repo, resource_type, parsed, "Conditional delete")
            if match is None:
                return None
            return self.delete_in(repo, caller, resource_type, match.id, None)
