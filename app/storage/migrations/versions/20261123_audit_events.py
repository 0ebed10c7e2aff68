"""AuditEvents (IHE BALP) in an append-only table of their own.

Revision ID: 20261123_audit_events
Revises: 20261123_api_clients
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261123_audit_events"
down_revision: str | None = "20261123_api_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency", sa.String(80), nullable=True),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("patient", sa.String(80), nullable=True),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=True),
        sa.Column("entity_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_agency_recorded", "audit_event", ["agency", "recorded"])
    op.create_index("ix_audit_event_patient_recorded", "audit_event", ["patient", "recorded"])
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded", "id"])
    op.create_index("ix_audit_event_entity", "audit_event", ["entity_type", "entity_id"])


def downgrade() -> None:
    for name in (
        "ix_audit_event_entity",
        "ix_audit_event_recorded",
        "ix_audit_event_patient_recorded",
        "ix_audit_event_agency_recorded",
    ):
        op.drop_index(name, table_name="audit_event")
    op.drop_table("audit_event")
