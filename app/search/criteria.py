"""Search criteria that conditional interactions need: _id, _lastUpdated, identifier.

Spec: search.html (token, date, common parameters) and http.html#cond-update. The full search
engine builds on the same parse -> SQL shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select

from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.registry import is_resource_type, is_valid_id, types_with_identifier
from app.search.dates import parse_date_range
from app.storage.tables import resource_table, token_table

R = resource_table.c
T = token_table.c

_PREFIX_RE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)(?=\d)")
SUPPORTED = ("_id", "_lastUpdated", "identifier")
MAX_TOKEN_LENGTH = 255
# Bounds on what one query may ask: each OR alternative of a token or date is a subquery, and
# SQLite refuses expression trees deeper than 1000; _id alternatives are one IN list.
MAX_ALTERNATIVES = 100
MAX_ID_ALTERNATIVES = 1000
MAX_PARAMETERS = 50
MAX_TOTAL_ALTERNATIVES = 1000


@dataclass(frozen=True, slots=True)
class Criteria:
    """Parsed criteria, ready to become SQL conditions; canonical text for locking."""

    conditions: tuple[ColumnElement[bool], ...]
    canonical: str


def split_escaped(value: str, sep: str) -> list[str]:
    """Split on sep except where escaped with a backslash (spec search.html#escaping)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt in (",", "|", "$", "\\"):
                current.append("\\" + nxt)
            else:
                current.append(ch + nxt)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", value)


def _id_condition(values: list[str]) -> ColumnElement[bool]:
    for value in values:
        if not is_valid_id(_unescape(value)):
            raise InvalidRequest(f"_id {value[:70]!r} is not a valid id", expression=("_id",))
    condition: ColumnElement[bool] = R.id.in_([_unescape(v) for v in values])
    return condition


def _last_updated_condition(value: str) -> ColumnElement[bool]:
    prefix_match = _PREFIX_RE.match(value)
    prefix = prefix_match.group(1) if prefix_match else "eq"
    raw = value[len(prefix) :] if prefix_match else value
    try:
        rng = parse_date_range(raw)
    except ValueError as exc:
        raise InvalidRequest(str(exc), expression=("_lastUpdated",)) from exc
    column = R.last_updated
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(column >= rng.low, column < rng.high),
        "ne": or_(column < rng.low, column >= rng.high),
        "gt": column >= rng.high,
        "sa": column >= rng.high,
        "lt": column < rng.low,
        "eb": column < rng.low,
        "ge": column >= rng.low,
        "le": column < rng.high,
    }
    return conditions[prefix]


def _token_condition(resource_type: str, param: str, value: str) -> ColumnElement[bool]:
    if not is_resource_type(resource_type) or resource_type not in types_with_identifier():
        raise InvalidRequest(
            f"{resource_type} has no identifier element to search", expression=(param,)
        )
    if value == "":
        raise InvalidRequest(f"{param} has an empty value between commas", expression=(param,))
    parts = split_escaped(value, "|")
    if any(len(_unescape(p)) > MAX_TOKEN_LENGTH for p in parts):
        raise InvalidRequest(
            f"{param} values longer than {MAX_TOKEN_LENGTH} characters cannot be searched",
            expression=(param,),
        )
    match_cols = [T.resource_type == resource_type, T.resource_id == R.id, T.param == param]
    if len(parts) == 1:
        match_cols.append(T.code == _unescape(parts[0]))
    elif len(parts) == 2:
        system, code = (_unescape(p) for p in parts)
        if system:
            match_cols.append(T.system == system)
        else:
            match_cols.append(T.system.is_(None))
        if code:
            match_cols.append(T.code == code)
        elif not system:
            raise InvalidRequest(f"Empty token value for {param}", expression=(param,))
    else:
        raise InvalidRequest(f"Too many '|' in token {value!r}", expression=(param,))
    return exists(select(T.row_id).where(*match_cols))


def is_known_base(name: str) -> bool:
    """True when the parameter (modifier aside) is one this module evaluates."""
    return name.partition(":")[0] in SUPPORTED


def is_supported(name: str) -> bool:
    """True for a parameter (with modifier) this module can turn into SQL."""
    base, _, modifier = name.partition(":")
    return base in SUPPORTED and (not modifier or (base == "identifier" and modifier == "not"))


def parse_criteria(resource_type: str, params: Sequence[tuple[str, str]]) -> Criteria:
    """Parse conditional criteria; anything unsupported is refused, never silently ignored.

    Ignoring an unknown parameter in a conditional write would widen the match and could
    overwrite or delete the wrong record, so it is an error here (spec http.html#cond-update
    lets a server refuse what it cannot evaluate).
    """
    conditions: list[ColumnElement[bool]] = []
    canonical: list[str] = []
    if len(params) > MAX_PARAMETERS:
        raise TooCostly(f"At most {MAX_PARAMETERS} search parameters may be combined")
    total_alternatives = 0
    for name, value in params:
        base, _, modifier = name.partition(":")
        if not is_supported(name):
            raise InvalidRequest(
                f"Search parameter {name!r} is not supported in conditional criteria "
                f"(supported: {', '.join(SUPPORTED)})",
                expression=(name,),
            )
        if value == "":
            raise InvalidRequest(f"Search parameter {name!r} has no value", expression=(name,))
        alternatives = split_escaped(value, ",")
        limit = MAX_ID_ALTERNATIVES if base == "_id" else MAX_ALTERNATIVES
        total_alternatives += len(alternatives)
        if total_alternatives > MAX_TOTAL_ALTERNATIVES:
            raise TooCostly(
                f"The query has more than {MAX_TOTAL_ALTERNATIVES} values in all",
                expression=(name,),
            )
        if len(alternatives) > limit:
            raise TooCostly(
                f"{name} has {len(alternatives)} alternatives; at most {limit} are accepted",
                expression=(name,),
            )
        canonical.append(f"{name}={','.join(sorted(alternatives))}")
        if base == "_id":
            conditions.append(_id_condition(alternatives))
        elif base == "_lastUpdated":
            if len(alternatives) == 1:
                conditions.append(_last_updated_condition(alternatives[0]))
            else:
                conditions.append(or_(*(_last_updated_condition(v) for v in alternatives)))
        else:
            token = or_(*(_token_condition(resource_type, base, v) for v in alternatives))
            conditions.append(not_(token) if modifier == "not" else token)
    if not conditions:
        raise InvalidRequest("Conditional criteria must name at least one search parameter")
    return Criteria(tuple(conditions), f"{resource_type}?{'&'.join(sorted(canonical))}")
