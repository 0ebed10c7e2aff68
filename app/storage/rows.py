"""A new resource's rows as positional tuples, one list per table it writes.

The bulk loader builds these in its worker processes: plain tuples of str, float, bytes and
datetime pickle and unpickle in C, and the loading process then hands them to the driver as
they are (Repository.insert_rows), with no per-row dicts, dataclasses or statement
compilation. The HTTP write path uses the same rows through index_parameters, so there is
one definition of what a resource stores.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any, Final, TypeAlias

from sqlalchemy import Table

from app.storage.index import (
    DateIndex,
    IndexRows,
    NumberIndex,
    OfTypeIndex,
    QuantityIndex,
    ReferenceIndex,
    StringIndex,
    TokenIndex,
    UriIndex,
)
from app.storage.tables import index_tables, resource_table, version_table

Row: TypeAlias = tuple[Any, ...]
# One list per table of NEW_TABLES, in that order.
NewRows: TypeAlias = tuple[list[Row], ...]

NEW_TABLES: Final = (resource_table, version_table, *index_tables)


def row_columns(table: Table) -> tuple[str, ...]:
    """The columns a positional row of table holds: all but a generated row key."""
    return tuple(column.name for column in table.columns if column.name != "row_id")


# IndexRows fields and their row kinds, in index_tables order.
_KINDS: Final = (TokenIndex, OfTypeIndex, StringIndex, ReferenceIndex, DateIndex,
                 QuantityIndex, NumberIndex, UriIndex)  # fmt: skip
_VALUES: Final = tuple(attrgetter(*(f.name for f in fields(kind))) for kind in _KINDS)
_BY_KIND: Final = attrgetter(*(f.name for f in fields(IndexRows)))
# Decimals are stored as doubles: ordering and ranges need no more than 15 significant
# digits.
_DOUBLES: Final = frozenset({QuantityIndex, NumberIndex})


def _check_layout() -> None:
    # The tuples are positional: a column added to a table without its field here (or the
    # reverse) must fail at import, not store values in the wrong columns.
    assert row_columns(resource_table) == (
        "resource_type", "id", "version_id", "last_updated", "deleted", "body"
    ), row_columns(resource_table)  # fmt: skip
    assert row_columns(version_table) == (
        "resource_type", "id", "version_id", "last_updated", "method", "body"
    ), row_columns(version_table)  # fmt: skip
    assert len(index_tables) == len(_KINDS) == len(fields(IndexRows))
    for table, kind in zip(index_tables, _KINDS, strict=True):
        expected = ("resource_type", "resource_id", *(f.name for f in fields(kind)))
        assert row_columns(table) == expected, (table.name, row_columns(table), expected)


_check_layout()


def index_row_lists(resource_type: str, resource_id: str, index: IndexRows) -> list[list[Row]]:
    """A resource's index rows, one list per table of index_tables."""
    key = (resource_type, resource_id)
    lists: list[list[Row]] = []
    for kind, values, rows in zip(_KINDS, _VALUES, _BY_KIND(index), strict=True):
        if not rows:
            lists.append([])
        elif kind in _DOUBLES:
            doubles: list[Row] = []
            for row in rows:
                v = values(row)  # param, value, low, high, then units if any
                doubles.append((*key, v[0], float(v[1]), float(v[2]), float(v[3]), *v[4:]))
            lists.append(doubles)
        else:
            lists.append([key + values(row) for row in rows])
    return lists


def new_rows(
    resource_type: str,
    resource_id: str,
    version_id: int,
    last_updated: Any,
    method: str,
    body: bytes,
    index: IndexRows,
) -> NewRows:
    """Every row a new, live resource writes, positional, per table of NEW_TABLES."""
    resource = (resource_type, resource_id, version_id, last_updated, False, body)
    version = (resource_type, resource_id, version_id, last_updated, method, body)
    return ([resource], [version], *index_row_lists(resource_type, resource_id, index))


__all__ = ["NEW_TABLES", "NewRows", "Row", "index_row_lists", "new_rows", "row_columns"]
