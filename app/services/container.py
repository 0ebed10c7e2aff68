"""The services one app instance uses, built once at start-up from settings and a clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.services.access import AccessHook
from app.services.auth import AuthService
from app.services.bundle import BundleService
from app.services.clients import ClientRegistry
from app.services.disclosure import DisclosureLog
from app.services.everything import EverythingService
from app.services.export import ExportService
from app.services.health import HealthService
from app.services.history import HistoryService
from app.services.jwks import JwksFetcher
from app.services.referral_rules import ReferralRules
from app.services.referrals import ReferralService
from app.services.resources import ResourceService
from app.services.search import SearchService


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


def build_services(*, settings: Settings, engine: Engine, clock: Clock) -> Services:
    """Wire the services together."""
    disclosures = DisclosureLog(
        engine=engine,
        clock=clock,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )
    resources = ResourceService(
        engine=engine, clock=clock, settings=settings, disclosures=disclosures
    )
    # First: the other hooks see only writes the caller may make, with labels applied.
    resources.add_hook(AccessHook(clock=clock, own_base=settings.base_url))
    history = HistoryService(
        engine=engine,
        clock=clock,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        disclosures=disclosures,
    )
    health = HealthService(engine=engine)
    search = SearchService(
        engine=engine,
        clock=clock,
        own_base=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        disclosures=disclosures,
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
    )
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
        resources=resources, bundles=bundles, search=search, clock=clock, settings=settings
    )
