"""API clients, used client-assertion jtis and the access-token signing key (SMART auth).

Revision ID: 20261123_api_clients
Revises: 20261123_access
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_api_clients"
down_revision: str | None = "20261123_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("agency", sa.String(80), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("jwks_url", sa.Text(), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_api_client"),
    )
    op.create_table(
        "auth_jti",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_auth_jti"),
    )
    op.create_index("ix_auth_jti_expires", "auth_jti", ["expires_at"])
    op.create_table(
        "auth_signing_key",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_auth_signing_key"),
    )


def downgrade() -> None:
    op.drop_table("auth_signing_key")
    op.drop_index("ix_auth_jti_expires", table_name="auth_jti")
    op.drop_table("auth_jti")
    op.drop_table("api_client")
