"""The services one app instance uses, built once at start-up from settings and a clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.services.access import AccessHook
from app.services.assessments import AssessmentScoring
from app.services.audit import AuditRecorder, AuditService
from app.services.auth import AuthService, signing_secret
from app.services.bundle import BundleService
from app.services.cases import CaseService
from app.services.clients import ClientRegistry
from app.services.conformance import ConformanceService
from app.services.disclosure import DisclosureLog
from app.services.everything import EverythingService
from app.services.export import ExportService
from app.services.health import HealthService
from app.services.history import HistoryService
from app.services.jwks import JwksFetcher
from app.services.params import Cursors
from app.services.referral_rules import ReferralRules
from app.services.referrals import ReferralService, plain_referral_bundle
from app.services.reports import ReportService
from app.services.resources import ResourceService
from app.services.search import SearchService
from app.services.subscriptions import SubscriptionHook, SubscriptionService


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
    conformance: ConformanceService
    reports: ReportService
    audit: AuditService
    subscriptions: SubscriptionService


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
    disclosures = DisclosureLog(
        engine=engine,
        clock=clock,
        cursors=cursors,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )
    resources = ResourceService(
        engine=engine, clock=clock, settings=settings, disclosures=disclosures
    )
    # First: the other hooks see only writes the caller may make, with labels applied.
    resources.add_hook(AccessHook(clock=clock, own_base=settings.base_url))
    # Then the outbox: a change that any later hook refuses rolls back with its rows.
    resources.add_hook(SubscriptionHook(settings=settings, clock=clock))
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
    # Case management: assessment scoring on the one write path.
    resources.add_hook(AssessmentScoring(resources))
    cases = CaseService(resources=resources, bundles=bundles, search=search, clock=clock)
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
        _referrals(resources, bundles, search, clock, settings),
        cases,
        ConformanceService(resources),
        ReportService(search=search, clock=clock, engine=engine),
        # Last: its write hook records what the other hooks let through.
        _audit(resources, engine=engine, clock=clock, settings=settings, cursors=cursors),
        SubscriptionService(engine=engine),
    )


def _referrals(
    resources: ResourceService,
    bundles: BundleService,
    search: SearchService,
    clock: Clock,
    settings: Settings,
) -> ReferralService:
    """The referral rules on every write path, and the referral use cases (issue 5)."""
    resources.add_hook(ReferralRules(resources=resources, clock=clock, base_url=settings.base_url))
    return ReferralService(
        resources=resources,
        bundles=bundles,
        search=search,
        clock=clock,
        settings=settings,
        from_plain=plain_referral_bundle,
    )


def _audit(
    resources: ResourceService,
    *,
    engine: Engine,
    clock: Clock,
    settings: Settings,
    cursors: Cursors,
) -> AuditService:
    """The audit log; its write hook goes last, so it records what the other hooks let
    through, as it was stored."""
    recorder = AuditRecorder(engine=engine, settings=settings)
    audit = AuditService(
        engine=engine, clock=clock, settings=settings, recorder=recorder, cursors=cursors
    )
    resources.add_hook(audit.hook)
    return audit
