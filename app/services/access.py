"""Tenancy, referral shares, consent and labels on every write; disclosure accounting on
every release (docs/threat-model.md).

The read side of the rule is SQL (app/storage/access.py) that every listing applies through
the Repository's scope; this module keeps the tables that rule reads in step with the
resources, in the same transaction as each write, and records what is released.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import Forbidden, NotFound
from app.fhir.jsonio import loads_stored
from app.security.policy import (
    add_aod_labels,
    consent_grants,
    is_aod_agency,
    is_referral_task,
    is_sensitive,
    labelable,
    labels_requested,
    owned,
    referral_grants,
    scope_for,
)
from app.services.resources import WriteEvent
from app.services.uow import transaction
from app.storage.repository import Repository, StoredVersion

# Resources a referral shares that the other agency may also change: the Task (under the
# referral state machine) and, as the referral's side effects, the request's status, the
# Goals it addressed and the CarePlan activity it belongs to. Only their owner deletes them.
SHARED_WRITABLE: Final = frozenset({"Task", "ServiceRequest", "Goal", "CarePlan"})


class AccessHook:
    """WriteHook: who may change what, AOD labels, owners, referral shares, consents."""

    def __init__(self, *, clock: Clock, own_base: str) -> None:
        self._clock = clock
        self._own_base = own_base

    # -- before ----------------------------------------------------------------------------
    def before_write(self, repo: Repository, event: WriteEvent) -> bool:
        """Refuse changes to another agency's records; add AOD labels where due."""
        agency = event.caller.agency
        if agency is not None and event.current is not None:
            self._check_may_change(repo, event, agency)
        resource = event.resource
        if resource is None or not labelable(event.resource_type):
            return False
        if labels_requested(resource) or self.is_aod(repo, agency):
            return add_aod_labels(resource)
        return False

    def _check_may_change(self, repo: Repository, event: WriteEvent, agency: str) -> None:
        key = (event.resource_type, event.resource_id)
        owner = repo.owner(*key)
        if owner is None or owner[0] == agency:
            return
        label = f"{event.resource_type}/{event.resource_id}"
        scope = scope_for(agency, self._clock.now())
        if not repo.is_visible(*key, scope=scope):
            # The same answer a read gives: no sign that the record exists.
            raise NotFound(f"{label} is not known")
        if (
            event.resource is not None
            and event.resource_type in SHARED_WRITABLE
            and repo.shared_with(agency, *key)
        ):
            return
        raise Forbidden(
            f"{label} belongs to another agency; {agency} may read it through a referral "
            "but not change or delete it"
        )

    @staticmethod
    def is_aod(repo: Repository, agency: str | None) -> bool:
        if agency is None:
            return False
        _, org_id = agency.split("/", 1)
        current = repo.current("Organization", org_id)
        body = loads_stored(current.body) if current is not None and current.body else None
        return is_aod_agency(body)

    # -- after -----------------------------------------------------------------------------
    def after_write(
        self,
        repo: Repository,
        event: WriteEvent,
        version: StoredVersion,  # noqa: ARG002 (the WriteHook signature)
    ) -> None:
        """Keep the owner row, the referral shares and the consent grants in step."""
        resource = event.resource
        sensitive = is_sensitive(resource)
        owner = repo.owner(event.resource_type, event.resource_id)
        if owner is None:
            agency = event.caller.agency
            if resource is not None and owned(
                event.resource_type, agency=agency, sensitive=sensitive
            ):
                repo.set_owner(
                    event.resource_type, event.resource_id, event.caller.agency, sensitive
                )
        elif resource is not None and owner[1] != sensitive:
            repo.set_owner(event.resource_type, event.resource_id, owner[0], sensitive)
        if event.resource_type == "Task":
            self.share_task(repo, event.resource_id, resource)
        elif event.resource_type == "ServiceRequest":
            task_ids = repo.referring_any("Task", "focus", "ServiceRequest", [event.resource_id])
            tasks = repo.current_many("Task", sorted(task_ids))
            self.share_tasks(
                repo, [(task_id, loads_stored(v.body)) for task_id, v in tasks.items() if v.body]
            )
        elif event.resource_type == "Consent":
            repo.replace_consent_grants(
                event.resource_id, consent_grants(resource, own_base=self._own_base)
            )

    def share_task(self, repo: Repository, task_id: str, task: dict[str, Any] | None) -> None:
        self.share_tasks(repo, [(task_id, task)])

    def share_tasks(
        self, repo: Repository, tasks: Sequence[tuple[str, dict[str, Any] | None]]
    ) -> None:
        """Replace what each Task shares (nothing unless it is a referral): the
        ServiceRequests they refer to read in one query, the grants in two statements."""
        referrals = [
            (task_id, task)
            for task_id, task in tasks
            if task is not None and is_referral_task(task, self._own_base)
        ]
        focus_ids = [task["focus"]["reference"].rsplit("/", 1)[-1] for _, task in referrals]
        requests = repo.current_many("ServiceRequest", focus_ids)
        roles: dict[tuple[str, str], str | None] = {}

        def organization_of(ref: tuple[str, str]) -> str | None:
            if ref[0] == "Organization":
                return f"Organization/{ref[1]}"
            if ref[0] != "PractitionerRole":
                return None
            if ref not in roles:
                role = repo.current(*ref)
                body = loads_stored(role.body) if role is not None and role.body else {}
                org = (body.get("organization") or {}).get("reference")
                found = isinstance(org, str) and org.startswith("Organization/")
                roles[ref] = org if found else None
            return roles[ref]

        grants: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id, _ in tasks}
        for (task_id, task), focus in zip(referrals, focus_ids, strict=True):
            current = requests.get(focus)
            request = loads_stored(current.body) if current is not None and current.body else None
            grants[task_id] = [
                grant.row()
                for grant in referral_grants(
                    task_id, task, request, own_base=self._own_base, organization_of=organization_of
                )
            ]
        repo.replace_task_grants(grants)


def rebuild_shares(
    engine: Engine,
    *,
    own_base: str,
    stored: Mapping[str, Collection[str]],
    page: int = 500,
) -> int:
    """Derive the referral shares and consent grants that the write path keeps in step, for
    resources stored without it (bulk load, import). stored: type -> ids of the resources
    stored. Covers the Tasks and Consents stored and the Tasks, stored earlier, that refer
    to a ServiceRequest stored. Returns how many Tasks and Consents were processed."""
    hook = AccessHook(clock=Clock(), own_base=own_base)
    tasks = set(stored.get("Task", ()))
    requests = set(stored.get("ServiceRequest", ()))
    if requests:
        with transaction(engine, write=False) as repo:
            tasks |= repo.referring_any("Task", "focus", "ServiceRequest", requests)
    done = 0
    task_ids = sorted(tasks)
    for start in range(0, len(task_ids), page):
        with transaction(engine, write=True) as repo:
            found = repo.live("Task", task_ids[start : start + page])
            hook.share_tasks(repo, [(v.id, loads_stored(v.body or b"{}")) for v in found])
        done += len(found)
    consent_ids = sorted(stored.get("Consent", ()))
    for start in range(0, len(consent_ids), page):
        with transaction(engine, write=True) as repo:
            found = repo.live("Consent", consent_ids[start : start + page])
            for v in found:
                grants = consent_grants(loads_stored(v.body or b"{}"), own_base=own_base)
                repo.replace_consent_grants(v.id, grants)
        done += len(found)
    return done


def is_aod_agency_in(engine: Engine, agency: str | None) -> bool:
    """Whether agency's Organization is registered as an AOD service."""
    if agency is None:
        return False
    with transaction(engine, write=False) as repo:
        return AccessHook.is_aod(repo, agency)
