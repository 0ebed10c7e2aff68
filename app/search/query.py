"""Search criteria -> SQL over the index tables (spec R4 search.html, 3.1.1).

Every criterion becomes "the ids of live resources of type T that match" as a SELECT on one
index table (or on the resource table for _id and _lastUpdated); the caller constrains the
resource table with ``id IN (...)`` or, for :not and :missing=true, ``id NOT IN (...)``.
Chains and _has nest those SELECTs through the reference table, so every lookup is an index
lookup and no JSON body is ever read. Values are always bound parameters, never SQL text.

Semantics chosen where the spec leaves room (README "Search"):
- string: starts-with on the normalised form (case and accents folded, whitespace
  collapsed); :exact compares as written; :contains is a substring of the normalised form.
- token: code, system|code, |code (no system), system|; :not = no matching value (also
  resources without the element); :text = starts-with on display / CodeableConcept.text;
  :of-type for identifiers. :in, :not-in, :above, :below need a terminology service: 400.
- number, quantity: no prefix = the stored value lies in the search value's precision
  range; gt lt ge le sa eb compare with the search value taken exactly; ap = within 10%.
  A Range or comparator value is the closed interval it stands for.
- date: the stored value's range against the search value's range per the prefix table of
  search.html#prefix (eq = contained, gt = ends after, sa = starts after, ...).
- reference: Type/id, id, an absolute URL under this server's base, :Type, :identifier,
  chains of any depth and _has (reverse chains, nestable).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    not_,
    or_,
    select,
)

from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.registry import is_resource_type, is_valid_id
from app.search.dates import DateRange, parse_date_range
from app.search.index_rows import (
    MAX_EXACT,
    MAX_TOKEN,
    MAX_URI,
    RESOURCE_COLUMNS,
    exact_string,
    normalize_string,
    precision_range,
)
from app.search.registry import SearchParam, param, params_for
from app.storage.access import AccessScope
from app.storage.tables import (
    date_table,
    number_table,
    of_type_table,
    quantity_table,
    reference_table,
    resource_table,
    string_table,
    token_table,
    uri_table,
)

R = resource_table.c

# Bounds on what one query may ask (each alternative is a predicate; SQLite refuses
# expression trees deeper than 1000).
MAX_PARAMETERS: Final = 50
MAX_ALTERNATIVES: Final = 100
MAX_ID_ALTERNATIVES: Final = 1000
MAX_TOTAL_ALTERNATIVES: Final = 1000
MAX_CHAIN_DEPTH: Final = 4

PREFIXES: Final = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_PREFIX_RE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-+.\d])")
_REFERENCE_RE = re.compile(
    r"([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?"
)
# Above any text an index holds (UTF-8 byte order on both engines): the end of a prefix range.
_TEXT_END: Final = "\U0010ffff"
# Parameters that select or shape results rather than filter (search.html#return).
RESULT_PARAMETERS: Final = frozenset(
    {
        "_count",
        "_cursor",
        "_total",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_contained",
        "_containedType",
    }
)
TABLE_BY_TYPE: Final = {
    "token": token_table,
    "string": string_table,
    "reference": reference_table,
    "date": date_table,
    "quantity": quantity_table,
    "number": number_table,
    "uri": uri_table,
}
_UNSUPPORTED_TOKEN_MODIFIERS: Final = frozenset({"in", "not-in", "above", "below"})


@dataclass(frozen=True, slots=True)
class Match:
    """Ids of live resources of one type that match; negate = the criterion holds for the
    resources NOT among them (:not, :missing=true)."""

    ids: Select[Any]
    negate: bool = False
    # How selective the criterion usually is (lower = fewer rows): the most selective one
    # drives the query as "id IN (...)", the others are probed per candidate with EXISTS.
    rank: int = 5
    # The same criterion correlated to one candidate row (resource_id = resource.id).
    probe: Select[Any] | None = None
    # For _id and _lastUpdated: the same condition stated on the resource row itself.
    direct: ColumnElement[bool] | None = None
    # The (type, id) columns of the index rows ``ids`` selects, which exist only for live
    # resources of the type: such a Match can drive a page in id order and bound a count
    # (None: ids may name resources that are not live, as _has does).
    key: tuple[ColumnElement[Any], ColumnElement[Any]] | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What value parsing needs from outside: this server's base URL and the current time."""

    own_base: str
    now: datetime
    # The agency access rule: a chain or _has may only pass through resources the caller
    # may see, or it would tell of records a read would deny (None: unconfined).
    scope: AccessScope | None = None
    # Called with each type a chain or _has passes through; raises when the caller may not
    # search that type (its token's scopes: a filter on a type is a search of it).
    through: Callable[[str], None] | None = None


class Unsupported(Exception):
    """A parameter this server does not evaluate (ignored and reported, or 400 if strict)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# --- values -------------------------------------------------------------------------------


def split_escaped(value: str, sep: str) -> list[str]:
    """Split on sep except where escaped with a backslash (spec search.html#escaping)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            current.append("\\" + nxt)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    """Remove the search escapes \\, \\| \\$ \\\\ (spec search.html#escaping)."""
    return re.sub(r"\\([,|$\\])", r"\1", value)


def bad_value(name: str, message: str) -> InvalidRequest:
    """A 400 naming the search parameter at fault."""
    return InvalidRequest(message, expression=(name,))


def _split_prefix(name: str, value: str) -> tuple[str, str]:
    match = _PREFIX_RE.match(value)
    if match:
        return match.group(1), value[2:]
    if value[:2].isalpha():
        raise bad_value(
            name, f"{name}: {value[:40]!r} does not start with a known prefix or a value"
        )
    return "eq", value


def _decimal(name: str, text: str) -> Decimal:
    if not re.fullmatch(r"[-+]?(\d+(\.\d+)?|\.\d+)([eE][-+]?\d{1,3})?", text):
        raise bad_value(name, f"{name}: {text[:40]!r} is not a number")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise bad_value(name, f"{name}: {text[:40]!r} is not a number") from exc
    if not number.is_finite() or abs(number.adjusted()) > 300:
        raise bad_value(name, f"{name}: {text[:40]!r} is out of range")
    return number


def _date_range(name: str, text: str) -> DateRange:
    try:
        return parse_date_range(text)
    except ValueError as exc:
        raise bad_value(name, f"{name}: {exc}") from exc


def _text(name: str, value: str) -> str:
    text = unescape(value)
    if len(text) > MAX_EXACT:
        raise TooCostly(f"{name} values longer than {MAX_EXACT} characters cannot be searched")
    return text


# --- per-kind predicates ------------------------------------------------------------------


def _token_predicate(
    table: FromClause, name: str, modifier: str, value: str
) -> ColumnElement[bool]:
    c = table.c
    if modifier == "text":
        text = normalize_string(_text(name, value))
        if not text:
            raise bad_value(name, f"{name}:text needs some text")
        return and_(c.text >= text, c.text < text + _TEXT_END)
    parts = split_escaped(value, "|")
    if len(parts) > 2:
        raise bad_value(name, f"{name}: too many '|' in {value[:60]!r}")
    pieces = [unescape(p) for p in parts]
    if any(len(p) > MAX_TOKEN for p in pieces):
        raise bad_value(
            name, f"{name} values longer than {MAX_TOKEN} characters cannot be searched"
        )
    if len(pieces) == 1:
        if not pieces[0]:
            raise bad_value(name, f"{name} has an empty value")
        return c.code == pieces[0]
    system, code = pieces
    if not system and not code:
        raise bad_value(name, f"{name} has an empty token value")
    conditions = [c.system == system if system else c.system.is_(None)]
    if code:
        conditions.append(c.code == code)
    return and_(*conditions)


def _of_type_predicate(name: str, value: str) -> ColumnElement[bool]:
    parts = [unescape(p) for p in split_escaped(value, "|")]
    if len(parts) != 3 or not parts[2]:
        raise bad_value(name, f"{name}:of-type takes type-system|type-code|value")
    if any(len(p) > MAX_TOKEN for p in parts):
        raise bad_value(
            name, f"{name} values longer than {MAX_TOKEN} characters cannot be searched"
        )
    c = of_type_table.c
    conditions = [c.value == parts[2]]
    if parts[0]:
        conditions.append(c.type_system == parts[0])
    if parts[1]:
        conditions.append(c.type_code == parts[1])
    return and_(*conditions)


def _string_predicate(name: str, modifier: str, value: str) -> ColumnElement[bool]:
    c = string_table.c
    text = _text(name, value)
    normalized = normalize_string(text)
    if not normalized:
        raise bad_value(name, f"{name} needs some text to search for")
    if modifier == "exact":
        return and_(c.normalized == normalized, c.exact == exact_string(text))
    if modifier == "contains":
        return c.normalized.contains(normalized, autoescape=True)  # type: ignore[no-any-return]
    return and_(c.normalized >= normalized, c.normalized < normalized + _TEXT_END)


def _uri_predicate(name: str, modifier: str, value: str) -> ColumnElement[bool]:
    c = uri_table.c
    uri = unescape(value)
    if not uri:
        raise bad_value(name, f"{name} has an empty value")
    if len(uri) > MAX_URI:
        raise bad_value(name, f"{name} values longer than {MAX_URI} characters cannot be searched")
    if modifier == "below":
        return and_(c.uri >= uri, c.uri < uri + _TEXT_END)
    if modifier == "above":
        # The stored uri is the value or one of its path prefixes.
        cut = uri.split("|", 1)[0].rstrip("/")
        prefixes = {uri, cut}
        while "/" in cut and not cut.endswith(":/"):
            cut = cut.rsplit("/", 1)[0]
            if cut.endswith(("http:/", "https:/")) or not cut:
                break
            prefixes.add(cut)
        return c.uri.in_(sorted(prefixes))  # type: ignore[no-any-return]
    return c.uri == uri  # type: ignore[no-any-return]


def _date_predicate(
    low: ColumnElement[Any], high: ColumnElement[Any], prefix: str, rng: DateRange, now: datetime
) -> ColumnElement[bool]:
    """Target range [low, high) against the search range (spec search.html#prefix)."""
    contained = and_(low >= rng.low, high <= rng.high)
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not_(contained)
    if prefix == "gt":
        return high > rng.high
    if prefix == "lt":
        return low < rng.low
    if prefix == "ge":
        return or_(high > rng.high, contained)
    if prefix == "le":
        return or_(low < rng.low, contained)
    if prefix == "sa":
        return low >= rng.high
    if prefix == "eb":
        return high <= rng.low
    # ap: overlap with the search range widened by a tenth of its distance from now.
    gap = max(abs(now - rng.low), abs(now - rng.high)) / 10
    gap = max(gap, timedelta(days=1))
    try:
        wide_low, wide_high = rng.low - gap, rng.high + gap
    except OverflowError:
        wide_low, wide_high = rng.low, rng.high
    return and_(low < wide_high, high > wide_low)


def _number_predicate(table: FromClause, name: str, prefix: str, text: str) -> ColumnElement[bool]:
    c = table.c
    number = _decimal(name, text)
    q = float(number)
    if prefix in ("eq", "ne"):
        lo, hi = (float(x) for x in precision_range(number))
        inside = and_(c.low >= lo, c.high < hi)
        return inside if prefix == "eq" else not_(inside)
    comparisons: dict[str, Callable[[], ColumnElement[bool]]] = {
        "gt": lambda: c.high > q,
        "lt": lambda: c.low < q,
        "ge": lambda: c.high >= q,
        "le": lambda: c.low <= q,
        "sa": lambda: c.low > q,
        "eb": lambda: c.high < q,
        "ap": lambda: and_(c.low <= q + abs(q) / 10, c.high >= q - abs(q) / 10),
    }
    return comparisons[prefix]()


def _quantity_predicate(name: str, prefix: str, text: str) -> ColumnElement[bool]:
    parts = [unescape(p) for p in split_escaped(text, "|")]
    if len(parts) not in (1, 3):
        raise bad_value(name, f"{name} takes [prefix]number or [prefix]number|system|code")
    condition = _number_predicate(quantity_table, name, prefix, parts[0])
    if len(parts) == 1:
        return condition
    c = quantity_table.c
    system, code = parts[1], parts[2]
    if system:
        condition = and_(condition, c.system == system)
    if code:
        condition = and_(
            condition, c.code == code if system else or_(c.code == code, c.unit == code)
        )
    return condition


# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Name:
    """A parsed parameter name: code, modifier, and the rest of a chain."""

    code: str
    modifier: str
    chain: str | None


def _parse_name(name: str) -> _Name:
    head, dot, chain = name.partition(".")
    code, _, modifier = head.partition(":")
    return _Name(code, modifier, chain if dot else None)


class QueryBuilder:
    """Turns (name, value) criteria into Match selects for one request."""

    def __init__(self, context: Context) -> None:
        self._context = context

    # -- entry points ----------------------------------------------------------------------
    def match(self, resource_type: str, name: str, value: str, depth: int = 0) -> Match:
        """The resources of resource_type matching one criterion (comma = OR)."""
        if depth > MAX_CHAIN_DEPTH:
            raise TooCostly(f"Chains may be at most {MAX_CHAIN_DEPTH} levels deep")
        if value == "":
            raise bad_value(name, f"Search parameter {name!r} has no value")
        if name == "_has" or name.startswith("_has:"):
            return self._has(resource_type, name, value, depth)
        parsed = _parse_name(name)
        if parsed.code in RESOURCE_COLUMNS:
            return self._resource_column(resource_type, name, parsed, value)
        search_param = param(resource_type, parsed.code)
        if search_param is None:
            if depth > 0:
                # Inside a chain or _has the client named this parameter on purpose;
                # ignoring it would widen the whole criterion.
                raise bad_value(name, f"{resource_type} has no search parameter {parsed.code!r}")
            raise Unsupported(name)
        if parsed.chain is not None:
            return self._chain(name, search_param, parsed, value, depth)
        if search_param.type not in TABLE_BY_TYPE or not search_param.indexed:
            if depth > 0:
                raise bad_value(name, f"{resource_type}.{parsed.code} cannot be used in a chain")
            raise Unsupported(name)
        self._check_modifier(search_param, name, parsed.modifier)
        if parsed.modifier == "missing":
            return self._missing(search_param, name, value)
        alternatives = split_escaped(value, ",")
        if len(alternatives) > MAX_ALTERNATIVES:
            raise TooCostly(
                f"{name} has {len(alternatives)} alternatives; at most {MAX_ALTERNATIVES}"
            )
        if any(a == "" for a in alternatives):
            raise bad_value(name, f"{name} has an empty value between commas")
        return self._values(search_param, name, parsed.modifier, alternatives)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _check_modifier(search_param: SearchParam, name: str, modifier: str) -> None:
        if not modifier:
            return
        if search_param.type == "token" and modifier in _UNSUPPORTED_TOKEN_MODIFIERS:
            raise bad_value(name, f"{name}: the :{modifier} modifier needs a terminology service")
        if search_param.type == "reference" and modifier in ("above", "below"):
            raise bad_value(
                name, f"{name}: the :{modifier} modifier is not supported on references"
            )
        if modifier not in search_param.allowed_modifiers and not (
            search_param.type == "reference" and is_resource_type(modifier)
        ):
            raise bad_value(
                name, f"Unknown or unsupported modifier :{modifier} on {search_param.code}"
            )
        if (
            search_param.type == "reference"
            and is_resource_type(modifier)
            and search_param.targets
            and modifier not in search_param.targets
        ):
            raise bad_value(name, f"{search_param.code} cannot refer to a {modifier}")

    @staticmethod
    def _owned(
        table: FromClause,
        search_param: SearchParam,
        predicate: ColumnElement[bool] | None,
        *,
        code: str | None = None,
        negate: bool = False,
        rank: int = 5,
    ) -> Match:
        """A Match on one index table's rows of one parameter, with its per-candidate probe."""
        c = table.c
        code = code or search_param.code
        extra = () if predicate is None else (predicate,)
        ids = select(c.resource_id).where(
            c.resource_type == search_param.resource_type, c.param == code, *extra
        )
        # The probe reads the candidate's own rows (owner index). "param || ''" keeps the
        # planner off the value index, which would visit every row holding the value
        # (status=active) for each candidate when no statistics say otherwise.
        probe = select(c.resource_id).where(
            c.resource_type == search_param.resource_type,
            c.resource_id == R.id,
            (c.param + "") == code,
            *extra,
        )
        return Match(
            ids, negate=negate, rank=rank, probe=probe, key=(c.resource_type, c.resource_id)
        )

    def _missing(self, search_param: SearchParam, name: str, value: str) -> Match:
        if value not in ("true", "false"):
            raise bad_value(name, f"{name} takes true or false")
        table = TABLE_BY_TYPE[search_param.type]
        return self._owned(table, search_param, None, negate=value == "true", rank=8)

    def _values(
        self, search_param: SearchParam, name: str, modifier: str, alternatives: list[str]
    ) -> Match:
        kind = search_param.type
        if kind == "token" and modifier == "of-type":
            if "identifier" not in search_param.code:
                raise bad_value(name, f"{name}: :of-type applies to identifier parameters")
            predicates = [_of_type_predicate(name, a) for a in alternatives]
            return self._owned(of_type_table, search_param, or_(*predicates), rank=2)
        if kind == "reference" and modifier == "identifier":
            predicates = [_token_predicate(token_table, name, "", a) for a in alternatives]
            code = f"{search_param.code}:identifier"
            return self._owned(token_table, search_param, or_(*predicates), code=code, rank=2)
        table = TABLE_BY_TYPE[kind]
        if kind == "token":
            predicates = [_token_predicate(table, name, modifier, a) for a in alternatives]
            # system|code values (identifiers) are usually selective; bare codes (statuses)
            # rarely are.
            rank = 2 if all("|" in a and not a.endswith("|") for a in alternatives) else 6
            return self._owned(
                table, search_param, or_(*predicates), negate=modifier == "not", rank=rank
            )
        if kind == "string":
            predicates = [_string_predicate(name, modifier, a) for a in alternatives]
        elif kind == "uri":
            predicates = [_uri_predicate(name, modifier, a) for a in alternatives]
        elif kind == "date":
            predicates = []
            for alternative in alternatives:
                prefix, text = _split_prefix(name, alternative)
                rng = _date_range(name, text)
                predicates.append(
                    _date_predicate(table.c.low, table.c.high, prefix, rng, self._context.now)
                )
        elif kind == "number":
            predicates = [
                _number_predicate(table, name, *_split_prefix(name, a)) for a in alternatives
            ]
        elif kind == "quantity":
            predicates = [_quantity_predicate(name, *_split_prefix(name, a)) for a in alternatives]
        else:  # reference
            predicates = [
                self._reference_predicate(search_param, name, modifier, a) for a in alternatives
            ]
        rank = {"reference": 1, "string": 4, "uri": 3}.get(kind, 5)
        return self._owned(table, search_param, or_(*predicates), rank=rank)

    def _reference_predicate(
        self, search_param: SearchParam, name: str, modifier: str, value: str
    ) -> ColumnElement[bool]:
        c = reference_table.c
        raw = unescape(value)
        if len(raw) > MAX_URI:
            raise bad_value(
                name, f"{name} values longer than {MAX_URI} characters cannot be searched"
            )
        own = self._context.own_base.rstrip("/") + "/"
        if raw.startswith(own):
            raw = raw[len(own) :]
        elif "://" in raw or raw.startswith("urn:"):
            url, bar, version = raw.partition("|")
            condition = c.url == url
            return and_(condition, c.version == version) if bar and version else condition
        local = _REFERENCE_RE.fullmatch(raw)
        if local is not None:
            target_type, target_id, version = local.groups()
            if not is_resource_type(target_type):
                raise bad_value(name, f"{name}: {target_type!r} is not a resource type")
            if modifier and modifier != target_type:
                raise bad_value(name, f"{name}: the value names {target_type}, not {modifier}")
            conditions = [c.target_id == target_id, c.target_type == target_type]
            if version:
                conditions.append(c.version == version)
            return and_(*conditions)
        if not is_valid_id(raw):
            raise bad_value(name, f"{name}: {raw[:60]!r} is not a reference, id or URL")
        target = modifier or (search_param.targets[0] if len(search_param.targets) == 1 else None)
        if target is None:
            return c.target_id == raw  # type: ignore[no-any-return]
        return and_(c.target_id == raw, c.target_type == target)

    def _resource_column(self, resource_type: str, name: str, parsed: _Name, value: str) -> Match:
        if parsed.modifier or parsed.chain is not None:
            raise bad_value(name, f"{name}: {parsed.code} takes no modifier or chain")
        alternatives = split_escaped(value, ",")
        ids = select(R.id).where(R.resource_type == resource_type, R.deleted.is_(False))
        if parsed.code == "_id":
            if len(alternatives) > MAX_ID_ALTERNATIVES:
                raise TooCostly(f"_id has {len(alternatives)} alternatives; at most 1000")
            values = [unescape(a) for a in alternatives]
            for v in values:
                if not is_valid_id(v):
                    raise bad_value("_id", f"_id {v[:70]!r} is not a valid id")
            direct = R.id.in_(values)
            return Match(ids.where(direct), rank=0, direct=direct)
        if len(alternatives) > MAX_ALTERNATIVES:
            raise TooCostly(f"{name} has too many alternatives")
        direct = or_(*(self.last_updated(a) for a in alternatives))
        return Match(ids.where(direct), rank=7, direct=direct)

    def last_updated(self, value: str) -> ColumnElement[bool]:
        """A condition on the resource table's lastUpdated (an instant: a point value)."""
        prefix, text = _split_prefix("_lastUpdated", value)
        rng = _date_range("_lastUpdated", text)
        column = R.last_updated
        # A stored instant t is the range [t, t] at microsecond precision.
        if prefix == "ap":
            return _date_predicate(column, column, "ap", rng, self._context.now)
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

    def _chain(
        self,
        name: str,
        search_param: SearchParam,
        parsed: _Name,
        value: str,
        depth: int,
    ) -> Match:
        """subject:Patient.name=x (spec search.html#chaining)."""
        if search_param.type != "reference":
            raise bad_value(
                name, f"{parsed.code} is not a reference parameter: it cannot be chained"
            )
        assert parsed.chain is not None
        tail = parsed.chain
        if not tail:
            raise bad_value(name, f"{name}: the chain names no parameter after the dot")
        if parsed.modifier:
            if not is_resource_type(parsed.modifier):
                raise bad_value(name, f"A chain needs a resource type, not :{parsed.modifier}")
            self._check_modifier(search_param, name, parsed.modifier)
            types = [parsed.modifier]
        else:
            tail_code = _parse_name(tail).code
            types = [
                t
                for t in search_param.targets
                if tail_code in params_for(t) or tail_code in RESOURCE_COLUMNS
            ]
            if not types:
                raise bad_value(name, f"No target of {parsed.code} has a parameter {tail_code!r}")
        c = reference_table.c
        branches = []
        for target_type in types:
            self._through(target_type)
            inner = self.match(target_type, tail, value, depth + 1)
            target_ids = _live_ids(target_type, inner)
            branches.append(
                and_(
                    c.target_type == target_type,
                    c.target_id.in_(target_ids),
                    *self._visible(c.target_type, c.target_id),
                )
            )
        return self._owned(reference_table, search_param, or_(*branches), rank=3)

    def _has(self, resource_type: str, name: str, value: str, depth: int) -> Match:
        """_has:Task:focus:status=requested (spec search.html#has)."""
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise bad_value(name, "_has takes _has:Type:reference-parameter:parameter=value")
        _, source_type, code, tail = parts
        if not is_resource_type(source_type):
            raise bad_value(name, f"_has: {source_type!r} is not a resource type")
        link = param(source_type, code)
        if link is None or link.type != "reference":
            raise bad_value(name, f"_has: {source_type}.{code} is not a reference parameter")
        if link.targets and resource_type not in link.targets:
            raise bad_value(name, f"_has: {source_type}.{code} cannot refer to a {resource_type}")
        self._through(source_type)
        inner = self.match(source_type, tail, value, depth + 1)
        c = reference_table.c
        ids = select(c.target_id).where(
            c.resource_type == source_type,
            c.param == code,
            c.target_type == resource_type,
            c.resource_id.in_(_live_ids(source_type, inner)),
            *self._visible(c.resource_type, c.resource_id),
        )
        return Match(ids, rank=3)

    def _through(self, resource_type: str) -> None:
        if self._context.through is not None:
            self._context.through(resource_type)

    def _visible(self, type_col: Any, id_col: Any) -> tuple[ColumnElement[bool], ...]:
        scope = self._context.scope
        return () if scope is None else (scope.visible(type_col, id_col),)


def _live_ids(resource_type: str, match: Match) -> Select[Any]:
    """The ids a Match selects, as a plain positive select (a negated one inverted)."""
    if not match.negate:
        return match.ids
    return select(R.id).where(
        R.resource_type == resource_type, R.deleted.is_(False), R.id.not_in(match.ids)
    )


def driver_of(matches: Sequence[Match]) -> Match | None:
    """The criterion that drives the query: the most selective positive one."""
    positive = [m for m in matches if not m.negate]
    return min(positive, key=lambda m: m.rank) if positive else None


def conditions_for(
    matches: Sequence[Match], *, driver: Match | None = None, without_driver: bool = False
) -> tuple[ColumnElement[bool], ...]:
    """Conditions on the resource table: the most selective positive criterion as
    ``id IN (...)`` (the planner drives the query from its index), the rest as correlated
    EXISTS probes, so a weak criterion (status=active) is never materialised in full.
    without_driver: leave the driver's own condition out (the query selects from its rows)."""
    driver = driver or driver_of(matches)
    conditions: list[ColumnElement[bool]] = []
    for match in matches:
        if match.direct is not None:
            conditions.append(match.direct)
            continue
        if match is driver:
            if not without_driver:
                conditions.append(R.id.in_(match.ids))
            continue
        probe = match.probe
        if probe is None:
            probe = match.ids.where(match.ids.selected_columns[0] == R.id)
        exists = probe.exists()
        conditions.append(not_(exists) if match.negate else exists)
    return tuple(conditions)


def of_types(per_type: Mapping[str, Sequence[ColumnElement[bool]]]) -> ColumnElement[bool]:
    """Resources of any of the types, each meeting its own type's conditions (search-system
    with _type: a parameter means something different on each type)."""
    return or_(*(and_(R.resource_type == name, *conds) for name, conds in per_type.items()))


@dataclass(frozen=True, slots=True)
class Criteria:
    """Parsed filter criteria: SQL conditions on the resource table, what was ignored, and
    canonical text (the lock name of conditional writes)."""

    conditions: tuple[ColumnElement[bool], ...]
    ignored: tuple[str, ...]
    canonical: str
    # The index rows that drive the query (None: the resource table drives it): how many
    # there are bounds what counting the matches costs, and a page in id order can walk
    # them in index order and stop after a page (``rest``: the other conditions).
    driver: Match | None = None
    rest: tuple[ColumnElement[bool], ...] = ()


def parse_filters(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    context: Context,
    *,
    strict: bool,
) -> Criteria:
    """Filter criteria (every parameter not in RESULT_PARAMETERS); unsupported ones are
    collected in ``ignored``, or refused (400) when strict."""
    if len(params) > MAX_PARAMETERS:
        raise TooCostly(f"At most {MAX_PARAMETERS} search parameters may be combined")
    builder = QueryBuilder(context)
    matches: list[Match] = []
    ignored: list[str] = []
    canonical: list[str] = []
    total = 0
    for name, value in params:
        if name in RESULT_PARAMETERS or name.partition(":")[0] in RESULT_PARAMETERS:
            continue
        total += value.count(",") + 1
        if total > MAX_TOTAL_ALTERNATIVES:
            raise TooCostly(
                f"The query has more than {MAX_TOTAL_ALTERNATIVES} values in all",
                expression=(name,),
            )
        try:
            match = builder.match(resource_type, name, value)
        except Unsupported as exc:
            if strict:
                raise bad_value(
                    exc.name, f"Search parameter {exc.name!r} is not supported for {resource_type}"
                ) from exc
            if name not in ignored:
                ignored.append(name)
            continue
        matches.append(match)
        canonical.append(f"{name}={','.join(sorted(split_escaped(value, ',')))}")
    driver = driver_of(matches)
    canonical_text = f"{resource_type}?{'&'.join(sorted(canonical))}"
    if driver is None or driver.direct is not None or driver.key is None:
        return Criteria(conditions_for(matches), tuple(ignored), canonical_text)
    return Criteria(
        conditions_for(matches, driver=driver),
        tuple(ignored),
        canonical_text,
        driver,
        conditions_for(matches, driver=driver, without_driver=True),
    )
