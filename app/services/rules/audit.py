"""The record of every write: its AuditEvent row and its Provenance, queued on the write's
own transaction (the last step of the write pipeline, app/services/writes.py); they are
inserted at commit, one statement per table per transaction, and roll back with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from app.config import Settings
from app.fhir.audit import (
    AuditFacts,
    is_server_provenance,
    provenance,
)
from app.fhir.errors import Forbidden, MethodNotAllowed
from app.fhir.jsonio import loads_stored
from app.fhir.resource import stamp
from app.search.extract import extract_index
from app.services.request_audit import audit_row, current_request, patients_of, record_id
from app.services.writes import FollowUp, WriteEvent
from app.storage.repository import Repository, StoredVersion
from app.storage.rows import new_rows

_WRITE_INTERACTIONS: Final = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


# --- writes: the same transaction --------------------------------------------------------


class WriteRecorder:
    """The write pipeline's record (AuditEvent and Provenance of every write, in the
    write's transaction) and its rule that refuses writes of AuditEvents (405) and changes
    to server-written Provenance (403)."""

    def __init__(self, *, settings: Settings) -> None:
        self._server = settings.base_url
        self._provenance = settings.provenance

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:  # noqa: ARG002
        """AuditEvents are written by the server alone (BALP: the log is not editable)."""
        if event.resource_type == "AuditEvent":
            raise MethodNotAllowed(
                "AuditEvents are recorded by the server and cannot be created, updated or "
                "deleted through the API",
                headers={"Allow": "GET"},
            )
        if event.resource_type == "Provenance":
            current = event.current
            if (
                current is not None
                and current.body is not None
                and is_server_provenance(loads_stored(current.body))
            ):
                raise Forbidden(
                    f"Provenance/{event.resource_id} was recorded by the server and "
                    "cannot be changed or deleted"
                )
            if event.resource is not None and is_server_provenance(event.resource):
                raise Forbidden(
                    "Provenance carrying the server's tag can only be recorded by the server"
                )
        return False

    def after_write(
        self,
        repo: Repository,  # noqa: ARG002 (the WriteRule signature)
        event: WriteEvent,  # noqa: ARG002
        version: StoredVersion,  # noqa: ARG002
    ) -> Sequence[FollowUp]:
        """Nothing: the record of a write is the pipeline's last step (record)."""
        return ()

    def record(self, repo: Repository, event: WriteEvent, version: StoredVersion) -> None:
        """Queue the write's AuditEvent row and its Provenance on the transaction."""
        created = event.current is None or event.current.deleted
        interaction = _WRITE_INTERACTIONS.get(event.method, "update")
        body = event.resource
        if body is None and event.current is not None and event.current.body is not None:
            body = loads_stored(event.current.body)
        patients = tuple(patients_of(event.resource_type, event.resource_id, body, self._server))
        target = f"{event.resource_type}/{event.resource_id}/_history/{version.version_id}"
        state = current_request()
        caller = event.caller
        facts = AuditFacts(
            interaction=interaction,
            recorded=version.last_updated,
            status=201 if created and event.method != "DELETE" else 200,
            agency=caller.agency,
            client_id=caller.client_id,
            person=caller.person,
            address=state.address if state else None,
            entity=target,
            entity_type=event.resource_type,
            patients=patients,
            request_id=state.request_id if state else None,
        )
        row = audit_row(facts, record_id(), self._server, (event.resource_type, event.resource_id))
        repo.append_audit_later([row])
        if state is not None:
            state.writes += 1
        if self._provenance:
            self._queue_provenance(repo, event, version, target, created)

    def _queue_provenance(
        self,
        repo: Repository,
        event: WriteEvent,
        version: StoredVersion,
        target: str,
        created: bool,
    ) -> None:
        # A record of the write, not a write of its own: no rule applies to it, nothing in
        # the transaction reads it back, and it is queued with the audit row.
        interaction = "delete" if version.deleted else ("create" if created else "update")
        resource = provenance(
            target=target,
            interaction=interaction,
            recorded=version.last_updated,
            agency=event.caller.agency,
            client_id=event.caller.client_id,
            person=event.caller.person,
        )
        resource_id = record_id()
        body = stamp(
            resource, resource_id=resource_id, version_id=1, last_updated=version.last_updated
        )
        index = extract_index("Provenance", resource, own_base=self._server)
        rows = new_rows("Provenance", resource_id, 1, version.last_updated, "POST", body, index)
        # The Provenance belongs to whoever owns its target and is as sensitive (the agency
        # access rules: docs/threat-model.md), as the access rule left it.
        owner = event.owner if event.owner is not None else (event.caller.agency, False)
        repo.append_new_later(rows, owner)
