"""The outbox keeps the X-Request-ID of the request whose write raised each event, so the
delivery carries it (issue 21: one id from the request through the audit to the webhook).

Revision ID: 20261207_outbox_request_id
Revises: 20261207_grantors
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_outbox_request_id"
down_revision: str | None = "20261207_grantors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("request_id")
