"""Accounting of disclosures: what a response releases to an agency that does not own it
(42 CFR 2.24 / HIPAA 164.528 style), read back by Patient/{id}/$disclosures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import InvalidRequest, NotFound
from app.fhir.numbers import ascii_int
from app.fhir.validation import check_type_and_id
from app.security.caller import Caller
from app.security.policy import DEFAULT_REGIME, PrivacyRegime, scope_for
from app.services.params import Cursors, page_size, single
from app.services.uow import transaction
from app.storage.access import AccessScope
from app.storage.repository import Repository, StoredVersion


@dataclass(frozen=True, slots=True)
class Release:
    """What a response releases to an agency other than the records' owners."""

    count: int = 0
    sensitive: bool = False
    # The law the released records are kept under: its notice and labels go with them.
    regime: PrivacyRegime = DEFAULT_REGIME


NOTHING: Final = Release()


class DisclosureLog:
    """Accounting of disclosures: every record released to an agency that does not own it,
    with the consent in force, in its own short transaction after the read."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        cursors: Cursors,
        default_count: int = 50,
        max_count: int = 1000,
        regime: PrivacyRegime = DEFAULT_REGIME,
    ) -> None:
        self.regime = regime
        self._cursors = cursors
        self._engine = engine
        self._clock = clock
        self._default_count = default_count
        self._max_count = max_count

    def record(
        self,
        caller: Caller,
        versions: Sequence[StoredVersion],
        interaction: str,
        *,
        repo: Repository | None = None,
    ) -> Release:
        """Record the releases among versions; the operator's reads are not disclosures.

        repo: the transaction the versions were read in; the owners are looked up there
        (no second round trip for the common case, an agency reading its own records).
        When it is a write transaction (a GET inside a transaction Bundle) the rows go
        into it; otherwise they are written in a short transaction of their own, only
        when there is something to log."""
        agency = caller.agency
        if agency is None or not versions:
            return NOTHING
        scope = scope_for(agency, self._clock.now())
        assert scope is not None
        if repo is not None:
            rows = _releases(repo, scope, versions, interaction)
            if repo.writable:
                repo.insert_disclosures(rows)
                return _summary(rows, self.regime)
        else:
            with transaction(self._engine, write=False, scope=scope) as reader:
                rows = _releases(reader, scope, versions, interaction)
        if rows:
            with transaction(self._engine, write=True) as writer:
                writer.insert_disclosures(rows)
        return _summary(rows, self.regime)

    def report(
        self, caller: Caller, patient_id: str, params: Sequence[tuple[str, str]]
    ) -> DisclosurePage:
        """A client's disclosures, oldest first (Patient/{id}/$disclosures). The operator
        sees all; an agency those it made as the records' owner and those it received;
        a client the agency may not see is 404, as for read."""
        check_type_and_id("Patient", patient_id)
        for name, _ in params:
            if name not in ("_count", "_cursor"):
                raise InvalidRequest(
                    f"Parameter {name!r} is not supported on $disclosures", expression=(name,)
                )
        count = page_size(params, default=self._default_count, maximum=self._max_count)
        raw_cursor = single(params, "_cursor")
        after = None
        if raw_cursor is not None:
            try:
                after = ascii_int(self._cursors.open(raw_cursor).decode("ascii"), minimum=0)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest("_cursor is not one this server issued") from exc
        scope = scope_for(caller.agency, self._clock.now())
        with transaction(self._engine, write=False, scope=scope) as repo:
            # A deleted client's disclosures stay reportable: only an unknown or hidden
            # client is 404.
            known = repo.current("Patient", patient_id) is not None
            if not known or not repo.is_visible("Patient", patient_id):
                raise NotFound(f"Patient/{patient_id} is not known")
            rows = repo.disclosures(patient_id, agency=caller.agency, after=after, limit=count + 1)
        page = rows[:count]
        more = len(rows) > count and bool(page)
        next_cursor = self._cursors.seal(str(page[-1]["row_id"]).encode()) if more else None
        applied = [(k, v) for k, v in params if k == "_count"]
        return DisclosurePage(page, next_cursor, applied)


@dataclass(frozen=True, slots=True)
class DisclosurePage:
    """One page of a client's disclosures."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    applied: list[tuple[str, str]]


def _releases(
    repo: Repository, scope: AccessScope, versions: Sequence[StoredVersion], interaction: str
) -> list[dict[str, Any]]:
    """Disclosure rows for the versions whose owner is another agency (or no agency: the
    operator's labelled records)."""
    owners = repo.owners([(v.resource_type, v.id) for v in versions if not v.owner_read])
    owners.update({(v.resource_type, v.id): v.owner for v in versions if v.owner_read and v.owner})
    released = [
        v
        for v in versions
        if (owner := owners.get((v.resource_type, v.id))) is not None and owner[0] != scope.agency
    ]
    if not released:
        return []
    patients = repo.grant_patients(scope.agency, [(v.resource_type, v.id) for v in released])
    consents: dict[str, list[str]] = {}
    rows = []
    for version in released:
        owner = owners[(version.resource_type, version.id)]
        patient = (
            version.id
            if version.resource_type == "Patient"
            else patients.get((version.resource_type, version.id))
        )
        if patient and patient not in consents:
            consents[patient] = repo.consents_in_force(patient, scope=scope)
        in_force = consents.get(patient, []) if patient else []
        rows.append(
            {
                "disclosed_at": scope.now,
                "agency": scope.agency,
                "owner_agency": owner[0],
                "resource_type": version.resource_type,
                "resource_id": version.id,
                "version_id": version.version_id,
                "patient_id": patient,
                "consent_id": in_force[0] if in_force else None,
                "interaction": interaction,
                "sensitive": owner[1],
            }
        )
    return rows


def _summary(rows: Sequence[Mapping[str, Any]], regime: PrivacyRegime) -> Release:
    return Release(len(rows), any(row["sensitive"] for row in rows), regime)
