"""Tenancy, referral shares, consent and labels on every write; disclosure accounting on
every release (docs/threat-model.md).

The read side of the rule is SQL (app/storage/access.py) that every listing applies through
the Repository's scope; this module keeps the tables that rule reads in step with the
resources, in the same transaction as each write, and records what is released.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import Forbidden, Issue
from app.fhir.jsonio import loads_stored
from app.security.policy import (
    AOD_LABELS,
    BELONGS_TO,
    DIRECTORY_TYPES,
    SHARED_REQUEST_ELEMENTS,
    Referral,
    add_aod_labels,
    changes_beyond,
    consent_grants,
    is_aod_agency,
    is_referral_task,
    is_sensitive,
    keep_labels,
    labelable,
    labels_requested,
    owned,
    referral_of,
    referral_shares,
)
from app.services.uow import transaction
from app.services.writes import FollowUp, WriteEvent
from app.storage.repository import Repository, StoredVersion


class AccessHook:
    """WriteRule: who may change what, AOD labels, owners, referral shares, consents."""

    def __init__(
        self, *, clock: Clock, own_base: str, labels: tuple[dict[str, str], ...] = AOD_LABELS
    ) -> None:
        self._clock = clock
        self._own_base = own_base
        self._labels = labels

    # -- before ----------------------------------------------------------------------------
    def before_write(self, repo: Repository, event: WriteEvent) -> bool:
        """Keep what a non-owner may not change (labels; a shared request's referral
        elements); add AOD labels where due. Whether the caller may write at all was
        decided before (ResourceService._seen and _check_may_change)."""
        resource = event.resource
        if resource is None:
            return False
        agency = event.caller.agency
        amended = False
        current = event.current
        owns = True
        if agency is not None and current is not None and current.body is not None:
            owner = (
                current.owner
                if current.owner_read
                else repo.owner(event.resource_type, event.resource_id)
            )
            owns = owner is None or owner[0] == agency
            if not owns:
                old = loads_stored(current.body)
                self._check_owners_parts(event, old, resource)
                if event.resource_type == "ServiceRequest":
                    self._check_request_change(event, old, resource)
                elif event.resource_type == "Task" and not is_referral_task(old):
                    # A receiving agency works another agency's referral (under its rules);
                    # any other Task of that agency is not its to change: turned into a
                    # referral it would share what its owner never shared.
                    raise Forbidden(
                        f"Task/{event.resource_id} belongs to another agency and is not a "
                        f"referral; {event.caller.agency} may read it but not change it"
                    )
                amended = keep_labels(old, resource)
        if not labelable(event.resource_type):
            return amended
        # An AOD service labels its own records; working on another agency's record (a
        # referral's Task) does not make that record its own (what it reports is: its
        # Task.output records), nor hide it from the agency working it.
        if labels_requested(resource) or (owns and self.is_aod(repo, agency)):
            amended = add_aod_labels(resource, self._labels) or amended
        return amended

    @staticmethod
    def _check_owners_parts(event: WriteEvent, old: dict[str, Any], new: dict[str, Any]) -> None:
        """What a record says of itself stays its owner's: the narrative (a receiving agency
        could put words in the referrer's record), its tags and profiles."""
        changed = [
            name
            for name, before, after in (
                ("text", old.get("text"), new.get("text")),
                ("meta.tag", _meta(old, "tag"), _meta(new, "tag")),
                ("meta.profile", _meta(old, "profile"), _meta(new, "profile")),
            )
            if before != after
        ]
        if changed:
            label = f"{event.resource_type}/{event.resource_id}"
            raise Forbidden(
                f"{label} belongs to another agency; {event.caller.agency} may not change "
                f"its {', '.join(changed)}",
                expression=tuple(f"{event.resource_type}.{name}" for name in changed),
            )

    @staticmethod
    def _check_request_change(event: WriteEvent, old: dict[str, Any], new: dict[str, Any]) -> None:
        """What a ServiceRequest refers to decides what its referral shares: only its owner
        changes that; the other agency changes its status (the referral's side effect)."""
        refused = changes_beyond(old, new, SHARED_REQUEST_ELEMENTS)
        if refused:
            raise Forbidden(
                f"ServiceRequest/{event.resource_id} belongs to another agency; "
                f"{event.caller.agency} may change only its status, not "
                f"{', '.join(sorted(refused))}",
                expression=tuple(f"ServiceRequest.{name}" for name in sorted(refused)),
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
        version: StoredVersion,  # noqa: ARG002 (the WriteRule signature)
    ) -> Sequence[FollowUp]:
        """Keep the owner row, the referral shares and the consent grants in step."""
        resource = event.resource
        sensitive = is_sensitive(resource)
        current = event.current
        # A resource written for the first time has no owner row yet; the access step
        # read the row of an existing one with its version when it could.
        if current is None:
            owner = None
        elif current.owner_read:
            owner = current.owner
        else:
            owner = repo.owner(event.resource_type, event.resource_id)
        if owner is None:
            agency = event.caller.agency
            if resource is not None and owned(
                event.resource_type, agency=agency, sensitive=sensitive
            ):
                owner = (agency, sensitive)
                repo.set_owner(
                    event.resource_type, event.resource_id, agency, sensitive, new=current is None
                )
        elif sensitive and not owner[1]:
            # Once labelled, always released as labelled: its labelled versions stay in
            # its history (vread, history), and a later unlabelled version does not
            # release them.
            owner = (owner[0], sensitive)
            repo.set_owner(event.resource_type, event.resource_id, owner[0], sensitive)
        event.owner = owner
        if event.resource_type == "Task":
            unshared = self.share_task(repo, event.resource_id, resource)
            if unshared:
                event.issues.append(not_shared(event.caller.agency, unshared))
        elif event.resource_type == "ServiceRequest":
            task_ids = repo.referring_any("Task", "focus", "ServiceRequest", [event.resource_id])
            tasks = repo.current_many("Task", sorted(task_ids))
            self.share_tasks(
                repo, [(task_id, loads_stored(v.body)) for task_id, v in tasks.items() if v.body]
            )
        elif event.resource_type == "Consent":
            repo.replace_consent_grants(
                event.resource_id,
                self.consent_rows(repo, event.resource_id, resource, self._own_base),
            )
        return ()

    def share_task(
        self, repo: Repository, task_id: str, task: dict[str, Any] | None
    ) -> list[tuple[str, str]]:
        """Replace what one Task shares; returns the records it names that it does not
        share because the sharing agency does not own them (or they do not exist)."""
        return self.share_tasks(repo, [(task_id, task)]).get(task_id, [])

    def share_tasks(
        self,
        repo: Repository,
        tasks: Sequence[tuple[str, dict[str, Any] | None]],
        *,
        final: bool = False,
    ) -> dict[str, list[tuple[str, str]]]:
        """Replace what each Task shares (nothing unless it is a referral): the
        ServiceRequests they refer to read in one query, their records' owners in one per
        type, the grants in two statements. Returns, per referral, what it names but does
        not share. A referral naming a record not stored yet (a later entry of the same
        transaction may create it) is shared again just before commit (final)."""
        referrals = [
            (task_id, task)
            for task_id, task in tasks
            if task is not None and is_referral_task(task)
        ]
        focus_ids = [task["focus"]["reference"].rsplit("/", 1)[-1] for _, task in referrals]
        requests = repo.current_many("ServiceRequest", focus_ids)
        # Who wrote each referral and owns each request: a request's content (its subject
        # and supporting information) counts only for its owner's own referrals, so a
        # Task focused on another agency's request learns and shares nothing of it.
        makers = repo.owners(
            [("Task", task_id) for task_id, _ in referrals]
            + [("ServiceRequest", focus) for focus in focus_ids]
        )

        def made_by(key: tuple[str, str]) -> str | None:
            row = makers.get(key)
            return None if row is None else (row[0] or "")

        organization_of = partial(agency_standing_for, repo)
        named: dict[str, Referral] = {}
        for (task_id, task), focus in zip(referrals, focus_ids, strict=True):
            current = requests.get(focus)
            referrer = made_by(("Task", task_id)) or ""
            request = None
            if (
                current is not None
                and current.body
                and (not referrer or made_by(("ServiceRequest", focus)) == referrer)
            ):
                request = loads_stored(current.body)
            referral = referral_of(
                task_id, task, request, own_base=self._own_base, organization_of=organization_of
            )
            if referral is not None:
                named[task_id] = referral
        # Every owner the referrals need, a query per type.
        owners = repo.owners(sorted(set().union(*(r.keys() for r in named.values()))))

        def owner_of(key: tuple[str, str]) -> str | None:
            row = owners.get(key)
            return None if row is None else (row[0] or "")

        grants: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id, _ in tasks}
        unshared: dict[str, list[tuple[str, str]]] = {}
        for task_id, referral in named.items():
            shares = referral_shares(referral, owner_of)
            grants[task_id] = [grant.row() for grant in shares]
            given = {(g.resource_type, g.resource_id) for g in shares}
            unshared[task_id] = sorted(
                key for key in referral.keys() - given if key[0] not in DIRECTORY_TYPES
            )
            if not final and any(key not in owners for key in unshared[task_id]):
                repo.defer("access:share-tasks", self._share_again, task_id)
        repo.replace_task_grants(grants)
        return unshared

    def _share_again(self, repo: Repository, task_ids: set[Any]) -> None:
        tasks = repo.current_many("Task", sorted(task_ids))
        self.share_tasks(
            repo,
            [(task_id, loads_stored(v.body) if v.body else None) for task_id, v in tasks.items()],
            final=True,
        )

    @staticmethod
    def consent_rows(
        repo: Repository, consent_id: str, consent: dict[str, Any] | None, own_base: str
    ) -> list[dict[str, Any]]:
        """What a Consent permits, granted by the agency that owns it (recorded it)."""
        owner = repo.owner("Consent", consent_id)
        grantor = (owner[0] or "") if owner is not None else ""
        return consent_grants(consent, own_base=own_base, grantor=grantor)


def _meta(resource: dict[str, Any], element: str) -> Any:
    meta = resource.get("meta")
    return meta.get(element) if isinstance(meta, dict) else None


def agency_standing_for(repo: Repository, ref: tuple[str, str]) -> str | None:
    """The agency ("Organization/x") a referral's requester or owner stands for: an
    Organization itself, or the organization of a PractitionerRole (providedBy of a
    HealthcareService) that the organization itself (or the operator) keeps. A role an
    agency writes naming another organization stands for nobody: else it could make a
    referral name any agency it likes as the one that reports the outcome."""
    if ref[0] == "Organization":
        return f"Organization/{ref[1]}"
    holder = BELONGS_TO.get(ref[0])
    if holder is None:
        return None
    role = repo.current(*ref)
    body = loads_stored(role.body) if role is not None and role.body and not role.deleted else {}
    org = (body.get(holder) or {}).get("reference")
    if not isinstance(org, str) or not org.startswith("Organization/") or org.count("/") != 1:
        return None
    owner = repo.owner(*ref)
    if owner is not None and owner[0] is not None and owner[0] != org:
        return None
    return org


def not_shared(agency: str | None, keys: Sequence[tuple[str, str]]) -> Issue:
    """The warning of a referral written naming records it does not share. Worded alike
    for a record of another agency, a hidden one and one that does not exist."""
    shown = ", ".join(f"{t}/{i}" for t, i in keys[:10])
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    who = agency or "the local operator"
    return Issue(
        "informational",
        f"This referral does not share {shown}{more}: only its owner shares a record, and "
        f"it is not a stored record of {who} (what the receiving agency reports in "
        "Task.output must be its own)",
        "warning",
    )


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
                body = loads_stored(v.body or b"{}")
                repo.replace_consent_grants(v.id, hook.consent_rows(repo, v.id, body, own_base))
        done += len(found)
    return done


def rebuild_all_shares(engine: Engine, *, own_base: str, page: int = 500) -> int:
    """Recompute every referral share and consent grant under the current rules (after an
    upgrade that changed them: `casebridge shares rebuild`). Returns how many Tasks and
    Consents were processed."""
    stored: dict[str, list[str]] = {}
    for resource_type in ("Task", "Consent"):
        ids: list[str] = []
        after: str | None = None
        while True:
            with transaction(engine, write=False) as repo:
                found = repo.live_ids(resource_type, after_id=after, limit=page)
            if not found:
                break
            ids += [resource_id for resource_id, _ in found]
            after = found[-1][0]
        stored[resource_type] = ids
    return rebuild_shares(engine, own_base=own_base, stored=stored, page=page)


def is_aod_agency_in(engine: Engine, agency: str | None) -> bool:
    """Whether agency's Organization is registered as an AOD service."""
    if agency is None:
        return False
    with transaction(engine, write=False) as repo:
        return AccessHook.is_aod(repo, agency)
