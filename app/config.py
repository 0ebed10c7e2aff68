"""Configuration: one Settings class, read from CASEBRIDGE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    """Every tunable of the service; each field is CASEBRIDGE_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CASEBRIDGE_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file under data_dir.",
    )
    base_url: str = Field(
        default="http://localhost:8000/fhir",
        description="Public base URL of the FHIR endpoint, used in Location headers and links.",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_bundle_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest batch/transaction body."
    )
    max_bundle_entries: int = Field(
        default=5000, ge=1, description="Most entries in one batch or transaction Bundle."
    )
    max_bundle_searches: int = Field(
        default=100,
        ge=1,
        description="Most search entries (GET of a type or with criteria) in one batch or "
        "transaction: a search costs far more than a write, and one request may not "
        "occupy the server for seconds.",
    )
    max_json_depth: int = Field(default=64, ge=8, le=512)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    db_pool_size: int = Field(default=8, ge=1)
    db_busy_timeout_ms: int = Field(default=5000, ge=0)
    # SQLite's own WAL auto-checkpoint runs inside whichever commit crosses the threshold
    # and makes that request's latency spike; a background thread checkpoints instead.
    sqlite_checkpoint_interval_s: float = Field(default=1.0, gt=0)
    # Past this the checkpointer empties the WAL between two writers (TRUNCATE), however
    # busy the readers are; PASSIVE checkpoints alone let it grow without bound.
    sqlite_wal_max_mb: int = Field(default=64, ge=1)
    # FULL: every acknowledged write survives a power cut or an OS crash (the WAL is synced
    # at each commit). NORMAL is faster and may lose the writes acknowledged just before
    # one; README "Operating casebridge" gives the cost of each.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Read transactions refuse to write (PRAGMA query_only): a check for tests, which find
    # a write in a read transaction every time instead of now and then (app/storage/db.py).
    sqlite_read_only_guard: bool = False
    # GET /metrics in the Prometheus text format, unauthenticated (no personal data): serve it
    # where only the monitoring system reaches it (README, "Operating casebridge").
    metrics: bool = False
    # The law sensitive records are kept under (app/security/policy.py REGIMES): the labels
    # of an AOD record and the notice on a release. Australian Privacy Principles by
    # default; US 42 CFR Part 2 as an option.
    privacy_regime: Literal["au-app", "us-42cfr2"] = "au-app"
    # The bands a K10 total is read on: "clinical" (AIHW METeOR 634146: likely to be well,
    # mild, moderate, severe) or "abs" (ABS National Health Survey: low, moderate, high,
    # very high), as the agency reports.
    k10_bands: Literal["clinical", "abs"] = "clinical"
    # The web app for case workers (app/web): people sign in with local accounts
    # (`casebridge users add`); sessions live in the database, so any API process serves them.
    web: bool = True
    web_session_idle_minutes: int = Field(default=60, ge=5, le=24 * 60)
    web_session_max_hours: int = Field(default=12, ge=1, le=24 * 7)
    # Failed sign-ins in a row before an account is locked, and for how long.
    web_max_failures: int = Field(default=5, ge=1, le=100)
    web_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Session cookies are Secure when base_url is https; "always" forces it behind a proxy
    # that terminates TLS with an http base_url.
    web_secure_cookies: Literal["auto", "always", "never"] = "auto"
    # How often the referral inbox's event stream looks for changes (seconds).
    web_events_poll_s: float = Field(default=2.0, ge=0.1, le=60)
    # One JSON line per request on the casebridge.request logger (README, "Logs").
    request_log: bool = True
    # Audit retention run by `casebridge worker`: AuditEvents older than this many days move
    # to compressed NDJSON archives in audit_archive_dir (default: data_dir/audit-archive).
    # 0: never (run `casebridge audit archive` instead). README, "Retention".
    audit_archive_days: int = Field(default=0, ge=0)
    audit_archive_dir: Path | None = None
    audit_archive_interval_s: float = Field(default=86_400.0, gt=0)
    # OpenTelemetry tracing over OTLP/HTTP, configured by the standard OTEL_* variables
    # (app/tracing.py; needs the otel extra).
    otel: bool = False
    # Reads through a memory map instead of read() calls into a small per-connection cache:
    # at a million resources the search probes spent more time in system calls than in
    # SQLite (sqlite.org/mmap.html). 0 turns it off; SQLite caps it at about 2 GiB.
    sqlite_mmap_mb: int = Field(default=2048, ge=0)
    worker_threads: int = Field(
        default=1,
        ge=1,
        description="Threads per process that run request handlers (they share one GIL).",
    )
    gil_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)
    migrate: bool = Field(default=False, description="Apply pending migrations at start-up.")
    install_conformance: bool = Field(
        default=True,
        description="Install the project's CodeSystems, ValueSets and Questionnaires at start-up.",
    )
    export_retention_s: float = Field(
        default=3600,
        gt=0,
        description="How long a finished bulk export's files stay downloadable ($export).",
    )

    agency_update_create: bool = Field(
        default=False,
        description="Let agencies create records with ids they choose (PUT to a new id, "
        "spec http.html#update). Off: an agency's PUT to an id it cannot see answers 404 "
        "whether the id is free or another agency's, so ids tell nothing; on: a PUT to an "
        "id another agency holds answers 404 where a free one would be created.",
    )

    auth: Literal["smart", "off"] = Field(
        default="smart",
        description=(
            "smart: every API request needs a SMART Backend Services access token. "
            "off: local development only (loopback binds); requests act for the agency in "
            "the X-Casebridge-Agency header, else default_agency, else the local operator."
        ),
    )
    default_agency: str = Field(
        default="",
        description="With auth off: the agency (Organization/{id}) a request without the "
        "X-Casebridge-Agency header acts for; empty means the unconfined local operator.",
    )
    # SMART Backend Services (app/services/auth/tokens.py).
    auth_public_url: str = Field(
        default="",
        description="Public URL under which /auth/* (token, introspection) is served; empty "
        "means base_url without its trailing /fhir. Client assertions name "
        "{auth_public_url}/auth/token as their aud.",
    )
    auth_token_lifetime_s: int = Field(
        default=300, ge=1, le=300, description="Lifetime of an access token (at most 300 s)."
    )
    auth_clock_leeway_s: int = Field(
        default=0,
        ge=0,
        le=60,
        description="Clock skew tolerated on a client assertion's exp, nbf and iat.",
    )
    auth_signing_key_file: Path | None = Field(
        default=None,
        description="EC P-256 private key (PEM or JWK) that signs access tokens; unset means "
        "a key generated on first use and kept in the database, shared by every process.",
    )
    auth_jwks_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout fetching a client's JWKS URL."
    )
    auth_jwks_cache_s: float = Field(
        default=300.0, ge=0, description="How long a fetched client JWKS is reused."
    )
    auth_jwks_refetch_s: float = Field(
        default=10.0,
        ge=0,
        description="Least time between two fetches of one JWKS URL made because an assertion "
        "named a kid the cached set lacks (a rotated key).",
    )
    auth_client_cache_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long a process trusts what it read of a client's registration when "
        "checking access tokens (a disabled client's tokens stop within this time).",
    )

    # Referrals (issue 5): overdue after this many business days (Mon-Fri, UTC).
    referral_accept_days: int = Field(
        default=3, ge=0, description="A referral still requested after this is overdue."
    )
    referral_start_days: int = Field(
        default=3, ge=0, description="A referral accepted but not started after this is overdue."
    )

    # Accountability (issue 6): AuditEvents and Provenance.
    audit_reads: bool = Field(
        default=True,
        description="Audit reads, searches and refusals (batched); false only to measure "
        "what the read audit costs. Writes are always audited.",
    )
    audit_flush_ms: int = Field(
        default=200,
        ge=1,
        le=60_000,
        description="Longest a read's AuditEvent waits in memory before it is written: "
        "what a crash can lose.",
    )
    audit_batch_size: int = Field(
        default=500, ge=1, description="AuditEvents written in one transaction at most."
    )
    audit_max_backlog: int = Field(
        default=20_000,
        ge=1,
        description="Queued AuditEvents beyond which requests wait for the audit to catch up.",
    )
    provenance: bool = Field(
        default=True, description="Store a Provenance with every write (same transaction)."
    )

    # Subscriptions (issue 5): delivery of notifications from the outbox.
    notify_worker: bool = Field(
        default=True,
        description="Run the notification delivery worker inside the server process "
        "(false when `casebridge worker` runs separately).",
    )
    notify_poll_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="How often the worker looks for other "
        "processes' commits (its own process's commits wake it at once).",
    )
    notify_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one POST.")
    notify_allow_private_endpoints: bool = Field(
        default=False,
        description="Deliver notifications to endpoints on loopback, private, link-local "
        "and other non-public addresses (off: such endpoints are refused when a "
        "Subscription is written and before each delivery; app/security/targets.py).",
    )
    notify_retry_base_s: float = Field(
        default=1.0, gt=0, description="First retry delay; doubles per failed attempt."
    )
    notify_retry_max_s: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    notify_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Failed attempts of one notification after which its "
        "Subscription is set to error.",
    )
    notify_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker owns a notification it is sending "
        "(after that another worker may send it again).",
    )
    notify_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Notifications in flight at once per worker (at most one per subscription).",
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def auth_base(self) -> str:
        """Public URL of the /auth endpoints (without a trailing slash)."""
        if self.auth_public_url:
            return self.auth_public_url.rstrip("/")
        base = self.base_url.rstrip("/")
        if base.endswith("/fhir"):
            return base.removesuffix("/fhir")
        parts = urlsplit(base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite default under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'casebridge.db').as_posix()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own and pass them to create_app)."""
    return Settings()
