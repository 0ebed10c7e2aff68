"""SQLite: resource_owner becomes a WITHOUT ROWID table, so its primary key holds the agency
and the label and the access rule's probe of a search candidate reads no row.

SQLite's planner prefers the unique primary-key index for `resource_type = ? AND
resource_id = ?` (it returns at most one row) over the covering ix_resource_owner_access,
then reads the agency from the table: as an agency, "Patient?family=Mar" spent 1.42 ms in
SQL against 0.53 ms with the covering index forced (204,089 resources). A WITHOUT ROWID
table is stored in its primary key's b-tree, so that unique index is covering. PostgreSQL
already reads the covering index alone (index-only scan); nothing changes there.

Revision ID: 20261206_owner_without_rowid
Revises: 20261123_covering_indexes
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261206_owner_without_rowid"
down_revision: str | None = "20261123_covering_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(with_rowid: bool) -> None:
    # SQLite cannot alter a table's storage: Alembic's batch mode copies it into a table
    # made anew (columns, key and indexes reflected from the old one).
    with op.batch_alter_table(
        "resource_owner", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
    ):
        pass


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)
