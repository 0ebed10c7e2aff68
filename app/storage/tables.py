"""The tables, declared with SQLModel; the hot path queries them with SQLAlchemy Core.

Storage shape (docs/architecture.md): the current version of each resource, every version
ever written (append-only), and index rows for search, all written in one transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, MetaData, String
from sqlmodel import Field, SQLModel

from app.storage.types import JSONBody, UTCDateTime

# Constraint names that Alembic can reproduce on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


class ResourceRow(SQLModel, table=True):
    """The current version of each resource (a deleted one keeps its row, body NULL)."""

    __tablename__ = "resource"
    __table_args__ = (Index("ix_resource_type_updated", "resource_type", "last_updated"),)

    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(nullable=False)
    last_updated: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    deleted: bool = Field(default=False, nullable=False)
    body: bytes | None = Field(default=None, sa_column=Column(JSONBody(), nullable=True))


class ResourceVersionRow(SQLModel, table=True):
    """Every version of every resource, never updated in place (history and vread)."""

    __tablename__ = "resource_version"
    __table_args__ = (
        Index("ix_resource_version_updated", "last_updated"),
        Index("ix_resource_version_type_updated", "resource_type", "last_updated"),
    )

    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(primary_key=True)
    last_updated: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    method: str = Field(sa_column=Column(String(8), nullable=False))
    body: bytes | None = Field(default=None, sa_column=Column(JSONBody(), nullable=True))


class TokenIndexRow(SQLModel, table=True):
    """Token search index (spec search.html#token): one row per system|code a resource holds."""

    __tablename__ = "search_token"
    __table_args__ = (
        Index("ix_search_token_lookup", "resource_type", "param", "code", "system"),
        Index("ix_search_token_owner", "resource_type", "resource_id"),
    )

    row_id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    resource_id: str = Field(sa_column=Column(String(64), nullable=False))
    param: str = Field(sa_column=Column(String(64), nullable=False))
    system: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    code: str = Field(sa_column=Column(String(255), nullable=False))


resource_table = ResourceRow.__table__  # type: ignore[attr-defined]
version_table = ResourceVersionRow.__table__  # type: ignore[attr-defined]
token_table = TokenIndexRow.__table__  # type: ignore[attr-defined]
