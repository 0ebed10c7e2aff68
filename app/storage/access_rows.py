"""The access tables of the repository: owner rows, referral shares (access_grant), consent
grants and the disclosure log (docs/threat-model.md)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, delete, insert, or_, select, update

from app.storage.access import AccessScope
from app.storage.base import IN_LIST_MAX, OnConnection
from app.storage.rows import row_columns
from app.storage.tables import (
    access_grant_table,
    consent_grant_table,
    disclosure_table,
    reference_table,
    resource_owner_table,
)


class AccessRows(OnConnection):
    """Owners, grants, consents and disclosures on the repository's connection."""

    def owner(self, resource_type: str, resource_id: str) -> tuple[str | None, bool] | None:
        """(agency, sensitive) of a resource's owner row, or None when it has none."""
        row = self._conn.execute(
            _SELECT_OWNER, {"o_type": resource_type, "o_id": resource_id}
        ).first()
        return None if row is None else (row[0], bool(row[1]))

    def owners(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str | None, bool]]:
        """Owner rows of many resources at once: (type, id) -> (agency, sensitive)."""
        found: dict[tuple[str, str], tuple[str | None, bool]] = {}
        by_type: dict[str, set[str]] = {}
        for resource_type, resource_id in keys:
            by_type.setdefault(resource_type, set()).add(resource_id)
        for resource_type, ids in by_type.items():
            rows = self._conn.execute(
                _SELECT_OWNERS, {"o_type": resource_type, "o_ids": sorted(ids)}
            )
            for row in rows:
                found[(resource_type, row[0])] = (row[1], bool(row[2]))
        return found

    def set_owner(
        self,
        resource_type: str,
        resource_id: str,
        agency: str | None,
        sensitive: bool,
        *,
        new: bool = False,
    ) -> None:
        """Create or replace a resource's owner row (new: the caller knows it has none)."""
        values = {"o_type": resource_type, "o_id": resource_id, "agency": agency}
        if not new:
            done = self._conn.execute(_UPDATE_OWNER, {**values, "sensitive": sensitive})
            if done.rowcount:
                return
        self.insert_rows(resource_owner_table, [(resource_type, resource_id, agency, sensitive)])

    def shared_with(self, agency: str, resource_type: str, resource_id: str) -> set[str]:
        """The bases ("referral", "client") on which referrals share a resource with agency."""
        g = access_grant_table.c
        rows = self._conn.execute(
            select(g.basis)
            .where(
                g.resource_type == resource_type,
                g.resource_id == resource_id,
                g.agency == agency,
            )
            .distinct()
        )
        return {row[0] for row in rows}

    def grant_patients(
        self, agency: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The client a referral shares each of these resources with agency for, where
        one does: (type, id) -> patient id, one query per type."""
        g = access_grant_table.c
        by_type: dict[str, set[str]] = {}
        for resource_type, resource_id in keys:
            by_type.setdefault(resource_type, set()).add(resource_id)
        found: dict[tuple[str, str], str] = {}
        for resource_type, ids in by_type.items():
            rows = self._conn.execute(
                select(g.resource_id, g.patient_id).where(
                    g.resource_type == resource_type,
                    g.resource_id.in_(sorted(ids)),
                    g.agency == agency,
                    g.patient_id.is_not(None),
                )
            )
            for row in rows:
                found.setdefault((resource_type, row[0]), str(row[1]))
        return found

    def replace_task_grants(self, grants: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Replace what referral Tasks share: task id -> rows (agency, resource_type,
        resource_id, basis, patient_id); a Task mapped to no rows shares nothing. One
        DELETE and one INSERT for them all."""
        if not grants:
            return
        g = access_grant_table.c
        self._conn.execute(delete(access_grant_table).where(g.task_id.in_(sorted(grants))))
        self.insert_rows(
            access_grant_table,
            [
                tuple({**row, "task_id": task_id}[name] for name in _GRANT_COLUMNS)
                for task_id, rows in grants.items()
                for row in rows
            ],
        )

    def referring_any(
        self, source_type: str, param: str, target_type: str, target_ids: Collection[str]
    ) -> set[str]:
        """Ids of live resources of source_type whose param refers to any of target_ids."""
        if not target_ids:
            return set()
        c = reference_table.c
        query = select(c.resource_id, c.target_id).where(
            c.resource_type == source_type, c.param == param, c.target_type == target_type
        )
        if len(target_ids) <= IN_LIST_MAX:
            query = query.where(c.target_id.in_(sorted(target_ids)))
            return {row[0] for row in self._conn.execute(query)}
        # Many targets (after a bulk load): one pass over all such references. Pages of
        # IN lists each scanned them all when the planner had no statistics yet for the
        # freshly loaded rows (quadratic in the load's size).
        wanted = set(target_ids)
        return {row[0] for row in self._conn.execute(query) if row[1] in wanted}

    def replace_consent_grants(self, consent_id: str, grants: Sequence[Mapping[str, Any]]) -> None:
        """Replace what one Consent permits (rows: patient_id, agency, starts, ends,
        sensitive_ok)."""
        c = consent_grant_table.c
        self._conn.execute(delete(consent_grant_table).where(c.consent_id == consent_id))
        if grants:
            self._conn.execute(
                insert(consent_grant_table), [{**row, "consent_id": consent_id} for row in grants]
            )

    def consents_in_force(self, patient_id: str, *, scope: AccessScope | None = None) -> list[str]:
        """Ids of the client's consents in force for the scope's agency at its instant."""
        scope = scope or self.scope
        if scope is None:
            return []
        return sorted({row[0] for row in self._conn.execute(scope.consent_for(patient_id))})

    def releases_labelled(self, patient_id: str, agency: str, grantor: str, now: datetime) -> bool:
        """Whether a consent grantor recorded, in force at now, releases the client's
        labelled records to agency (a release purpose: consent_grant.sensitive_ok)."""
        c = consent_grant_table.c
        query = select(c.consent_id).where(
            c.patient_id == patient_id,
            c.agency == agency,
            c.grantor == grantor,
            c.sensitive_ok.is_(True),
            or_(c.starts.is_(None), c.starts <= now),
            or_(c.ends.is_(None), c.ends > now),
        )
        return self._conn.execute(query.limit(1)).first() is not None

    def insert_disclosures(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record releases of records to agencies other than their owners."""
        if rows:
            self._conn.execute(insert(disclosure_table), list(rows))

    def disclosures(
        self, patient_id: str, *, agency: str | None, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """A client's disclosures, oldest first, keyset-paged on the row id; with agency,
        only those it made (as owner) or received."""
        d = disclosure_table.c
        query = select(disclosure_table).where(d.patient_id == patient_id)
        if agency is not None:
            query = query.where(or_(d.agency == agency, d.owner_agency == agency))
        if after is not None:
            query = query.where(d.row_id > after)
        rows = self._conn.execute(query.order_by(d.row_id).limit(limit))
        return [dict(row._mapping) for row in rows]


_GRANT_COLUMNS = row_columns(access_grant_table)
_OWN = resource_owner_table.c
_SELECT_OWNER = select(_OWN.agency, _OWN.sensitive).where(
    _OWN.resource_type == bindparam("o_type"), _OWN.resource_id == bindparam("o_id")
)
_UPDATE_OWNER = (
    update(resource_owner_table)
    .where(_OWN.resource_type == bindparam("o_type"), _OWN.resource_id == bindparam("o_id"))
    .values(agency=bindparam("agency"), sensitive=bindparam("sensitive"))
)
_SELECT_OWNERS = select(_OWN.resource_id, _OWN.agency, _OWN.sensitive).where(
    _OWN.resource_type == bindparam("o_type", type_=String()),
    _OWN.resource_id.in_(bindparam("o_ids", expanding=True)),
)


__all__ = ["AccessRows"]
