"""_sort keys and keyset paging cursors (spec search.html#sort, #count).

Pages are cut by keyset, not offset: a cursor holds the sort values of the row it continues
from, so rows created or deleted between pages never shift a page (no duplicates, no skips).
Every order ends with the id, which makes it total. A missing sort value sorts last in both
directions: the key is coalesced with a sentinel above (ascending) or below (descending)
every stored value, so keyset comparisons never meet NULL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from sqlalchemy import ColumnElement, Double, String, and_, func, literal, or_, select

from app.fhir.errors import InvalidRequest
from app.search.index_rows import MAX_DATE, MIN_DATE
from app.search.query import TABLE_BY_TYPE, bad_value
from app.search.registry import param
from app.storage.tables import resource_table
from app.storage.types import UTCDateTime

R = resource_table.c
Kind = Literal["text", "date", "number"]
MAX_SORT_KEYS: Final = 5
_TEXT_HIGH: Final = "\U0010ffff"
_COLUMN_BY_TYPE: Final[dict[str, tuple[str, str, Kind]]] = {
    # parameter type -> (ascending column, descending column, kind)
    "string": ("normalized", "normalized", "text"),
    "token": ("code", "code", "text"),
    "uri": ("uri", "uri", "text"),
    "reference": ("target_id", "target_id", "text"),
    "date": ("low", "high", "date"),
    "number": ("value", "value", "number"),
    "quantity": ("value", "value", "number"),
}


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ORDER BY key: a never-NULL expression over the resource row."""

    name: str
    expression: ColumnElement[Any]
    descending: bool
    kind: Kind


def _sentinel(kind: Kind, descending: bool) -> ColumnElement[Any]:
    if kind == "text":
        return literal("" if descending else _TEXT_HIGH, String())
    if kind == "date":
        return literal(MIN_DATE if descending else MAX_DATE, UTCDateTime())
    return literal(-math.inf if descending else math.inf, Double())


def parse_sort(resource_type: str, raw: str | None) -> tuple[SortKey, ...]:
    """The keys of _sort=a,-b (the id is always the last key, ascending)."""
    keys: list[SortKey] = []
    if raw:
        names = raw.split(",")
        if len(names) > MAX_SORT_KEYS:
            raise bad_value("_sort", f"_sort takes at most {MAX_SORT_KEYS} keys")
        for item in names:
            descending = item.startswith("-")
            code = item[1:] if descending else item
            if not code:
                raise bad_value("_sort", "_sort has an empty key")
            if code == "_id":
                keys.append(SortKey(code, R.id, descending, "text"))
                break  # the id is unique: later keys cannot matter
            if code == "_lastUpdated":
                keys.append(SortKey(code, R.last_updated, descending, "date"))
                continue
            search_param = param(resource_type, code)
            if search_param is None or search_param.type not in _COLUMN_BY_TYPE:
                raise bad_value("_sort", f"{resource_type} cannot be sorted by {code!r}")
            ascending_column, descending_column, kind = _COLUMN_BY_TYPE[search_param.type]
            table = TABLE_BY_TYPE[search_param.type]
            column = table.c[descending_column if descending else ascending_column]
            aggregate = func.max(column) if descending else func.min(column)
            value = (
                select(aggregate)
                .where(
                    table.c.resource_type == resource_type,
                    table.c.param == code,
                    table.c.resource_id == R.id,
                )
                .scalar_subquery()
            )
            expression = func.coalesce(value, _sentinel(kind, descending))
            keys.append(SortKey(code, expression, descending, kind))
    if not keys or keys[-1].expression is not R.id:
        keys.append(SortKey("_id", R.id, False, "text"))
    return tuple(keys)


def parse_system_sort(raw: str | None) -> tuple[SortKey, ...]:
    """Keys of a search across types: _lastUpdated (either way) and then type and id."""
    keys: list[SortKey] = []
    for item in (raw or "").split(",") if raw else []:
        descending = item.startswith("-")
        code = item[1:] if descending else item
        if code == "_lastUpdated":
            keys.append(SortKey(code, R.last_updated, descending, "date"))
        elif code != "_id":
            raise bad_value(
                "_sort", f"A search across types sorts by _lastUpdated or _id, not {code!r}"
            )
    keys.append(SortKey("_type", R.resource_type, False, "text"))
    keys.append(SortKey("_id", R.id, False, "text"))
    return tuple(keys)


def order_by(keys: tuple[SortKey, ...], *, backwards: bool) -> list[ColumnElement[Any]]:
    """ORDER BY clauses; backwards reverses every key (reading a previous page)."""
    return [
        key.expression.desc() if key.descending != backwards else key.expression.asc()
        for key in keys
    ]


def after(keys: tuple[SortKey, ...], values: list[Any], *, backwards: bool) -> ColumnElement[bool]:
    """Rows strictly after (or, backwards, before) the row with these key values."""
    branches = []
    for i, key in enumerate(keys):
        forward = key.descending == backwards  # ascending in the direction read
        step = key.expression > values[i] if forward else key.expression < values[i]
        equal = [keys[j].expression == values[j] for j in range(i)]
        branches.append(and_(*equal, step))
    return or_(*branches)


# --- cursors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position: continue after (or before, when backwards) the row with these values."""

    values: list[Any]
    backwards: bool


def _encode_value(kind: Kind, value: Any) -> Any:
    if kind == "date":
        return value.isoformat()
    if kind == "number":
        return repr(float(value))
    return value


def _decode_value(kind: Kind, raw: Any) -> Any:
    if kind == "date":
        return datetime.fromisoformat(raw)
    if kind == "number":
        return float(raw)
    if not isinstance(raw, str):
        raise ValueError("not text")
    return raw


def dump_cursor(keys: tuple[SortKey, ...], values: list[Any], *, backwards: bool) -> bytes:
    """Bytes of a cursor (wrapped as an opaque token by the caller)."""
    names = [k.name + ("-" if k.descending else "") for k in keys]
    encoded = [_encode_value(k.kind, v) for k, v in zip(keys, values, strict=True)]
    return orjson.dumps({"k": names, "v": encoded, "b": backwards})


def load_cursor(keys: tuple[SortKey, ...], raw: bytes) -> Cursor:
    """Parse a cursor made for these keys; 400 when it is not one (or for another sort)."""
    try:
        data = orjson.loads(raw)
        names = [k.name + ("-" if k.descending else "") for k in keys]
        if not isinstance(data, dict) or data.get("k") != names:
            raise ValueError("made for another sort")
        raw_values = data["v"]
        if not isinstance(raw_values, list) or len(raw_values) != len(keys):
            raise ValueError("wrong length")
        values = [_decode_value(k.kind, v) for k, v in zip(keys, raw_values, strict=True)]
        backwards = data.get("b")
        if not isinstance(backwards, bool):
            raise ValueError("no direction")
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
        raise InvalidRequest(
            "The _cursor paging token is not valid for this search", expression=("_cursor",)
        ) from exc
    return Cursor(values, backwards)
