"""Covering search indexes: each value index ends with resource_id, the owner indexes of the
token, reference and date tables carry the values their probes compare, and the access
rule's probe of resource_owner reads the agency and the label from an index.

A search then reads index entries alone: at a million resources, looking up each match's
row in the table to learn its resource_id (or its code, for a probe) was most of the time
of a search such as "Task?owner=...&status=requested" (docs/architecture.md, "Search").

Revision ID: 20261123_covering_indexes
Revises: 20261123_subscriptions
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261123_covering_indexes"
down_revision: str | None = "20261123_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNER = ["resource_type", "resource_id", "param"]
# (table, index, value columns): the index was (resource_type, param, *values).
_LOOKUPS: list[tuple[str, str, list[str]]] = [
    ("search_token", "ix_search_token_text", ["text"]),
    ("search_of_type", "ix_search_of_type_lookup", ["value"]),
    ("search_string", "ix_search_string_lookup", ["normalized"]),
    ("search_reference", "ix_search_reference_target", ["target_id", "target_type"]),
    ("search_reference", "ix_search_reference_url", ["url"]),
    ("search_date", "ix_search_date_lookup", ["low", "high"]),
    ("search_quantity", "ix_search_quantity_lookup", ["value"]),
    ("search_number", "ix_search_number_lookup", ["value"]),
    ("search_uri", "ix_search_uri_lookup", ["uri"]),
]
_OWNER_VALUES: list[tuple[str, list[str]]] = [
    ("search_token", ["code", "system"]),
    ("search_reference", ["target_type", "target_id"]),
    ("search_date", ["low", "high"]),
]


def upgrade() -> None:
    # resource_id before system: a bare code (status=requested), the common token search,
    # then lists its resources in id order too.
    op.drop_index("ix_search_token_lookup", table_name="search_token")
    op.create_index(
        "ix_search_token_lookup",
        "search_token",
        ["resource_type", "param", "code", "resource_id", "system"],
    )
    for table, name, values in _LOOKUPS:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, ["resource_type", "param", *values, "resource_id"])
    for table, values in _OWNER_VALUES:
        op.drop_index(f"ix_{table}_owner", table_name=table)
        op.create_index(f"ix_{table}_owner", table, [*_OWNER, *values])
    # The access rule's probe of each search candidate's owner and label.
    op.create_index(
        "ix_resource_owner_access",
        "resource_owner",
        ["resource_type", "resource_id", "agency", "sensitive"],
    )


def downgrade() -> None:
    op.drop_index("ix_resource_owner_access", table_name="resource_owner")
    for table, _ in _OWNER_VALUES:
        op.drop_index(f"ix_{table}_owner", table_name=table)
        op.create_index(f"ix_{table}_owner", table, _OWNER)
    for table, name, values in [
        *_LOOKUPS,
        ("search_token", "ix_search_token_lookup", ["code", "system"]),
    ]:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, ["resource_type", "param", *values])
