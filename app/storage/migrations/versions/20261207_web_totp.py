"""The web app's optional second factor: a person's TOTP secret, the agencies that require
one, and the sign-in stage of a session (issue 20).

Revision ID: 20261207_web_totp
Revises: 20261207_web_users
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_web_totp"
down_revision: str | None = "20261207_web_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("web_user") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(64), nullable=True))
    with op.batch_alter_table("web_session") as batch:
        batch.add_column(sa.Column("stage", sa.String(8), nullable=False, server_default="full"))
        batch.add_column(sa.Column("enrol_secret", sa.String(64), nullable=True))
    op.create_table(
        "web_agency",
        sa.Column("agency", sa.String(80), primary_key=True),
        sa.Column("require_totp", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_agency")
    with op.batch_alter_table("web_session") as batch:
        batch.drop_column("enrol_secret")
        batch.drop_column("stage")
    with op.batch_alter_table("web_user") as batch:
        batch.drop_column("totp_secret")
