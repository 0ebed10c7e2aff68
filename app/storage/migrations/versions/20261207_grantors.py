"""Only an owner shares: referral shares and consent grants name the agency that grants them.

access_grant.grantor is the owning agency of the shared record, consent_grant.grantor the
agency that recorded the Consent ("" for the local operator); the access rule releases a
record under a consent only when the two agree, so an agency's Consent never releases
another agency's records. Existing rows are filled from resource_owner, and shares that no
owner made are dropped: a record shared by a referral whose Task belongs to another agency
and whose owner is not a party to it (a Task or Consent written to reach someone else's
records). `casebridge shares rebuild` recomputes every share under the rules exactly.

Revision ID: 20261207_grantors
Revises: 20261206_owner_without_rowid
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_grantors"
down_revision: str | None = "20261206_owner_without_rowid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNER_OF_GRANT = (
    "COALESCE((SELECT o.agency FROM resource_owner o WHERE o.resource_type = "
    "access_grant.resource_type AND o.resource_id = access_grant.resource_id), '')"
)
_OWNER_OF_TASK = (
    "COALESCE((SELECT o.agency FROM resource_owner o WHERE o.resource_type = 'Task' "
    "AND o.resource_id = access_grant.task_id), '')"
)


def upgrade() -> None:
    for table in ("access_grant", "consent_grant"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("grantor", sa.String(80), nullable=False, server_default=""))
    op.execute(f"UPDATE access_grant SET grantor = {_OWNER_OF_GRANT}")
    op.execute(
        "UPDATE consent_grant SET grantor = COALESCE((SELECT o.agency FROM resource_owner o "
        "WHERE o.resource_type = 'Consent' AND o.resource_id = consent_grant.consent_id), '')"
    )
    op.execute(
        f"DELETE FROM access_grant WHERE NOT (grantor = {_OWNER_OF_TASK} "
        f"OR {_OWNER_OF_TASK} = '' OR grantor IN (SELECT g.agency FROM access_grant g "
        "WHERE g.task_id = access_grant.task_id))"
    )
    op.drop_index("ix_consent_grant_patient", table_name="consent_grant")
    op.create_index(
        "ix_consent_grant_patient", "consent_grant", ["patient_id", "agency", "grantor"]
    )


def downgrade() -> None:
    op.drop_index("ix_consent_grant_patient", table_name="consent_grant")
    op.create_index("ix_consent_grant_patient", "consent_grant", ["patient_id", "agency"])
    for table in ("access_grant", "consent_grant"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("grantor")
