"""Access: resource owners, referral shares, consent grants, disclosures (tenancy rules).

Revision ID: 20261123_access
Revises: 20261123_export_jobs
Create Date: 2026-11-23

Resources written before this revision have no owner row: every agency may read them, as
reference data written by the local operator.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_access"
down_revision: str | None = "20261123_export_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resource_owner",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(80), nullable=True),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", name="pk_resource_owner"),
    )
    op.create_table(
        "access_grant",
        sa.Column("row_id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("agency", sa.String(80), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_access_grant"),
    )
    op.create_index(
        "ix_access_grant_target", "access_grant", ["resource_type", "resource_id", "agency"]
    )
    op.create_index("ix_access_grant_task", "access_grant", ["task_id"])
    op.create_table(
        "consent_grant",
        sa.Column("row_id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(80), nullable=False),
        sa.Column("starts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sensitive_ok", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_consent_grant"),
    )
    op.create_index("ix_consent_grant_patient", "consent_grant", ["patient_id", "agency"])
    op.create_index("ix_consent_grant_consent", "consent_grant", ["consent_id"])
    op.create_table(
        "disclosure",
        sa.Column("row_id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("disclosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency", sa.String(80), nullable=False),
        sa.Column("owner_agency", sa.String(80), nullable=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("consent_id", sa.String(64), nullable=True),
        sa.Column("interaction", sa.String(32), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_disclosure"),
    )
    op.create_index("ix_disclosure_patient", "disclosure", ["patient_id", "disclosed_at"])


def downgrade() -> None:
    op.drop_index("ix_disclosure_patient", table_name="disclosure")
    op.drop_table("disclosure")
    op.drop_index("ix_consent_grant_consent", table_name="consent_grant")
    op.drop_index("ix_consent_grant_patient", table_name="consent_grant")
    op.drop_table("consent_grant")
    op.drop_index("ix_access_grant_task", table_name="access_grant")
    op.drop_index("ix_access_grant_target", table_name="access_grant")
    op.drop_table("access_grant")
    op.drop_table("resource_owner")
