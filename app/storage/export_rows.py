"""Bulk data export ($export) in the repository: pages of a type's live resources and the
export_job rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from app.storage.base import OnConnection
from app.storage.tables import reference_table, resource_table

R = resource_table.c


class ExportRows(OnConnection):
    """Export pages and jobs on the repository's connection."""

    def export_page(
        self,
        resource_type: str,
        *,
        after_id: str | None,
        since: datetime | None,
        until: datetime,
        patient_params: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[str, bytes, int]]:
        """(id, body, version id) of live current versions of a type in id order, after
        after_id, last updated in [since, until]: one page of an export.

        With patient_params, only resources whose reference index rows of those parameters
        point at a live Patient (members of some patient's compartment).
        """
        query = select(R.id, R.body, R.version_id).where(
            R.resource_type == resource_type,
            R.deleted.is_(False),
            R.last_updated <= until,
            *self._visible(R.resource_type, R.id),
        )
        if after_id is not None:
            query = query.where(R.id > after_id)
        if since is not None:
            query = query.where(R.last_updated >= since)
        if patient_params is not None:
            ref = reference_table.c
            patient = resource_table.alias("patient")
            linked = (
                select(ref.row_id)
                .join_from(
                    reference_table,
                    patient,
                    and_(patient.c.resource_type == "Patient", patient.c.id == ref.target_id),
                )
                .where(
                    ref.resource_type == resource_type,
                    ref.resource_id == R.id,
                    ref.param.in_(sorted(patient_params)),
                    ref.target_type == "Patient",
                    patient.c.deleted.is_(False),
                    # A patient the caller may not see does not make a resource a patient's:
                    # else the export would tell which patients exist.
                    *self._visible(patient.c.resource_type, patient.c.id),
                )
            )
            query = query.where(linked.exists())
        rows = self._conn.execute(query.order_by(R.id).limit(limit), self._access)
        return [(row[0], row[1], row[2]) for row in rows]

    @staticmethod
    def _export_jobs() -> Any:
        from app.storage.tables import export_job_table

        return export_job_table

    def insert_export_job(self, values: Mapping[str, Any]) -> None:
        """Record a new export job."""
        self._conn.execute(insert(self._export_jobs()), dict(values))

    def export_job(self, job_id: str) -> dict[str, Any] | None:
        """An export job's row as a mapping of column name to value, or None."""
        jobs = self._export_jobs()
        row = self._conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else dict(row._mapping)

    def update_export_job(
        self, job_id: str, *, statuses: Sequence[str], values: Mapping[str, Any]
    ) -> bool:
        """Change a job that is in one of statuses; False when it is not (gone, or moved on)."""
        jobs = self._export_jobs()
        result = self._conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(list(statuses)))
            .values(**values)
        )
        return bool(result.rowcount)

    def touch_export_jobs(
        self, job_ids: Sequence[str], *, statuses: Sequence[str], at: datetime
    ) -> None:
        """Set updated_at of those jobs still in one of statuses (a liveness heartbeat)."""
        if not job_ids:
            return
        jobs = self._export_jobs()
        self._conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(sorted(job_ids)), jobs.c.status.in_(list(statuses)))
            .values(updated_at=at)
        )

    def delete_export_jobs(self, job_ids: Sequence[str]) -> int:
        """Remove jobs; how many there were."""
        if not job_ids:
            return 0
        jobs = self._export_jobs()
        result = self._conn.execute(delete(jobs).where(jobs.c.id.in_(sorted(job_ids))))
        return int(result.rowcount)

    def expired_export_jobs(self, now: datetime, limit: int) -> list[str]:
        """Ids of jobs whose files expired at or before now."""
        jobs = self._export_jobs()
        query = select(jobs.c.id).where(jobs.c.expires_at <= now).order_by(jobs.c.id).limit(limit)
        return [row[0] for row in self._conn.execute(query)]

    def export_jobs_by_status(self) -> dict[str, int]:
        """How many export jobs are in each status (the metrics' export gauge)."""
        jobs = self._export_jobs()
        rows = self._conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
        return {row[0]: int(row[1]) for row in rows}

    def stale_export_jobs(self, *, statuses: Sequence[str], before: datetime) -> list[str]:
        """Ids of jobs in one of statuses that nothing has touched since before."""
        jobs = self._export_jobs()
        query = select(jobs.c.id).where(
            jobs.c.status.in_(list(statuses)), jobs.c.updated_at < before
        )
        return [row[0] for row in self._conn.execute(query.order_by(jobs.c.id))]


__all__ = ["ExportRows"]
