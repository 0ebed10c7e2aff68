"""The tables, declared with SQLModel; the hot path queries them with SQLAlchemy Core.

Storage shape (docs/architecture.md): the current version of each resource, every version
ever written (append-only), and index rows for search, all written in one transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Double, Index, Integer, MetaData, String, Text
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from app.storage.types import JSONBody, UTCDateTime

# Constraint names that Alembic can reproduce on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


class ResourceRow(SQLModel, table=True):
    """The current version of each resource (a deleted one keeps its row, body NULL)."""

    __tablename__ = "resource"
    __table_args__ = (Index("ix_resource_type_updated", "resource_type", "last_updated"),)

    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(nullable=False)
    last_updated: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    deleted: bool = Field(default=False, nullable=False)
    body: bytes | None = Field(default=None, sa_column=Column(JSONBody(), nullable=True))


class ResourceVersionRow(SQLModel, table=True):
    """Every version of every resource, never updated in place (history and vread)."""

    __tablename__ = "resource_version"
    __table_args__ = (
        Index("ix_resource_version_updated", "last_updated"),
        Index("ix_resource_version_type_updated", "resource_type", "last_updated"),
    )

    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(primary_key=True)
    last_updated: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    method: str = Field(sa_column=Column(String(8), nullable=False))
    body: bytes | None = Field(default=None, sa_column=Column(JSONBody(), nullable=True))


# Index tables: one per kind of search value (spec search.html#ptypes). Each row belongs to
# the current version of one live resource; a write replaces them all, a delete removes them.
# Text that queries compare by range (prefix search) uses the "C" collation on PostgreSQL so
# that byte order, not a locale's, decides (SQLite compares bytes already).


def _ordered_text(length: int) -> TypeEngine[str]:
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# A BIGINT key on PostgreSQL (rows are rewritten on every update); SQLite's rowid alias must
# be INTEGER.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class _IndexRow(SQLModel):
    row_id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    resource_type: str = Field(sa_type=String(64), nullable=False)
    resource_id: str = Field(sa_type=String(64), nullable=False)
    param: str = Field(sa_type=String(80), nullable=False)


def _owner_index(table: str, *values: str) -> Index:
    # Replacing a resource's rows, _include, and per-candidate EXISTS probes use it; with
    # param as a third column SQLite prefers it to the value index for a probe even
    # before ANALYZE has gathered statistics. The values the probes compare follow, so a
    # probe reads the index alone (no lookup of the row in the table).
    return Index(f"ix_{table}_owner", "resource_type", "resource_id", "param", *values)


def _lookup_index(name: str, *columns: str) -> Index:
    # resource_id last: the index alone answers "which resources hold this value" (no row
    # lookup per match: a status or code shared by thousands of resources cost one random
    # read each), and for an equal value it lists them in id order, the default page order.
    return Index(name, "resource_type", "param", *columns, "resource_id")


class TokenIndexRow(_IndexRow, table=True):
    """token (search.html#token): system|code, or text alone (display, CodeableConcept.text)
    for :text, normalised as strings are."""

    __tablename__ = "search_token"
    __table_args__ = (
        # resource_id before system: a bare code (status=requested, code=X), the common
        # token search, then lists its resources in id order too.
        Index("ix_search_token_lookup", "resource_type", "param", "code", "resource_id", "system"),
        _lookup_index("ix_search_token_text", "text"),
        _owner_index("search_token", "code", "system"),
    )

    system: str | None = Field(default=None, sa_type=String(255), nullable=True)
    code: str | None = Field(default=None, sa_type=String(255), nullable=True)
    text: str | None = Field(default=None, sa_type=_ordered_text(255), nullable=True)


class OfTypeIndexRow(_IndexRow, table=True):
    """Identifier type + value, for token :of-type (search.html#token)."""

    __tablename__ = "search_of_type"
    __table_args__ = (
        _lookup_index("ix_search_of_type_lookup", "value"),
        _owner_index("search_of_type"),
    )

    type_system: str | None = Field(default=None, sa_type=String(255), nullable=True)
    type_code: str | None = Field(default=None, sa_type=String(255), nullable=True)
    value: str = Field(sa_type=String(255), nullable=False)


class StringIndexRow(_IndexRow, table=True):
    """string (search.html#string): normalised for prefix and :contains, as written for :exact."""

    __tablename__ = "search_string"
    __table_args__ = (
        _lookup_index("ix_search_string_lookup", "normalized"),
        _owner_index("search_string"),
    )

    normalized: str = Field(sa_type=_ordered_text(255), nullable=False)
    exact: str = Field(sa_type=Text(), nullable=False)


class ReferenceIndexRow(_IndexRow, table=True):
    """reference (search.html#reference): a local target (type, id, version) and/or a url."""

    __tablename__ = "search_reference"
    __table_args__ = (
        _lookup_index("ix_search_reference_target", "target_id", "target_type"),
        _lookup_index("ix_search_reference_url", "url"),
        _owner_index("search_reference", "target_type", "target_id"),
    )

    target_type: str | None = Field(default=None, sa_type=String(64), nullable=True)
    target_id: str | None = Field(default=None, sa_type=String(64), nullable=True)
    version: str | None = Field(default=None, sa_type=String(64), nullable=True)
    url: str | None = Field(default=None, sa_type=_ordered_text(500), nullable=True)


class DateIndexRow(_IndexRow, table=True):
    """date (search.html#date): the half-open UTC interval [low, high) a value covers."""

    __tablename__ = "search_date"
    __table_args__ = (
        _lookup_index("ix_search_date_lookup", "low", "high"),
        _owner_index("search_date", "low", "high"),
    )

    low: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    high: datetime = Field(sa_type=UTCDateTime(), nullable=False)


class QuantityIndexRow(_IndexRow, table=True):
    """quantity (search.html#quantity): value as written, closed interval [low, high], units."""

    __tablename__ = "search_quantity"
    __table_args__ = (
        _lookup_index("ix_search_quantity_lookup", "value"),
        _owner_index("search_quantity"),
    )

    value: float = Field(sa_type=Double(), nullable=False)
    low: float = Field(sa_type=Double(), nullable=False)
    high: float = Field(sa_type=Double(), nullable=False)
    system: str | None = Field(default=None, sa_type=String(255), nullable=True)
    code: str | None = Field(default=None, sa_type=String(255), nullable=True)
    unit: str | None = Field(default=None, sa_type=String(255), nullable=True)


class NumberIndexRow(_IndexRow, table=True):
    """number (search.html#number): value as written and closed interval [low, high]."""

    __tablename__ = "search_number"
    __table_args__ = (
        _lookup_index("ix_search_number_lookup", "value"),
        _owner_index("search_number"),
    )

    value: float = Field(sa_type=Double(), nullable=False)
    low: float = Field(sa_type=Double(), nullable=False)
    high: float = Field(sa_type=Double(), nullable=False)


class UriIndexRow(_IndexRow, table=True):
    """uri (search.html#uri): as written; :below and :above work on the text."""

    __tablename__ = "search_uri"
    __table_args__ = (
        _lookup_index("ix_search_uri_lookup", "uri"),
        _owner_index("search_uri"),
    )

    uri: str = Field(sa_type=_ordered_text(500), nullable=False)


resource_table = ResourceRow.__table__  # type: ignore[attr-defined]
version_table = ResourceVersionRow.__table__  # type: ignore[attr-defined]
token_table = TokenIndexRow.__table__  # type: ignore[attr-defined]
of_type_table = OfTypeIndexRow.__table__  # type: ignore[attr-defined]
string_table = StringIndexRow.__table__  # type: ignore[attr-defined]
reference_table = ReferenceIndexRow.__table__  # type: ignore[attr-defined]
date_table = DateIndexRow.__table__  # type: ignore[attr-defined]
quantity_table = QuantityIndexRow.__table__  # type: ignore[attr-defined]
number_table = NumberIndexRow.__table__  # type: ignore[attr-defined]
uri_table = UriIndexRow.__table__  # type: ignore[attr-defined]
index_tables = (
    token_table,
    of_type_table,
    string_table,
    reference_table,
    date_table,
    quantity_table,
    number_table,
    uri_table,
)


class ExportJobRow(SQLModel, table=True):
    """A bulk data export job (Bulk Data Access IG $export): kept in the database so that
    any API process can answer the status poll, whichever process runs the job.

    Times other than transaction_time are wall-clock bookkeeping (expiry, staleness);
    transaction_time is on the clock that stamps lastUpdated. params and manifest are JSON
    text. requester is a placeholder until requests are authenticated.
    """

    __tablename__ = "export_job"
    __table_args__ = (Index("ix_export_job_expires", "expires_at"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    request_url: str = Field(sa_column=Column(Text(), nullable=False))
    params: str = Field(sa_column=Column(Text(), nullable=False))
    requester: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    transaction_time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    progress: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    manifest: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


export_job_table = ExportJobRow.__table__  # type: ignore[attr-defined]


# -- Access: who owns what, what referrals share, what consents permit, what was released ----
# (docs/architecture.md "Tenancy and privacy"). Kept beside the resources rather than in
# their bodies so that the access rule is a few primary-key probes in every query.


class ResourceOwnerRow(SQLModel, table=True):
    """The agency that created a resource, and whether it carries a sensitivity label.

    No row: written by the local operator (auth off, no agency) and unlabelled, i.e. shared
    reference data every agency may read. agency NULL with a row: an operator-written
    labelled resource, which no agency sees without a referral and a consent.
    """

    __tablename__ = "resource_owner"
    # The access rule probes it once per search candidate: with the agency and the label in
    # the index, a probe never reads the row. SQLite's planner probes by the primary key
    # instead, so there the table is that key's b-tree (WITHOUT ROWID).
    __table_args__ = (
        Index("ix_resource_owner_access", "resource_type", "resource_id", "agency", "sensitive"),
        {"sqlite_with_rowid": False},
    )

    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    resource_id: str = Field(sa_column=Column(String(64), primary_key=True))
    agency: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    sensitive: bool = Field(default=False, nullable=False)


class AccessGrantRow(SQLModel, table=True):
    """A resource another agency may see because a referral Task names both agencies.

    basis "referral": the Task and its ServiceRequest (released by the referral alone unless
    labelled sensitive); basis "client": the client's data the referral carries (released
    only while a Consent of patient_id permits it).
    """

    __tablename__ = "access_grant"
    __table_args__ = (
        Index("ix_access_grant_target", "resource_type", "resource_id", "agency"),
        Index("ix_access_grant_task", "task_id"),
    )

    row_id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    agency: str = Field(sa_type=String(80), nullable=False)
    resource_type: str = Field(sa_type=String(64), nullable=False)
    resource_id: str = Field(sa_type=String(64), nullable=False)
    basis: str = Field(sa_type=String(16), nullable=False)
    patient_id: str | None = Field(default=None, sa_type=String(64), nullable=True)
    task_id: str = Field(sa_type=String(64), nullable=False)
    # The resource's owning agency, which shared it ("" for the local operator): a consent
    # releases it only if that agency recorded the consent.
    grantor: str = Field(default="", sa_type=String(80), nullable=False)


class ConsentGrantRow(SQLModel, table=True):
    """What one active permit Consent allows: the client's data to one agency, in a period,
    and labelled (42 CFR Part 2) data too when its purpose of use allows that."""

    __tablename__ = "consent_grant"
    __table_args__ = (
        Index("ix_consent_grant_patient", "patient_id", "agency", "grantor"),
        Index("ix_consent_grant_consent", "consent_id"),
    )

    row_id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    consent_id: str = Field(sa_type=String(64), nullable=False)
    patient_id: str = Field(sa_type=String(64), nullable=False)
    agency: str = Field(sa_type=String(80), nullable=False)
    starts: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    ends: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    sensitive_ok: bool = Field(default=False, nullable=False)
    # The agency that recorded the Consent ("" for the local operator): it releases only
    # that agency's records (only an owner shares).
    grantor: str = Field(default="", sa_type=String(80), nullable=False)


class DisclosureRow(SQLModel, table=True):
    """One release of a client's record to an agency other than its owner (accounting of
    disclosures: Patient/{id}/$disclosures)."""

    __tablename__ = "disclosure"
    __table_args__ = (Index("ix_disclosure_patient", "patient_id", "disclosed_at"),)

    row_id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    disclosed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    agency: str = Field(sa_type=String(80), nullable=False)
    owner_agency: str | None = Field(default=None, sa_type=String(80), nullable=True)
    resource_type: str = Field(sa_type=String(64), nullable=False)
    resource_id: str = Field(sa_type=String(64), nullable=False)
    version_id: int = Field(nullable=False)
    patient_id: str | None = Field(default=None, sa_type=String(64), nullable=True)
    consent_id: str | None = Field(default=None, sa_type=String(64), nullable=True)
    interaction: str = Field(sa_type=String(32), nullable=False)
    sensitive: bool = Field(default=False, nullable=False)


resource_owner_table = ResourceOwnerRow.__table__  # type: ignore[attr-defined]
access_grant_table = AccessGrantRow.__table__  # type: ignore[attr-defined]
consent_grant_table = ConsentGrantRow.__table__  # type: ignore[attr-defined]
disclosure_table = DisclosureRow.__table__  # type: ignore[attr-defined]
# --- API clients and SMART Backend Services (issue 6, "who is asking") --------------------


class ApiClientRow(SQLModel, table=True):
    """A registered API client (SMART Backend Services): the agency it acts for, the public
    keys it signs its client assertions with (inline JWK Set or a JWKS URL) and the scopes
    it may be granted. jwks is JSON text; scopes are space-separated."""

    __tablename__ = "api_client"

    client_id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    agency: str = Field(sa_column=Column(String(80), nullable=False))
    jwks: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    jwks_url: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    scopes: str = Field(sa_column=Column(Text(), nullable=False))
    disabled: bool = Field(default=False, nullable=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AuthJtiRow(SQLModel, table=True):
    """A client assertion's jti, kept until the assertion expires so that no process
    accepts it twice (Backend Services: replay refused)."""

    __tablename__ = "auth_jti"
    __table_args__ = (Index("ix_auth_jti_expires", "expires_at"),)

    client_id: str = Field(sa_column=Column(String(64), primary_key=True))
    jti: str = Field(sa_column=Column(String(255), primary_key=True))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AuthSigningKeyRow(SQLModel, table=True):
    """The server's access-token signing key(s), shared by every process (private JWK
    JSON). The oldest row signs; every row verifies."""

    __tablename__ = "auth_signing_key"

    kid: str = Field(sa_column=Column(String(64), primary_key=True))
    private_jwk: str = Field(sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WebUserRow(SQLModel, table=True):
    """A person who signs in to the web app: their agency and the Practitioner they are,
    a memory-hard password hash (argon2id), and the failed sign-ins that lock the account."""

    __tablename__ = "web_user"
    __table_args__ = (Index("ux_web_user_email", "email", unique=True),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    # Lower-cased: one account per address however it is typed.
    email: str = Field(sa_column=Column(String(254), nullable=False))
    name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    agency: str = Field(sa_column=Column(String(80), nullable=False))
    practitioner: str = Field(sa_column=Column(String(80), nullable=False))
    password_hash: str = Field(sa_column=Column(Text(), nullable=False))
    failed_logins: int = Field(default=0, sa_column=Column(Integer(), nullable=False))
    locked_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    disabled: bool = Field(default=False, nullable=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The person's TOTP secret (RFC 6238, base32) once they have enrolled a second factor.
    totp_secret: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class WebAgencyRow(SQLModel, table=True):
    """What an agency asks of its people's sign-in: a second factor (TOTP) or not."""

    __tablename__ = "web_agency"

    agency: str = Field(sa_column=Column(String(80), primary_key=True))
    require_totp: bool = Field(default=False, nullable=False)


class WebSessionRow(SQLModel, table=True):
    """A signed-in browser: the SHA-256 of the cookie's random token (the token itself is
    never stored), its CSRF token, and when it was last used and ends."""

    __tablename__ = "web_session"
    __table_args__ = (
        Index("ix_web_session_user", "user_id"),
        Index("ix_web_session_expires", "expires_at"),
    )

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(sa_column=Column(String(64), nullable=False))
    csrf: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # "full" once signed in; "totp" waiting for the second factor; "enrol" waiting for the
    # first code of a new second factor (whose secret is kept here until confirmed).
    stage: str = Field(default="full", sa_column=Column(String(8), nullable=False))
    enrol_secret: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


api_client_table = ApiClientRow.__table__  # type: ignore[attr-defined]
auth_jti_table = AuthJtiRow.__table__  # type: ignore[attr-defined]
auth_signing_key_table = AuthSigningKeyRow.__table__  # type: ignore[attr-defined]
web_user_table = WebUserRow.__table__  # type: ignore[attr-defined]
web_session_table = WebSessionRow.__table__  # type: ignore[attr-defined]
web_agency_table = WebAgencyRow.__table__  # type: ignore[attr-defined]
# --- Accountability: AuditEvents (issue 6) -----------------------------------------------


class AuditEventRow(SQLModel, table=True):
    """One AuditEvent (IHE BALP), append-only: never updated or deleted by the API.

    Kept apart from the resource table: one row per read would flood system history,
    exports and the search indexes. The columns are what auditors filter on; body is the
    AuditEvent as served.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_agency_recorded", "agency", "recorded"),
        Index("ix_audit_event_patient_recorded", "patient", "recorded"),
        Index("ix_audit_event_recorded", "recorded", "id"),
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
    )

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    recorded: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    agency: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    client_id: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    patient: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    subtype: str = Field(sa_column=Column(String(32), nullable=False))
    action: str = Field(sa_column=Column(String(1), nullable=False))
    outcome: str = Field(sa_column=Column(String(2), nullable=False))
    entity_type: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    entity_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    body: bytes = Field(sa_column=Column(JSONBody(), nullable=False))


audit_event_table = AuditEventRow.__table__  # type: ignore[attr-defined]
# -- Subscriptions and the notification outbox (issue 5) -------------------------------------


class SubscriptionStateRow(SQLModel, table=True):
    """What the delivery side needs of one Subscription resource, kept in step with it by a
    write hook in the same transaction: the parsed channel and criteria, the agency that
    wrote it, and the event counter whose row lock orders events per subscription."""

    __tablename__ = "subscription_state"
    __table_args__ = (Index("ix_subscription_state_match", "resource_type", "status"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    # The Subscription resource version this row describes.
    version_id: int = Field(nullable=False)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # The resource type the criteria select, and the criteria as a search query string.
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    query: str = Field(sa_column=Column(Text(), nullable=False))
    topic: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    payload: str = Field(sa_column=Column(String(16), nullable=False))
    endpoint: str = Field(sa_column=Column(Text(), nullable=False))
    headers: str = Field(sa_column=Column(Text(), nullable=False))  # JSON list of "Name: value"
    heartbeat_s: int = Field(default=0, nullable=False)
    agency: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    events: int = Field(default=0, sa_type=BigInteger(), nullable=False)
    error: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    # Wall-clock time of the last successful POST (heartbeats are due a period after it).
    last_sent_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class OutboxRow(SQLModel, table=True):
    """One notification to deliver, written in the transaction of the change it reports
    (kind event) or of the Subscription write that asks for a handshake (kind handshake).
    Delivered rows are kept (state delivered) as a record of what was sent."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index("ix_notification_outbox_head", "state", "subscription_id", "id"),
        Index("ix_notification_outbox_event", "subscription_id", "event_number"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_ROW_ID)
    subscription_id: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    # The per-subscription event number (events only).
    event_number: int | None = Field(default=None, sa_type=BigInteger(), nullable=True)
    # The version that caused the event (events), or the Subscription version (handshake).
    focus_type: str = Field(sa_column=Column(String(64), nullable=False))
    focus_id: str = Field(sa_column=Column(String(64), nullable=False))
    focus_version: int = Field(nullable=False)
    method: str = Field(sa_column=Column(String(8), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))  # pending | delivered
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    lease_owner: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # The X-Request-ID of the request whose write raised the event, sent with it.
    request_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))


subscription_state_table = SubscriptionStateRow.__table__  # type: ignore[attr-defined]
outbox_table = OutboxRow.__table__  # type: ignore[attr-defined]
