"""The referral Task rules on every write path: a WriteRule of the write pipeline.

PUT, PATCH, conditional update, DELETE, transaction and batch entries, the /referrals
endpoints and the Task operations all write through the pipeline (app/services/writes.py),
so they all meet the same rules (app/fhir/referral.py) and the same side effects, in the
writing transaction: the ServiceRequest follows its Task.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from app.clock import Clock, format_instant
from app.fhir.errors import Conflict
from app.fhir.jsonio import loads_stored
from app.fhir.referral import (
    OPEN,
    SERVICE_REQUEST_STATUS,
    Party,
    check_delete,
    check_elements,
    check_output,
    check_party,
    check_reason,
    check_transition,
    check_unconditional,
    focus_service_request,
    is_referral,
    reference_of,
    stamp_referral,
)
from app.security.caller import Caller
from app.services.rules.access import agency_standing_for
from app.services.writes import FollowUp, WriteEvent
from app.storage.repository import Repository, StoredVersion

log = logging.getLogger(__name__)

# The referral Tasks of one ServiceRequest looked at when the request changes (SDOHCC: one).
_MAX_TASKS = 100


def body_of(version: StoredVersion | None) -> dict[str, Any] | None:
    """The JSON of a live version, None for none or a deletion."""
    if version is None or version.deleted or version.body is None:
        return None
    body: dict[str, Any] = loads_stored(version.body)
    return body


def agency_of(repo: Repository, element: Any, base_url: str) -> str | None:
    """The Organization a Task.requester / Task.owner stands for: itself, or the
    organization of a PractitionerRole (providedBy of a HealthcareService)."""
    ref = reference_of(element)
    if ref is None:
        return None
    if ref.startswith(base_url + "/"):
        ref = ref[len(base_url) + 1 :]
    kind, _, rid = ref.partition("/")
    if not rid or "/" in rid:
        return None
    # One step only: an Organization is an agency; a role's organization is not a role.
    return agency_standing_for(repo, (kind, rid))


def parties_of(
    repo: Repository, caller: Caller, task: dict[str, Any], base_url: str
) -> frozenset[Party]:
    """The sides of this referral the caller acts as (the operator acts for both)."""
    if caller.agency is None:
        return frozenset({Party.OPERATOR})
    found = set()
    if agency_of(repo, task.get("requester"), base_url) == caller.agency:
        found.add(Party.REQUESTER)
    if agency_of(repo, task.get("owner"), base_url) == caller.agency:
        found.add(Party.OWNER)
    return frozenset(found)


class ReferralRules:
    """WriteRule enforcing the referral Task state machine (issue 5, SDOH CC IG)."""

    def __init__(self, *, clock: Clock, base_url: str) -> None:
        self._clock = clock
        self._base_url = base_url

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:
        """Refuse a write that breaks a referral rule; stamp the server-owned elements."""
        if event.resource_type == "ServiceRequest":
            self._check_request(repo, event)
            return False
        if event.resource_type != "Task":
            return False
        old = body_of(event.current)
        new = event.resource
        old_is_referral = is_referral(old)
        if not old_is_referral and not is_referral(new):
            return False
        base = old if old_is_referral else None
        subject = base if base is not None else new
        assert subject is not None
        parties = parties_of(repo, event.caller, subject, self._base_url)
        check_party(parties, who=event.caller.who)
        if old is not None and event.if_match is None:
            check_unconditional(old, new, parties)
        if new is None:
            assert base is not None
            check_delete(str(base.get("status")), parties)
            return False
        check_transition(
            str(base.get("status")) if base is not None else None, str(new.get("status")), parties
        )
        check_output(base, new, parties)
        if base is not None:
            check_elements(base, new, parties)
        warning = check_reason(new)
        if warning is not None:
            event.issues.append(warning)
        stamp_referral(
            base,
            new,
            now=format_instant(self._clock.now()),
            agency=event.caller.agency,
            client_id=event.caller.client_id,
        )
        return True

    def _open_referrals(self, repo: Repository, request_id: str) -> list[StoredVersion]:
        """The open referral Tasks whose focus is this ServiceRequest, each locked."""
        ids = repo.referencing("Task", ["focus"], "ServiceRequest", [request_id], _MAX_TASKS)
        found = []
        for task_id in sorted(ids):
            # Locked before it is read: a follow-up may write what this read.
            repo.lock_for_write("Task", task_id)
            version = repo.visible_current("Task", task_id)
            task = body_of(version)
            if version is not None and is_referral(task) and task and task.get("status") in OPEN:
                found.append(version)
        return found

    def _check_request(self, repo: Repository, event: WriteEvent) -> None:
        """A ServiceRequest's status follows its open referral: only the requesting side
        (or the operator) ends the request itself (revoked cancels the referral, below); the
        receiving agency ends it by declining, failing or cancelling the Task."""
        old, new = body_of(event.current), event.resource
        if old is None or new is None or old.get("status") == new.get("status"):
            return
        for version in self._open_referrals(repo, event.resource_id):
            task = body_of(version)
            assert task is not None
            if SERVICE_REQUEST_STATUS.get(str(task.get("status"))) == new.get("status"):
                continue
            parties = parties_of(repo, event.caller, task, self._base_url)
            if new.get("status") == "revoked" and parties & {Party.REQUESTER, Party.OPERATOR}:
                continue
            raise Conflict(
                f"ServiceRequest/{event.resource_id} follows its open referral Task/"
                f"{version.id} ({task.get('status')}): work the referral instead (decline, "
                "fail or cancel it), and the request follows",
                expression=("ServiceRequest.status",),
            )

    def after_write(
        self,
        repo: Repository,
        event: WriteEvent,
        version: StoredVersion,  # noqa: ARG002 (the WriteRule signature)
    ) -> Sequence[FollowUp]:
        """The ServiceRequest follows a referral Task's status (a follow-up write).

        Only on status changes of an existing referral: a new referral arrives with its
        ServiceRequest (POST /referrals checks it is active), and a transaction writes
        the Task before entries later in it may have created the ServiceRequest.
        """
        if event.resource_type == "ServiceRequest":
            return self._cancel_for_revoked(repo, event)
        if event.resource_type != "Task" or event.resource is None or event.current is None:
            return ()
        new, old = event.resource, body_of(event.current)
        if not is_referral(new) or old is None or old.get("status") == new.get("status"):
            return ()
        target = SERVICE_REQUEST_STATUS.get(str(new.get("status")))
        focus = focus_service_request(new)
        if target is None or focus is None:
            return ()
        sr_id = focus.partition("/")[2]
        # Locked before it is read: the follow-up writes what this read.
        repo.lock_for_write("ServiceRequest", sr_id)
        # As the caller sees it: a request it may not see is one that is gone (a Task whose
        # focus is another agency's request must not learn that the request exists).
        current = repo.visible_current("ServiceRequest", sr_id)
        request = body_of(current)
        if current is None or request is None:
            log.info("referral Task/%s: its ServiceRequest/%s is gone", event.resource_id, sr_id)
            return ()
        if request.get("status") == target:
            return ()
        request["status"] = target
        return (FollowUp("ServiceRequest", sr_id, request, if_match=current.version_id),)

    def _cancel_for_revoked(self, repo: Repository, event: WriteEvent) -> Sequence[FollowUp]:
        """A request its requester revoked leaves no open referral: each is cancelled, in
        the same transaction (SDOHCC: the Task follows its ServiceRequest's end)."""
        old, new = body_of(event.current), event.resource
        if new is None or new.get("status") != "revoked":
            return ()
        if old is not None and old.get("status") == "revoked":
            return ()
        follow_ups = []
        for version in self._open_referrals(repo, event.resource_id):
            task = body_of(version)
            assert task is not None
            task["status"] = "cancelled"
            task["statusReason"] = {
                "text": f"The request this referral carries out (ServiceRequest/"
                f"{event.resource_id}) was revoked"
            }
            follow_ups.append(FollowUp("Task", version.id, task, if_match=version.version_id))
        return follow_ups


__all__ = ["ReferralRules", "agency_of", "body_of", "parties_of"]
