"""Initial resource storage: current versions, version history, token index.

Revision ID: 20261123_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261123_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON_BODY = sa.Text().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", _JSON_BODY, nullable=True),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_resource"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated"])
    op.create_table(
        "resource_version",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("body", _JSON_BODY, nullable=True),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id", name="pk_resource_version"),
    )
    op.create_index("ix_resource_version_updated", "resource_version", ["last_updated"])
    op.create_index(
        "ix_resource_version_type_updated", "resource_version", ["resource_type", "last_updated"]
    )
    op.create_table(
        "search_token",
        sa.Column("row_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", sa.String(255), nullable=True),
        sa.Column("code", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name="pk_search_token"),
    )
    op.create_index(
        "ix_search_token_lookup", "search_token", ["resource_type", "param", "code", "system"]
    )
    op.create_index("ix_search_token_owner", "search_token", ["resource_type", "resource_id"])


def downgrade() -> None:
    op.drop_table("search_token")
    op.drop_table("resource_version")
    op.drop_table("resource")
