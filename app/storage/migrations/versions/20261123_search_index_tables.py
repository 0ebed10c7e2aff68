"""Search index tables for every kind of search parameter value.

search_token gains a text column (for :text) and a nullable code; new tables hold
of-type identifiers, strings, references, dates, quantities, numbers and uris. Resources
stored before this revision have only their identifier tokens: run
``casebridge search reindex`` after upgrading to index the rest.

Revision ID: 20261123_search_index
Revises: 20261123_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261123_search_index"
down_revision: str | None = "20261123_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ordered_text(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _index_table(name: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("row_id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(80), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("row_id", name=f"pk_{name}"),
    )
    op.create_index(f"ix_{name}_owner", name, ["resource_type", "resource_id", "param"])


def upgrade() -> None:
    with op.batch_alter_table("search_token") as batch:
        batch.alter_column("row_id", type_=_ROW_ID, existing_nullable=False)
        batch.alter_column("param", type_=sa.String(80), existing_nullable=False)
        batch.alter_column("code", existing_type=sa.String(255), nullable=True)
        batch.add_column(sa.Column("text", _ordered_text(255), nullable=True))
    op.create_index("ix_search_token_text", "search_token", ["resource_type", "param", "text"])
    op.drop_index("ix_search_token_owner", table_name="search_token")
    op.create_index(
        "ix_search_token_owner", "search_token", ["resource_type", "resource_id", "param"]
    )

    _index_table(
        "search_of_type",
        sa.Column("type_system", sa.String(255), nullable=True),
        sa.Column("type_code", sa.String(255), nullable=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_search_of_type_lookup", "search_of_type", ["resource_type", "param", "value"]
    )
    _index_table(
        "search_string",
        sa.Column("normalized", _ordered_text(255), nullable=False),
        sa.Column("exact", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_search_string_lookup", "search_string", ["resource_type", "param", "normalized"]
    )
    _index_table(
        "search_reference",
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("url", _ordered_text(500), nullable=True),
    )
    op.create_index(
        "ix_search_reference_target",
        "search_reference",
        ["resource_type", "param", "target_id", "target_type"],
    )
    op.create_index(
        "ix_search_reference_url", "search_reference", ["resource_type", "param", "url"]
    )
    _index_table(
        "search_date",
        sa.Column("low", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_search_date_lookup", "search_date", ["resource_type", "param", "low", "high"]
    )
    _index_table(
        "search_quantity",
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("system", sa.String(255), nullable=True),
        sa.Column("code", sa.String(255), nullable=True),
        sa.Column("unit", sa.String(255), nullable=True),
    )
    op.create_index(
        "ix_search_quantity_lookup", "search_quantity", ["resource_type", "param", "value"]
    )
    _index_table(
        "search_number",
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
    )
    op.create_index("ix_search_number_lookup", "search_number", ["resource_type", "param", "value"])
    _index_table("search_uri", sa.Column("uri", _ordered_text(500), nullable=False))
    op.create_index("ix_search_uri_lookup", "search_uri", ["resource_type", "param", "uri"])


def downgrade() -> None:
    for name in (
        "search_uri",
        "search_number",
        "search_quantity",
        "search_date",
        "search_reference",
        "search_string",
        "search_of_type",
    ):
        op.drop_table(name)
    op.drop_index("ix_search_token_text", table_name="search_token")
    op.drop_index("ix_search_token_owner", table_name="search_token")
    op.create_index("ix_search_token_owner", "search_token", ["resource_type", "resource_id"])
    with op.batch_alter_table("search_token") as batch:
        batch.drop_column("text")
        batch.alter_column("code", existing_type=sa.String(255), nullable=False)
        batch.alter_column("param", type_=sa.String(64), existing_nullable=False)
        batch.alter_column("row_id", type_=sa.Integer(), existing_nullable=False)
