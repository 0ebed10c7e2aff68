"""The one write pipeline: every change to a resource, from every route (REST, PATCH,
transaction and batch entries, referral and case endpoints, the notifier), runs these
steps in this order inside the caller's transaction:

1. locks: the resource's type (shared; a conditional write takes it exclusively before it
   matches) and the resource itself, in one round trip; the pipeline remembers what the
   transaction holds, so nothing upstream passes locks around;
2. access: what the caller may know of the current version. A record the caller may not
   see is, to every later step, a record that does not exist (docs/threat-model.md);
3. preconditions: If-Match (spec http.html#concurrency), existence, and whether the caller
   may change or delete the record (app/security/policy.py, may_change);
4. content: a JSON Patch applied to the current version and the result validated;
5. the rules' checks, in the order app/services/container.py declares them: each may
   refuse the write or amend what is stored (labels, referral stamps, a status);
6. the version, its history row and its index rows stored;
7. the rules' after-steps: owner rows and referral shares, outbox rows, and follow-up
   writes (a score Observation, the ServiceRequest that follows its referral Task), which
   run through this same pipeline as the same caller - no rule calls a service back;
8. the write's record: its AuditEvent row and Provenance, queued on the transaction and
   inserted at commit in one statement per table however many writes the transaction
   holds (Repository.append_later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import jsonpatch

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import Forbidden, Gone, Issue, NotFound, PreconditionFailed, ResourceInvalid
from app.fhir.jsonio import loads_stored
from app.fhir.resource import stamp
from app.fhir.validation import check_resource
from app.search.extract import extract_index
from app.security.caller import Caller
from app.security.policy import may_change, scope_for
from app.storage.index import IndexRows
from app.storage.repository import Repository, StoredVersion


@dataclass(frozen=True, slots=True)
class JsonPatchDocument:
    """A parsed JSON Patch and its operations (kept to name them in errors)."""

    patch: jsonpatch.JsonPatch
    operations: list[Any]


@dataclass(slots=True)
class WriteEvent:
    """One resource write about to happen (or just done) inside a write transaction."""

    caller: Caller
    resource_type: str
    resource_id: str
    # The version current before this write (None: the resource is new).
    current: StoredVersion | None
    # The content to store (None: a deletion). Rules' checks may amend it in place.
    resource: dict[str, Any] | None
    method: str
    # The version the client named in If-Match (None: it named none).
    if_match: int | None = None
    # Warnings the rules have for the client (a referral naming what it does not share).
    issues: list[Issue] = field(default_factory=list)
    # The owner row once the access rule's after-step ran: (agency, sensitive), or None
    # for a record with none (the operator's unlabelled reference data).
    owner: tuple[str | None, bool] | None = None


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A write a rule asks for because of another one: same caller, same transaction.

    The server chose the id (derived from the record that caused it), so a follow-up
    creates the record when it does not exist and updates it when it does; resource None
    deletes it.
    """

    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None
    # The version the rule read, locked (None: it read none).
    if_match: int | None = None


class WriteRule(Protocol):
    """A rule every write passes through (step 5 and step 7)."""

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:
        """Refuse (raise a FHIRError) or amend event.resource; True when it was amended."""
        ...

    def after_write(
        self, repo: Repository, event: WriteEvent, version: StoredVersion
    ) -> Sequence[FollowUp]:
        """Rows of other tables in step with the write, and the writes it causes."""
        ...


class WriteRecords(Protocol):
    """Step 8: what the server records of every write (app/services/rules/audit.py)."""

    def record(self, repo: Repository, event: WriteEvent, version: StoredVersion) -> None:
        """Queue the write's AuditEvent row and Provenance on the transaction."""
        ...


Kind = Literal["create", "update", "patch", "delete", "follow"]


@dataclass(frozen=True, slots=True)
class Change:
    """What one write asks for.

    create: a new resource (resource_id chosen by the server, or by the caller where it
    may choose ids); update: replace resource_id's content (or create it with that id);
    patch: apply a JSON Patch to resource_id; delete: delete resource_id; follow: a
    rule's follow-up (create or update with a server-derived id, or delete).
    """

    caller: Caller
    kind: Kind
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None = None
    patch: JsonPatchDocument | None = None
    if_match: int | None = None
    # The index rows of resource when they were extracted before the transaction opened.
    index: IndexRows | None = None
    method: str = ""


@dataclass(frozen=True, slots=True)
class Written:
    """What the pipeline did: the version now current (None: a delete of nothing) and
    whether the write created the resource."""

    version: StoredVersion | None
    created: bool
    issues: tuple[Issue, ...] = ()


_METHODS: dict[Kind, str] = {
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "follow": "PUT",
}


class WritePipeline:
    """Runs a Change through the steps above; the rules and the record are given once."""

    def __init__(
        self,
        *,
        clock: Clock,
        settings: Settings,
        rules: Sequence[WriteRule],
        records: WriteRecords | None,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._rules = tuple(rules)
        self._records = records

    # -- the steps -----------------------------------------------------------------------
    def run(self, repo: Repository, change: Change) -> Written:
        """Run one change (and the follow-ups it causes) inside repo's transaction."""
        caller, resource_type, resource_id = change.caller, change.resource_type, change.resource_id
        # 1. locks. A new resource's id is fresh: only the type lock orders it.
        new = change.kind == "create"
        repo.lock_for_write(resource_type, None if new else resource_id)
        # 2. access
        stored, current = (
            (None, None) if new else self.seen(repo, caller, resource_type, resource_id)
        )
        # 3. preconditions and 4. content
        if self._nothing_to_delete(change, current):
            return Written(current, created=False)
        resource = self._admitted(repo, change, stored, current)
        index = change.index if change.kind in ("create", "update") else None
        method = _method(change, resource, current)
        event = WriteEvent(
            caller, resource_type, resource_id, current, resource, method, change.if_match
        )
        # 5. the rules' checks
        amended = False
        for rule in self._rules:
            amended = rule.before_write(repo, event) or amended
        resource = event.resource
        if resource is not None and (amended or index is None):
            index = self.index(resource_type, resource)
        # 6. the version
        version_id = current.version_id + 1 if current else 1
        now = self._now_after(current)
        body = (
            stamp(resource, resource_id=resource_id, version_id=version_id, last_updated=now)
            if resource is not None
            else None
        )
        version = StoredVersion(
            resource_type, resource_id, version_id, now, resource is None, body, event.method
        )
        # Every index table of the resource is rewritten: an edit also repairs rows an
        # earlier extractor wrote (an upgrade, an import), which comparing today's
        # extraction of the old and new bodies would keep.
        repo.write_version(version=version, exists=current is not None, index=index or IndexRows())
        # 7. the rules' after-steps and the writes they cause
        follow_ups: list[FollowUp] = []
        for rule in self._rules:
            follow_ups.extend(rule.after_write(repo, event, version))
        # 8. the record
        if self._records is not None:
            self._records.record(repo, event, version)
        issues = list(event.issues)
        for follow in follow_ups:
            done = self.run(
                repo,
                Change(
                    caller,
                    "follow",
                    follow.resource_type,
                    follow.resource_id,
                    resource=follow.resource,
                    if_match=follow.if_match,
                ),
            )
            issues.extend(done.issues)
        created = current is None or current.deleted
        return Written(version, created=created and resource is not None, issues=tuple(issues))

    # -- step 3 and 4 --------------------------------------------------------------------
    def _nothing_to_delete(self, change: Change, current: StoredVersion | None) -> bool:
        """A deletion of what is missing or already deleted: nothing to write (spec
        http.html#delete, idempotent); If-Match is still checked."""
        deleting = change.kind == "delete" or (change.kind == "follow" and change.resource is None)
        if not deleting:
            return False
        self.check_if_match(current, change.if_match)
        return current is None or current.deleted

    def _admitted(
        self,
        repo: Repository,
        change: Change,
        stored: StoredVersion | None,
        current: StoredVersion | None,
    ) -> dict[str, Any] | None:
        """The content to store (None: a deletion) once the change's preconditions hold."""
        caller, resource_type, resource_id = change.caller, change.resource_type, change.resource_id
        if change.kind == "update":
            self.check_if_match(current, change.if_match)
            if current is None:
                if stored is not None or not self.may_choose_ids(caller):
                    raise self.unknown(caller, resource_type, resource_id)
            else:
                self.check_may_change(repo, caller, current, deleting=False)
        elif change.kind == "patch":
            if current is None:
                raise NotFound(f"{resource_type}/{resource_id} is not known")
            if current.deleted or current.body is None:
                raise Gone(f"{resource_type}/{resource_id} was deleted")
            self.check_if_match(current, change.if_match)
            self.check_may_change(repo, caller, current, deleting=False)
            assert change.patch is not None
            patched = _apply_patch(change.patch, loads_stored(current.body))
            return check_resource(patched, resource_type=resource_type, resource_id=resource_id)
        elif change.resource is None:  # a deletion (delete, or a follow-up's) of a live record
            assert current is not None
            self.check_may_change(repo, caller, current, deleting=True)
        elif change.kind == "follow":
            if change.if_match is not None:
                self.check_if_match(current, change.if_match)
            if current is None and stored is not None:
                # Derived from a record the caller wrote, yet kept where it cannot see.
                raise self.unknown(caller, resource_type, resource_id)
            if current is not None:
                # A deleted record too: recreating it is a change of it (as an update).
                self.check_may_change(repo, caller, current, deleting=False)
        return change.resource

    # -- step 2 and 3 --------------------------------------------------------------------
    def seen(
        self, repo: Repository, caller: Caller, resource_type: str, resource_id: str
    ) -> tuple[StoredVersion | None, StoredVersion | None]:
        """(stored, seen): the current row, and what the caller may know of it. A record
        the caller may not see is None, exactly like one that never existed, so every later
        step (If-Match, patches, validation, update-as-create) answers as for a missing one
        (docs/threat-model.md, "No existence leak")."""
        if caller.agency is None:
            stored = repo.current(resource_type, resource_id)
            return stored, stored
        scope = repo.scope
        if scope is not None and scope.agency == caller.agency:
            stored, visible = repo.current_checked(resource_type, resource_id)
        else:
            stored = repo.current(resource_type, resource_id)
            visible = stored is not None and repo.is_visible(
                resource_type, resource_id, scope=scope_for(caller.agency, self._clock.now())
            )
        return stored, stored if visible else None

    def check_may_change(
        self, repo: Repository, caller: Caller, current: StoredVersion, *, deleting: bool
    ) -> None:
        """403 unless the caller may change (or delete) a record it can see: its own, or a
        referral's shared Task, ServiceRequest, Goal or CarePlan (app/security/policy.py)."""
        agency = caller.agency
        if agency is None:
            return
        key = (current.resource_type, current.id)
        owner = current.owner if current.owner_read else repo.owner(*key)
        if may_change(
            *key,
            agency=agency,
            owner=owner,
            deleting=deleting,
            shared=lambda: bool(repo.shared_with(agency, *key)),
        ):
            return
        label = f"{key[0]}/{key[1]}"
        verb = "delete" if deleting else "change"
        if owner is None:
            raise Forbidden(f"{label} is kept by the server's operator; {agency} may not {verb} it")
        raise Forbidden(
            f"{label} belongs to another agency; {agency} may read it through a referral "
            f"but not {verb} it"
        )

    def may_choose_ids(self, caller: Caller) -> bool:
        """Whether the caller may create a record with an id it chose (update-as-create,
        spec http.html#update). Agencies may not unless the operator allows it
        (CASEBRIDGE_AGENCY_UPDATE_CREATE): otherwise a PUT to an id taken by a record the
        agency cannot see could not answer as a PUT to a free id does."""
        return caller.agency is None or self._settings.agency_update_create

    def unknown(self, caller: Caller, resource_type: str, resource_id: str) -> NotFound:
        """The answer to a write naming an id the caller cannot see (missing or hidden)."""
        hint = (
            ""
            if self.may_choose_ids(caller)
            else "; an agency creates records with POST (the server assigns their ids)"
        )
        return NotFound(f"{resource_type}/{resource_id} is not known{hint}")

    @staticmethod
    def check_if_match(current: StoredVersion | None, if_match: int | None) -> None:
        """412 when If-Match names another version than the current one."""
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

    # -- helpers -------------------------------------------------------------------------
    def index(self, resource_type: str, resource: dict[str, Any]) -> IndexRows:
        """The search index rows of a resource's content."""
        return extract_index(resource_type, resource, own_base=self._settings.base_url)

    def _now_after(self, previous: StoredVersion | None) -> datetime:
        now = self._clock.now()
        # lastUpdated never goes backwards within a resource's history, even across hosts.
        if previous is not None and now <= previous.last_updated:
            now = previous.last_updated + timedelta(microseconds=1)
        return now


def _method(change: Change, resource: dict[str, Any] | None, current: StoredVersion | None) -> str:
    """The HTTP method the version records (a follow-up creating its record is a POST)."""
    if change.method:
        return change.method
    if resource is None:
        return "DELETE"
    if change.kind == "follow" and current is None:
        return "POST"
    return _METHODS[change.kind]


def _apply_patch(patch: JsonPatchDocument, target: Any) -> Any:
    """Apply a JSON Patch; failures name the operation, never echo the record (it holds PHI)."""
    try:
        return patch.patch.apply(target)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
    ) as exc:
        kind = (
            "a test operation failed"
            if isinstance(exc, jsonpatch.JsonPatchTestFailed)
            else ("a path does not exist or conflicts with the resource")
        )
        paths = ", ".join(
            f"{op.get('op')} {op.get('path')}" for op in patch.operations if isinstance(op, dict)
        )
        raise ResourceInvalid(f"The patch cannot be applied: {kind} ({paths})"[:500]) from exc


__all__ = [
    "Change",
    "FollowUp",
    "JsonPatchDocument",
    "WriteEvent",
    "WritePipeline",
    "WriteRecords",
    "WriteRule",
    "Written",
]
