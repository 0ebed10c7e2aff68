"""People who sign in to the web app and their sessions (issue 20).

Revision ID: 20261207_web_users
Revises: 20261207_outbox_request_id
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_web_users"
down_revision: str | None = "20261207_outbox_request_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_user",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("agency", sa.String(80), nullable=False),
        sa.Column("practitioner", sa.String(80), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_web_user_email", "web_user", ["email"], unique=True)
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_session_user", "web_session", ["user_id"])
    op.create_index("ix_web_session_expires", "web_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_session_expires", table_name="web_session")
    op.drop_index("ix_web_session_user", table_name="web_session")
    op.drop_table("web_session")
    op.drop_index("ux_web_user_email", table_name="web_user")
    op.drop_table("web_user")
