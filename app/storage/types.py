"""Column types that differ between the embedded (SQLite) and scale (PostgreSQL) engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class JSONBody(TypeDecorator[bytes]):
    """A resource's JSON: TEXT on SQLite, JSONB on PostgreSQL; always bytes in Python.

    The service stores and serves the JSON bytes it validated, never re-serialising
    through models; the engine is built with pass-through JSON (de)serialisers so that
    psycopg hands JSONB over as its text form.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return value.decode("utf-8")

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:  # noqa: ARG002
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, memoryview):
            return bytes(value)
        return str(value).encode("utf-8")


class UTCDateTime(TypeDecorator[Any]):
    """A timezone-aware UTC instant on both engines (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        from datetime import UTC

        value = value.astimezone(UTC)
        # SQLite compares instants as text, so every stored value must share one shape.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:  # noqa: ARG002
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
