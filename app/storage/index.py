"""Search-index rows of one resource, by kind: what app.search.index_rows produces and the
repository writes (one table per kind, app.storage.tables).

Plain values, no database access: the storage layer defines them so that search (above it)
builds them and storage (below) writes them without depending upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TokenIndex:
    """A token row: ``param=[system|]code``; ``text`` (normalised) serves ``:text``."""

    param: str
    system: str | None
    code: str | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class OfTypeIndex:
    """An Identifier's type coding with its value: ``param:of-type=type_system|type_code|value``."""

    param: str
    type_system: str | None
    type_code: str | None
    value: str


@dataclass(frozen=True, slots=True)
class StringIndex:
    """A string row: ``normalized`` for default/``:contains`` search, ``exact`` for ``:exact``."""

    param: str
    normalized: str
    exact: str


@dataclass(frozen=True, slots=True)
class ReferenceIndex:
    """A reference row: local target (type, id, version) and/or an absolute or canonical url."""

    param: str
    target_type: str | None
    target_id: str | None
    version: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class DateIndex:
    """A date row: the half-open UTC interval [low, high) the value covers."""

    param: str
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class QuantityIndex:
    """A quantity row: the value as written and the closed interval [low, high] it stands for."""

    param: str
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class NumberIndex:
    """A number row: the value as written and the closed interval [low, high] it stands for."""

    param: str
    value: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class UriIndex:
    """A uri row (exact, ``:above`` and ``:below`` all work on the text)."""

    param: str
    uri: str


@dataclass(frozen=True, slots=True)
class IndexRows:
    """Every index row of one resource, by kind."""

    tokens: tuple[TokenIndex, ...] = ()
    of_types: tuple[OfTypeIndex, ...] = ()
    strings: tuple[StringIndex, ...] = ()
    references: tuple[ReferenceIndex, ...] = ()
    dates: tuple[DateIndex, ...] = ()
    quantities: tuple[QuantityIndex, ...] = ()
    numbers: tuple[NumberIndex, ...] = ()
    uris: tuple[UriIndex, ...] = ()


def row_count(rows: IndexRows) -> int:
    """How many rows of all kinds a resource has."""
    return (
        len(rows.tokens)
        + len(rows.of_types)
        + len(rows.strings)
        + len(rows.references)
        + len(rows.dates)
        + len(rows.quantities)
        + len(rows.numbers)
        + len(rows.uris)
    )
