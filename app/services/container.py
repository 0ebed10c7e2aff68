"""The services one app instance uses, built once at start-up from settings and a clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.services.bundle import BundleService
from app.services.everything import EverythingService
from app.services.export import ExportService
from app.services.health import HealthService
from app.services.history import HistoryService
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
    subscriptions: SubscriptionService


def build_services(*, settings: Settings, engine: Engine, clock: Clock) -> Services:
    """Wire the services together."""
    resources = ResourceService(engine=engine, clock=clock, settings=settings)
    resources.add_hook(SubscriptionHook(settings=settings, clock=clock))
    history = HistoryService(
        engine=engine,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )
    health = HealthService(engine=engine)
    search = SearchService(
        engine=engine,
        clock=clock,
        own_base=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )
    bundles = BundleService(resources=resources, search=search, settings=settings)
    everything = EverythingService(
        engine=engine,
        clock=clock,
        own_base=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
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
        ExportService(engine=engine, clock=clock, settings=settings),
        SubscriptionService(engine=engine),
    )
