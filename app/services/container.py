"""The services one app instance uses, built once at start-up from settings and a clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.security.policy import REGIMES
from app.services.auth.clients import ClientRegistry
from app.services.auth.jwks import JwksFetcher
from app.services.auth.people import PeopleService
from app.services.auth.tokens import AuthService, signing_secret
from app.services.disclosure import DisclosureLog
from app.services.jobs.audit import AuditRecorder
from app.services.jobs.export import ExportService
from app.services.params import Cursors
from app.services.rules.access import AccessHook
from app.services.rules.assessments import AssessmentScoring
from app.services.rules.audit import WriteRecorder
from app.services.rules.cases import CaseProcess
from app.services.rules.referrals import ReferralRules
from app.services.rules.subscriptions import SubscriptionHook
from app.services.usecases.audit import AuditService
from app.services.usecases.bundle import BundleService
from app.services.usecases.caseload import CaseloadService
from app.services.usecases.cases import CaseService
from app.services.usecases.conformance import ConformanceService
from app.services.usecases.directory import DirectoryService
from app.services.usecases.everything import EverythingService
from app.services.usecases.health import HealthService
from app.services.usecases.history import HistoryService
from app.services.usecases.metrics import MetricsService
from app.services.usecases.referrals import ReferralService, plain_referral_bundle
from app.services.usecases.reports import ReportService
from app.services.usecases.resources import ResourceService
from app.services.usecases.search import SearchService
from app.services.usecases.subscriptions import SubscriptionService
from app.services.writes import WritePipeline


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a route may call into."""

    settings: Settings
    engine: Engine
    clock: Clock
    started: datetime
    resources: ResourceService
    history: HistoryService
    health: HealthService
    search: SearchService
    bundles: BundleService
    everything: EverythingService
    exports: ExportService
    disclosures: DisclosureLog
    clients: ClientRegistry
    auth: AuthService
    referrals: ReferralService
    # Case management (issue 7).
    cases: CaseService
    caseload: CaseloadService
    conformance: ConformanceService
    reports: ReportService
    audit: AuditService
    subscriptions: SubscriptionService
    metrics: MetricsService
    # The web app's people and sessions (issue 20).
    people: PeopleService
    directory: DirectoryService


def build_services(*, settings: Settings, engine: Engine, clock: Clock) -> Services:
    """Wire the services together."""
    clients = ClientRegistry(engine=engine, clock=clock)
    auth = AuthService(
        engine=engine,
        clock=clock,
        settings=settings,
        clients=clients,
        jwks=JwksFetcher(
            timeout_s=settings.auth_jwks_timeout_s,
            cache_s=settings.auth_jwks_cache_s,
            refetch_s=settings.auth_jwks_refetch_s,
        ),
    )
    # The signing key of access tokens also seals paging tokens (app/services/params.py).
    cursors = Cursors(lambda: signing_secret(auth.keys.signer()))
    regime = REGIMES[settings.privacy_regime]
    disclosures = DisclosureLog(
        engine=engine,
        clock=clock,
        cursors=cursors,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        regime=regime,
    )
    audit = AuditService(
        engine=engine,
        clock=clock,
        settings=settings,
        recorder=AuditRecorder(engine=engine, settings=settings),
        cursors=cursors,
    )
    recorder_of_writes = WriteRecorder(settings=settings)
    # The one write pipeline (app/services/writes.py) and its rules, in the order they run.
    pipeline = WritePipeline(
        clock=clock,
        settings=settings,
        rules=(
            # First: the other rules see only writes the caller may make, labels applied.
            AccessHook(clock=clock, own_base=settings.base_url, labels=regime.labels),
            # Subscriptions: checked on write; the outbox rows of every write.
            SubscriptionHook(settings=settings, clock=clock),
            # Case management: answers checked, scores and risk Flags as follow-ups.
            AssessmentScoring(k10_bands=settings.k10_bands),
            # The referral state machine (issue 5); the ServiceRequest follows its Task.
            ReferralRules(clock=clock, base_url=settings.base_url),
            # The case-management process: stages, closure with a reason and a summary.
            CaseProcess(clock=clock),
            # AuditEvents are the server's; server-written Provenance is not changed.
            recorder_of_writes,
        ),
        # Last, once the rules let the write through: its AuditEvent and Provenance.
        records=recorder_of_writes,
    )
    resources = ResourceService(
        engine=engine, clock=clock, settings=settings, disclosures=disclosures, pipeline=pipeline
    )
    history = HistoryService(
        engine=engine,
        clock=clock,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        disclosures=disclosures,
        cursors=cursors,
    )
    health = HealthService(engine=engine)
    search = SearchService(
        engine=engine,
        clock=clock,
        own_base=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        disclosures=disclosures,
        cursors=cursors,
    )
    bundles = BundleService(
        resources=resources, search=search, settings=settings, disclosures=disclosures
    )
    everything = EverythingService(
        engine=engine,
        clock=clock,
        own_base=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        disclosures=disclosures,
        cursors=cursors,
    )
    cases = CaseService(resources=resources, bundles=bundles, search=search, clock=clock)
    referrals = ReferralService(
        resources=resources,
        bundles=bundles,
        search=search,
        clock=clock,
        settings=settings,
        from_plain=plain_referral_bundle,
    )
    return Services(
        settings,
        engine,
        clock,
        clock.now(),
        resources,
        history,
        health,
        search,
        bundles,
        everything,
        ExportService(engine=engine, clock=clock, settings=settings, disclosures=disclosures),
        disclosures,
        clients,
        auth,
        referrals,
        cases,
        CaseloadService(resources=resources, search=search, referrals=referrals, clock=clock),
        ConformanceService(resources),
        ReportService(search=search, clock=clock, engine=engine),
        audit,
        SubscriptionService(engine=engine),
        MetricsService(engine=engine, referrals=referrals, recorder=audit.recorder),
        PeopleService(engine=engine, clock=clock, settings=settings),
        DirectoryService(resources=resources, search=search, bundles=bundles, clock=clock),
    )
