"""Search-index rows from a resource body (spec R4B search.html, per parameter type).

``index_rows(resource_type, body, own_base=...)`` runs the registry's compiled walkers
(registry.extractors) over a parsed body (app.fhir.jsonio.parse_json) and turns the tagged
values they yield into rows, one frozen dataclass per kind of index table. Pure: no database,
no request. Values a parameter type cannot index (a token parameter yielding a Quantity, a
date parameter yielding an Age or a string that is no date, SampledData for quantity,
Attachment, whole resources, backbone elements) are skipped silently, as are malformed values
(bodies are validated before this runs; skipping keeps the indexer total).

Composite parameters are not indexed yet (their walkers yield per-context component tuples;
a composite table arrives with composite search). Special parameters have no walker.

Decisions, per kind (the query side must apply the same normalisations):

token (TokenIndex, OfTypeIndex)
    Coding -> (system, code, text = normalised display); CodeableConcept -> a row per coding
    plus (None, None, normalised .text); CodeableReference -> its concept; Identifier ->
    (system, value), its type.text as a text row, and one OfTypeIndex (type system, type
    code, value) per type coding for ``:of-type``; ContactPoint -> (None, value); code, id,
    string, uri primitives -> (None, value); booleans -> (None, "true"/"false"). ``text``
    holds normalize_string(...) output for ``:text``. A row whose system or code exceeds
    MAX_TOKEN characters is dropped (an exact-match column cannot truncate without matching
    wrongly), as app.search.extract does. Reference.identifier of a reference parameter is
    emitted here as a token row with param ``"<code>:identifier"`` (a colon never occurs in
    a parameter code), so ``subject:identifier=s|v`` is a plain token query on that name.
string (StringIndex)
    string/markdown (and other string-valued primitives), HumanName family/given/prefix/
    suffix/text, Address line/city/district/state/postalCode/country/text: one row per part.
    ``normalized`` = normalize_string: NFKD, combining marks dropped, case-folded, whitespace
    runs collapsed to one space and trimmed, cut to MAX_STRING characters (prefix search
    works up to that length; ``:contains`` cannot see beyond it). ``exact`` = as written, cut
    to MAX_EXACT characters (exact_string): an ``:exact`` query must cut its value the same
    way, so two values equal in their first MAX_EXACT characters are confused.
reference (ReferenceIndex)
    "Type/id[/_history/v]" -> type, id, version (url None). "http(s)://..." -> url always;
    type/id/version too when it is ``own_base + "/Type/id[...]"``. Foreign absolute URLs,
    urn:uuid:/urn:oid: and other literals -> url only. Contained "#id" -> nothing.
    canonical and uri values -> url, with "|version" split into version. Reference.type is
    not used. URLs longer than MAX_URI are dropped.
date (DateIndex)
    [low, high) in UTC from dates.parse_date_range for date/dateTime/instant (and strings
    that parse as one); Period -> low of start .. high of end, an open end giving MIN_DATE /
    MAX_DATE; Timing -> the outer limits only (spec: scheduling details are ignored): min of
    the lows .. max of the highs of its events and repeat.boundsPeriod.
quantity (QuantityIndex), number (NumberIndex)
    ``value`` as written and the closed interval [low, high] of values the element stands
    for: a plain value is exact (low = high = value: the spec applies precision to the
    search value, not the stored one: search.html#number). Quantity comparators open one
    end: "<", "<=" -> [-inf, value], ">", ">=", "ad" -> [value, +inf]. Range -> low.value ..
    high.value (an absent end is infinite), ``value`` being low.value (high.value when there
    is no low), unit fields from low (else high). Money -> value with code = currency, system
    urn:iso:std:iso:4217, unit None. Unbounded ends are Decimal("-Infinity") /
    Decimal("Infinity"). Quantity system/code/unit are kept as written: no UCUM
    canonicalisation yet. A quantity or range without any value is skipped.
uri (UriIndex)
    uri/url/canonical/oid/uuid as written; a canonical "url|version" also gives a row for
    the bare url (a versionless search matches any version). Longer than MAX_URI: dropped.

Rows are de-duplicated (identical rows of the same parameter kept once, first order kept).
The caller bounds how many rows one resource may produce (see app.search.extract.MAX_TOKENS).

Speed: the per-type plan (code, walker, handlers) is cached; within one call normalised
strings and parsed dates are memoised (they repeat across parameters: name/family/phonetic),
and rows are gathered as tuples, de-duplicated, then turned into dataclasses. About 45-80 us
per example resource including the walkers, a third of it the walkers and roughly 0.4 us per
row the frozen dataclass constructors.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal
from functools import cache
from typing import Any, Final

from app.search.dates import DateRange, parse_date_range
from app.search.fhirpath_compile import CompiledPath
from app.search.registry import extractors
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

# Answered from the resource table itself (the id and the stamped lastUpdated), not indexed.
RESOURCE_COLUMNS: Final = frozenset({"_id", "_lastUpdated"})
MAX_TOKEN: Final = 255
MAX_STRING: Final = 255
MAX_EXACT: Final = 1024
# Index keys must fit PostgreSQL's b-tree entry limit (~2.7 kB) in UTF-8.
MAX_URI: Final = 500

MIN_DATE: Final = datetime.min.replace(tzinfo=UTC)
MAX_DATE: Final = datetime.max.replace(tzinfo=UTC)
NEG_INF: Final = Decimal("-Infinity")
POS_INF: Final = Decimal("Infinity")
ISO_4217: Final = "urn:iso:std:iso:4217"


# --- shared normalisations (the query side must use the same) ---------------------------


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_string(text: str) -> str:
    """Case-folded, accents removed, whitespace collapsed, at most MAX_STRING characters."""
    if text.isascii():
        folded = text.lower()
    else:
        folded = _strip_marks(text).casefold()
        if not folded.isascii():  # casefold can produce decomposable text ("İ" -> "i̇")
            folded = _strip_marks(folded)
    return " ".join(folded.split())[:MAX_STRING]


def exact_string(text: str) -> str:
    """The text as stored for ``:exact`` (cut to MAX_EXACT characters)."""
    return text[:MAX_EXACT]


_EXACT_MATH = Context(prec=400)  # wider than any parsed number (jsonio: 64 digits, 1e308)


def precision_range(value: Decimal | int) -> tuple[Decimal, Decimal]:
    """[low, high) implied by the written precision: 5.4 -> (5.35, 5.45), 100 -> (99.5, 100.5)."""
    number = Decimal(value) if isinstance(value, int) else value
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN / Infinity: parse_json never yields them
        raise ValueError(f"not a finite number: {number}")
    half = Decimal((0, (5,), exponent - 1))
    return _EXACT_MATH.subtract(number, half), _EXACT_MATH.add(number, half)


# --- the builder ------------------------------------------------------------------------


_REL_RE = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?"
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _strs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


class _Builder:
    __slots__ = (
        "dates",
        "normalized",
        "numbers",
        "of_types",
        "own_prefix",
        "quantities",
        "references",
        "spans",
        "strings",
        "tokens",
        "uris",
    )

    def __init__(self, own_base: str) -> None:
        base = own_base.rstrip("/")
        self.own_prefix = base + "/" if base else None
        self.normalized: dict[str, str] = {}
        self.spans: dict[str, DateRange | None] = {}
        # Rows are gathered as plain tuples: de-duplicating them hashes in C, and only the
        # survivors become dataclasses.
        self.tokens: list[tuple[str, str | None, str | None, str | None]] = []
        self.of_types: list[tuple[str, str | None, str | None, str]] = []
        self.strings: list[tuple[str, str, str]] = []
        self.references: list[tuple[str, str | None, str | None, str | None, str | None]] = []
        self.dates: list[tuple[str, datetime, datetime]] = []
        self.quantities: list[
            tuple[str, Decimal, Decimal, Decimal, str | None, str | None, str | None]
        ] = []
        self.numbers: list[tuple[str, Decimal, Decimal, Decimal]] = []
        self.uris: list[tuple[str, str]] = []

    def rows(self) -> IndexRows:
        return IndexRows(
            tokens=tuple([TokenIndex(*row) for row in dict.fromkeys(self.tokens)]),
            of_types=tuple([OfTypeIndex(*row) for row in dict.fromkeys(self.of_types)]),
            strings=tuple([StringIndex(*row) for row in dict.fromkeys(self.strings)]),
            references=tuple([ReferenceIndex(*row) for row in dict.fromkeys(self.references)]),
            dates=tuple([DateIndex(*row) for row in dict.fromkeys(self.dates)]),
            quantities=tuple([QuantityIndex(*row) for row in dict.fromkeys(self.quantities)]),
            numbers=tuple([NumberIndex(*row) for row in dict.fromkeys(self.numbers)]),
            uris=tuple([UriIndex(*row) for row in dict.fromkeys(self.uris)]),
        )

    # token -----------------------------------------------------------------------------

    def token(self, param: str, system: str | None, code: str | None, text: str | None) -> None:
        if (system is not None and len(system) > MAX_TOKEN) or (
            code is not None and len(code) > MAX_TOKEN
        ):
            return
        if system is not None or code is not None or text:
            self.tokens.append((param, system, code, text))

    def text_token(self, param: str, text: Any) -> None:
        if isinstance(text, str) and (normalized := normalize_string(text)):
            self.tokens.append((param, None, None, normalized))

    def coding(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        display = _str(value.get("display"))
        text = normalize_string(display) if display is not None else None
        self.token(param, _str(value.get("system")), _str(value.get("code")), text or None)

    def codeable_concept(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        for coding in _dicts(value.get("coding")):
            self.coding(param, coding)
        self.text_token(param, value.get("text"))

    def codeable_reference_token(self, param: str, value: Any) -> None:
        if isinstance(value, dict):
            self.codeable_concept(param, value.get("concept"))

    def identifier(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        code = _str(value.get("value"))
        self.token(param, _str(value.get("system")), code, None)
        id_type = value.get("type")
        if not isinstance(id_type, dict):
            return
        self.text_token(param, id_type.get("text"))
        if code is None or len(code) > MAX_TOKEN:
            return
        for coding in _dicts(id_type.get("coding")):
            system, type_code = _str(coding.get("system")), _str(coding.get("code"))
            if system is not None and len(system) > MAX_TOKEN:
                continue
            if type_code is not None and len(type_code) <= MAX_TOKEN:
                self.of_types.append((param, system, type_code, code))

    def contact_point(self, param: str, value: Any) -> None:
        if isinstance(value, dict):
            code = _str(value.get("value"))
            if code is not None:
                self.token(param, None, code, None)

    def primitive_token(self, param: str, value: Any) -> None:
        if isinstance(value, bool):
            self.tokens.append((param, None, "true" if value else "false", None))
        elif isinstance(value, str) and value:
            self.token(param, None, value, None)

    # string ----------------------------------------------------------------------------

    def string(self, param: str, value: Any) -> None:
        if not isinstance(value, str):
            return
        # One resource repeats its strings across parameters (name, family, phonetic...).
        normalized = self.normalized.get(value)
        if normalized is None:
            normalized = self.normalized[value] = normalize_string(value)
        if normalized:
            self.strings.append((param, normalized, exact_string(value)))

    def _string_parts(self, param: str, value: Any, fields: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            return
        for field in fields:
            part = value.get(field)
            if part is None:
                continue
            if isinstance(part, list):
                for item in part:
                    self.string(param, item)
            else:
                self.string(param, part)

    def human_name(self, param: str, value: Any) -> None:
        self._string_parts(param, value, ("family", "given", "prefix", "suffix", "text"))

    def address(self, param: str, value: Any) -> None:
        fields = ("line", "city", "district", "state", "postalCode", "country", "text")
        self._string_parts(param, value, fields)

    # reference -------------------------------------------------------------------------

    def reference(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        ident = value.get("identifier")
        if isinstance(ident, dict):
            system, code = _str(ident.get("system")), _str(ident.get("value"))
            if code is not None:
                self.token(f"{param}:identifier", system, code, None)
        literal = _str(value.get("reference"))
        if literal is None or literal.startswith("#") or len(literal) > MAX_URI:
            return
        if literal.startswith(("http://", "https://")):
            prefix = self.own_prefix
            if prefix is not None and literal.startswith(prefix):
                local = _REL_RE.fullmatch(literal, len(prefix))
                if local is not None:
                    target_type, target_id, version = local.groups()
                    self.references.append((param, target_type, target_id, version, literal))
                    return
            self.references.append((param, None, None, None, literal))
            return
        local = _REL_RE.fullmatch(literal)
        if local is not None:
            target_type, target_id, version = local.groups()
            self.references.append((param, target_type, target_id, version, None))
        else:  # urn:uuid:, urn:oid:, anything else written as a literal
            self.references.append((param, None, None, None, literal))

    def codeable_reference(self, param: str, value: Any) -> None:
        if isinstance(value, dict):
            self.reference(param, value.get("reference"))

    def canonical_reference(self, param: str, value: Any) -> None:
        if isinstance(value, str) and value and len(value) <= MAX_URI:
            url, bar, version = value.partition("|")
            if url:
                self.references.append(
                    (param, None, None, version if bar and version else None, url)
                )

    # date ------------------------------------------------------------------------------

    def span(self, text: str) -> DateRange | None:
        """parse_date_range, memoised per resource (dates repeat across parameters)."""
        try:
            return self.spans[text]
        except KeyError:
            pass
        try:
            span: DateRange | None = parse_date_range(text)
        except ValueError:
            span = None
        self.spans[text] = span
        return span

    def period_bounds(self, value: Any) -> tuple[datetime, datetime] | None:
        if not isinstance(value, dict):
            return None
        start, end = _str(value.get("start")), _str(value.get("end"))
        if start is None and end is None:
            return None
        low, high = MIN_DATE, MAX_DATE
        if start is not None:
            if (span := self.span(start)) is None:
                return None
            low = span.low
        if end is not None:
            if (span := self.span(end)) is None:
                return None
            high = span.high
        return low, high

    def date(self, param: str, value: Any) -> None:
        if isinstance(value, str) and (span := self.span(value)) is not None:
            self.dates.append((param, span.low, span.high))

    def period(self, param: str, value: Any) -> None:
        bounds = self.period_bounds(value)
        if bounds is not None:
            self.dates.append((param, bounds[0], bounds[1]))

    def timing(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        lows: list[datetime] = []
        highs: list[datetime] = []
        for event in _strs(value.get("event")):
            if (span := self.span(event)) is not None:
                lows.append(span.low)
                highs.append(span.high)
        repeat = value.get("repeat")
        if isinstance(repeat, dict):
            bounds = self.period_bounds(repeat.get("boundsPeriod"))
            if bounds is not None:
                lows.append(bounds[0])
                highs.append(bounds[1])
        if lows:
            self.dates.append((param, min(lows), max(highs)))

    # quantity / number -----------------------------------------------------------------

    def quantity(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        number = _number(value.get("value"))
        if number is None:
            return
        low, high = number, number
        comparator = value.get("comparator")
        if comparator in ("<", "<="):
            low = NEG_INF
        elif comparator in (">", ">=", "ad"):
            high = POS_INF
        self._add_quantity(param, number, low, high, value)

    def _add_quantity(
        self, param: str, number: Decimal, low: Decimal, high: Decimal, units: dict[str, Any]
    ) -> None:
        """One quantity row; system, code and unit come from the Quantity that carries them."""
        self.quantities.append(
            (
                param,
                number,
                low,
                high,
                _str(units.get("system")),
                _str(units.get("code")),
                _str(units.get("unit")),
            )
        )

    def money(self, param: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        number = _number(value.get("value"))
        if number is not None:
            currency = _str(value.get("currency"))
            system = ISO_4217 if currency is not None else None
            self.quantities.append((param, number, number, number, system, currency, None))

    def quantity_range(self, param: str, value: Any) -> None:
        bounds = _range_bounds(value)
        if bounds is None:
            return
        number, low, high, unit_of = bounds
        self._add_quantity(param, number, low, high, unit_of)

    def number(self, param: str, value: Any) -> None:
        number = _number(value)
        if number is not None:
            self.numbers.append((param, number, number, number))

    def number_range(self, param: str, value: Any) -> None:
        bounds = _range_bounds(value)
        if bounds is not None:
            self.numbers.append((param, bounds[0], bounds[1], bounds[2]))

    # uri -------------------------------------------------------------------------------

    def uri(self, param: str, value: Any) -> None:
        if isinstance(value, str) and value and len(value) <= MAX_URI:
            self.uris.append((param, value))

    def canonical_uri(self, param: str, value: Any) -> None:
        if isinstance(value, str) and value and len(value) <= MAX_URI:
            self.uris.append((param, value))
            url, bar, _ = value.partition("|")
            if bar and url:
                self.uris.append((param, url))


def _range_bounds(value: Any) -> tuple[Decimal, Decimal, Decimal, dict[str, Any]] | None:
    """(value, low, high, quantity carrying the units) of a Range, None without values."""
    if not isinstance(value, dict):
        return None
    low_q, high_q = value.get("low"), value.get("high")
    low_q = low_q if isinstance(low_q, dict) else {}
    high_q = high_q if isinstance(high_q, dict) else {}
    low_v, high_v = _number(low_q.get("value")), _number(high_q.get("value"))
    if low_v is None and high_v is None:
        return None
    low = low_v if low_v is not None else NEG_INF
    high = high_v if high_v is not None else POS_INF
    if low_v is not None:
        return low_v, low, high, low_q
    assert high_v is not None
    return high_v, low, high, high_q


Handler = Callable[[_Builder, str, Any], None]

_STRING_TAGS = ("string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid")

_HANDLERS: Mapping[str, Mapping[str, Handler]] = {
    "token": {
        "Coding": _Builder.coding,
        "CodeableConcept": _Builder.codeable_concept,
        "CodeableReference": _Builder.codeable_reference_token,
        "Identifier": _Builder.identifier,
        "ContactPoint": _Builder.contact_point,
        "boolean": _Builder.primitive_token,
        **dict.fromkeys(_STRING_TAGS, _Builder.primitive_token),
    },
    "string": {
        **dict.fromkeys(_STRING_TAGS, _Builder.string),
        "HumanName": _Builder.human_name,
        "Address": _Builder.address,
    },
    "reference": {
        "Reference": _Builder.reference,
        "CodeableReference": _Builder.codeable_reference,
        "canonical": _Builder.canonical_reference,
        "uri": _Builder.canonical_reference,
        "url": _Builder.canonical_reference,
    },
    "date": {
        "date": _Builder.date,
        "dateTime": _Builder.date,
        "instant": _Builder.date,
        "string": _Builder.date,
        "Period": _Builder.period,
        "Timing": _Builder.timing,
    },
    "quantity": {
        **dict.fromkeys(
            ("Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity", "MoneyQuantity"),
            _Builder.quantity,
        ),
        "Money": _Builder.money,
        "Range": _Builder.quantity_range,
    },
    "number": {
        **dict.fromkeys(
            ("integer", "decimal", "positiveInt", "unsignedInt", "integer64"), _Builder.number
        ),
        "Range": _Builder.number_range,
    },
    "uri": {
        "uri": _Builder.uri,
        "url": _Builder.uri,
        "oid": _Builder.uri,
        "uuid": _Builder.uri,
        "canonical": _Builder.canonical_uri,
    },
}


def index_rows(resource_type: str, body: Mapping[str, Any], *, own_base: str) -> IndexRows:
    """The index rows of body, a parsed resource of resource_type, for every indexed
    non-composite parameter. own_base is the server's base URL (absolute references under
    it are indexed as local ones too)."""
    builder = _Builder(own_base)
    for code, extractor, handlers in _plan(resource_type):
        for tag, value in extractor(body):
            handler = handlers.get(tag)
            if handler is not None:
                handler(builder, code, value)
    return builder.rows()


@cache
def _plan(resource_type: str) -> tuple[tuple[str, CompiledPath, Mapping[str, Handler]], ...]:
    """(code, walker, handlers by type tag) of the parameters this module indexes."""
    plan = []
    for search_param, extractor in extractors(resource_type):
        if search_param.code in RESOURCE_COLUMNS:
            continue
        handlers = _HANDLERS.get(search_param.type)
        if handlers is not None and isinstance(extractor, CompiledPath):  # not composite
            plan.append((search_param.code, extractor, handlers))
    return tuple(plan)
