"""The ASGI application: create_app wires settings, database, services and routes."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from app import __version__, web
from app.api import errors
from app.api.audit import AuditMiddleware
from app.api.audit import router as audit_router
from app.api.auth import router as auth_router
from app.api.bulk import router as bulk_router
from app.api.cases import router as cases_router
from app.api.fhir import router as fhir_router
from app.api.health import router as health_router
from app.api.metrics import router as metrics_router
from app.api.operations import router as operations_router
from app.api.referrals import router as referrals_router
from app.api.requests import RequestContext
from app.api.subscriptions import router as subscriptions_router
from app.clock import Clock
from app.config import Settings, get_settings
from app.fhir.errors import FHIRError
from app.notify import DeliveryWorker
from app.services.container import build_services
from app.storage.db import SqliteCheckpointer, create_db_engine, is_migrated, upgrade

log = logging.getLogger("casebridge")


class NotMigratedError(RuntimeError):
    """The database schema is behind the code."""


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the app; refuses an unmigrated database unless settings.migrate is set."""
    settings = settings or get_settings()
    clock = clock or Clock()
    engine = create_db_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        sqlite_mmap_mb=settings.sqlite_mmap_mb,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_read_only_guard=settings.sqlite_read_only_guard,
    )
    if settings.migrate:
        upgrade(engine)
    elif not is_migrated(engine):
        engine.dispose()
        raise NotMigratedError(
            f"The database at {engine.url.render_as_string(hide_password=True)} is not migrated: "
            "run `casebridge db upgrade` (or `casebridge serve --migrate`)"
        )
    try:
        services = build_services(settings=settings, engine=engine, clock=clock)
    except Exception:
        engine.dispose()  # e.g. an unreadable CASEBRIDGE_AUTH_SIGNING_KEY_FILE
        raise

    # The tracing of CASEBRIDGE_OTEL, flushed and taken off when the app stops.
    tracers: list[Any] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Handlers are CPU-bound and share one GIL: a few threads keep the database busy,
        # more only make a writer holding the SQLite lock wait longer for its turn.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        # A thread returning from the database (which releases the GIL) waits up to the
        # switch interval (5 ms by default) behind one validating; while it holds the
        # SQLite write lock every other writer waits too. A shorter interval bounds that.
        sys.setswitchinterval(settings.gil_switch_interval_s)
        checkpointer = None
        if engine.dialect.name == "sqlite":
            checkpointer = SqliteCheckpointer(
                engine,
                settings.sqlite_checkpoint_interval_s,
                max_wal_bytes=settings.sqlite_wal_max_mb * 1024 * 1024,
                busy_timeout_ms=settings.db_busy_timeout_ms,
            )
            checkpointer.start()
        services.exports.start()
        # The project's CodeSystems, ValueSets and Questionnaires (idempotent). A database
        # that is down now must not keep the server from starting: the next start installs.
        if settings.install_conformance:
            try:
                services.conformance.install()
            except FHIRError as exc:
                log.warning("conformance resources not installed: %s", exc.diagnostics)
        services.audit.start()
        # Notifications are delivered from this process unless `casebridge worker` does it.
        notifier = DeliveryWorker(services) if settings.notify_worker else None
        if notifier is not None:
            notifier.start()
        # What start-up built (models, registries, compiled statements) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it
        # (docs.python.org/3/library/gc.html#gc.freeze), which paused requests for ~90 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # an app built again in this process (tests) starts afresh
            if notifier is not None:
                notifier.stop()
            services.exports.shutdown()
            services.audit.shutdown()  # writes the queued AuditEvents before the engine goes
            if checkpointer is not None:
                checkpointer.stop()
            for tracer in tracers:
                tracer.shutdown()
            engine.dispose()

    app = FastAPI(
        title="casebridge",
        version=__version__,
        description="FHIR R4 case management and referral exchange",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.services = services
    errors.install(app, pages=web.error_page if settings.web else None)
    app.include_router(health_router)
    app.include_router(auth_router)  # before fhir_router: /fhir/.well-known/... is not a type
    app.include_router(bulk_router)  # before fhir_router: its /{type} would take $export
    app.include_router(referrals_router)
    app.include_router(cases_router)  # before fhir_router: /fhir/CarePlan/{id}/$check
    app.include_router(audit_router)  # before fhir_router: AuditEvent has its own table
    app.include_router(subscriptions_router)  # before fhir_router: SubscriptionTopic is served
    app.include_router(fhir_router)
    app.include_router(operations_router)
    app.include_router(metrics_router)
    if settings.web:
        web.install(app)
    app.add_middleware(AuditMiddleware)
    # Outside the audit: every AuditEvent of the request names its id, and the request's
    # time includes the audit's part.
    app.add_middleware(RequestContext, log_requests=settings.request_log, metrics=settings.metrics)
    if settings.otel:
        from app.tracing import instrument

        tracers.append(instrument(app, engine))
    return app
