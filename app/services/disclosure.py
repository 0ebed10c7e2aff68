"""Accounting of disclosures: what a response releases to an agency that does not own it
(42 CFR 2.24 / HIPAA 164.528 style), read back by Patient/{id}/$disclosures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import NotFound
from app.security.caller import Caller
from app.services.uow import transaction
from app.storage.access import AccessScope
from app.storage.repository import Repository, StoredVersion


@dataclass(frozen=True, slots=True)
class Release:
    """What a response releases to an agency other than the records' owners."""

    count: int = 0
    sensitive: bool = False


NOTHING: Final = Release()


class DisclosureLog:
    """Accounting of disclosures: every record released to an agency that does not own it,
    with the consent in force, in its own short transaction after the read."""

    def __init__(self, *, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def record(
        self,
        caller: Caller,
        versions: Sequence[StoredVersion],
        interaction: str,
        *,
        repo: Repository | None = None,
    ) -> Release:
        """Record the releases among versions; the operator's reads are not disclosures.
        With repo (an open write transaction: a GET inside a transaction Bundle) they are
        recorded in it, else in a short transaction of their own."""
        agency = caller.agency
        if agency is None or not versions:
            return NOTHING
        scope = AccessScope(agency, self._clock.now())
        if repo is not None:
            rows = _releases(repo, scope, versions, interaction)
            repo.insert_disclosures(rows)
            return _summary(rows)
        # Most reads release nothing (an agency reading its own records): find out on a
        # read-only connection and take the write lock only when there is something to log.
        with transaction(self._engine, write=False, scope=scope) as reader:
            rows = _releases(reader, scope, versions, interaction)
        if rows:
            with transaction(self._engine, write=True) as writer:
                writer.insert_disclosures(rows)
        return _summary(rows)

    def disclosures(
        self, caller: Caller, patient_id: str, *, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """A client's disclosures (Patient/{id}/$disclosures): the operator sees all, an
        agency those of the records it owns (what it released) and those it received."""
        now = self._clock.now()
        scope = None if caller.agency is None else AccessScope(caller.agency, now)
        with transaction(self._engine, write=False, scope=scope) as repo:
            if repo.current("Patient", patient_id) is None or not repo.is_visible(
                "Patient", patient_id
            ):
                raise NotFound(f"Patient/{patient_id} is not known")
            return repo.disclosures(patient_id, agency=caller.agency, after=after, limit=limit)


def _patient_of(repo: Repository, agency: str, version: StoredVersion) -> str | None:
    if version.resource_type == "Patient":
        return version.id
    return repo.grant_patient(agency, version.resource_type, version.id)


def _releases(
    repo: Repository, scope: AccessScope, versions: Sequence[StoredVersion], interaction: str
) -> list[dict[str, Any]]:
    """Disclosure rows for the versions whose owner is another agency (or no agency: the
    operator's labelled records)."""
    owners = repo.owners([(v.resource_type, v.id) for v in versions])
    rows = []
    for version in versions:
        owner = owners.get((version.resource_type, version.id))
        if owner is None or owner[0] == scope.agency:
            continue
        patient = _patient_of(repo, scope.agency, version)
        consents = repo.consents_in_force(patient, scope=scope) if patient else []
        rows.append(
            {
                "disclosed_at": scope.now,
                "agency": scope.agency,
                "owner_agency": owner[0],
                "resource_type": version.resource_type,
                "resource_id": version.id,
                "version_id": version.version_id,
                "patient_id": patient,
                "consent_id": consents[0] if consents else None,
                "interaction": interaction,
                "sensitive": owner[1],
            }
        )
    return rows


def _summary(rows: Sequence[Mapping[str, Any]]) -> Release:
    return Release(len(rows), any(row["sensitive"] for row in rows))
