"""Configuration: one Settings class, read from CASEBRIDGE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

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
    max_json_depth: int = Field(default=64, ge=8, le=512)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    db_pool_size: int = Field(default=8, ge=1)
    db_busy_timeout_ms: int = Field(default=5000, ge=0)
    # SQLite's own WAL auto-checkpoint runs inside whichever commit crosses the threshold
    # and makes that request's latency spike; a background thread checkpoints instead.
    sqlite_checkpoint_interval_s: float = Field(default=1.0, gt=0)
    worker_threads: int = Field(
        default=1,
        ge=1,
        description="Threads per process that run request handlers (they share one GIL).",
    )
    gil_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)
    migrate: bool = Field(default=False, description="Apply pending migrations at start-up.")
    export_retention_s: float = Field(
        default=3600,
        gt=0,
        description="How long a finished bulk export's files stay downloadable ($export).",
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
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite default under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'casebridge.db').as_posix()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own and pass them to create_app)."""
    return Settings()
