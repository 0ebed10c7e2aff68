"""What the metrics report of the database and the process when scraped (GET /metrics).

Counted here, at scrape time, is what lives in the database (outbox backlog, overdue
referrals, export jobs) and in the process (audit queue, connection pool); what happens
per request is counted where it happens (app/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from app.services.jobs.audit import AuditRecorder
from app.services.uow import transaction
from app.services.usecases.referrals import ReferralService
from app.storage.outbox import NotifyStore


@dataclass(frozen=True, slots=True)
class Gauges:
    """One scrape's values."""

    outbox_pending: dict[str, int]
    export_jobs: dict[str, int]
    referrals_overdue: dict[str, int]
    audit_backlog: int
    pool_size: int
    pool_in_use: int


class MetricsService:
    """Reads the gauges for one scrape (a few indexed counts)."""

    def __init__(
        self, *, engine: Engine, referrals: ReferralService, recorder: AuditRecorder
    ) -> None:
        self._engine = engine
        self._referrals = referrals
        self._recorder = recorder

    def gauges(self) -> Gauges:
        """The values of the scrape-time gauges."""
        with transaction(self._engine, write=False) as repo:
            pending = NotifyStore(repo.connection).pending_by_subscription()
            jobs = repo.export_jobs_by_status()
        pool = self._engine.pool
        size, in_use = (pool.size(), pool.checkedout()) if isinstance(pool, QueuePool) else (0, 0)
        return Gauges(
            outbox_pending=pending,
            export_jobs=jobs,
            referrals_overdue=self._referrals.overdue_by_agency(),
            audit_backlog=self._recorder.backlog(),
            pool_size=size,
            pool_in_use=in_use,
        )


__all__ = ["Gauges", "MetricsService"]
