"""Strict JSON in and fast JSON out for FHIR resources (spec json.html).

Hand-written on purpose: stock parsers (json, orjson) keep the last of duplicate keys, so
{"resourceType":"CarePlan","resourceType":"Patient"} would silently become a Patient. The
stdlib decoder with hooks rejects duplicates, NaN/Infinity and keeps decimals exact (FHIR
decimals carry their precision: 1.50 is not 1.5); orjson then writes bytes, with Decimals
emitted verbatim through orjson.Fragment.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NoReturn

import orjson

from app.fhir.errors import StructureError

_DECODER_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)


def _reject_constant(name: str) -> NoReturn:
    raise StructureError(f"JSON does not allow the constant {name}")


def _object_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StructureError(f"Duplicate JSON property {key!r}", expression=(key,))
            seen.add(key)
    return obj


class ExactDecimal(Decimal):
    """A JSON number that remembers the text it was written as (1E+5 stays 1e5)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactDecimal:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


# Beyond these, numbers are no longer plausible clinical values and PostgreSQL's JSONB (which
# stores numbers expanded) would either refuse them or blow a small body up by orders of
# magnitude.
MAX_EXPONENT = 308
MAX_DIGITS = 64
_INT64 = 2**63


# Total extra digits exponent notation may expand to across one body.
MAX_EXPANSION = 100_000


class _FloatParser:
    """Per-body parse_float hook that also bounds the body's total expansion."""

    __slots__ = ("expansion",)

    def __init__(self) -> None:
        self.expansion = 0

    def __call__(self, text: str) -> ExactDecimal:
        value = ExactDecimal(text)
        exponent = value.adjusted()
        if abs(exponent) > MAX_EXPONENT or len(value.as_tuple().digits) > MAX_DIGITS:
            raise StructureError(
                f"The number {text[:40]} is outside the supported range "
                f"(at most {MAX_DIGITS} digits and a magnitude of 1e{MAX_EXPONENT})"
            )
        if "e" in text or "E" in text:
            self.expansion += abs(exponent)
            if self.expansion > MAX_EXPANSION:
                raise StructureError("Too many numbers in exponent notation in one body")
        return value


def _parse_int(text: str) -> int | ExactDecimal:
    if len(text) > MAX_DIGITS + 1:
        raise StructureError(f"The number {text[:40]}... has more than {MAX_DIGITS} digits")
    value = int(text)
    # Larger integers are valid decimals (never FHIR integers): keep their exact text.
    return ExactDecimal(text) if not -_INT64 <= value < _INT64 else value


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(
        object_pairs_hook=_object_hook,
        parse_float=_FloatParser(),
        parse_int=_parse_int,
        parse_constant=_reject_constant,
    )


# Stored bodies were checked on the way in; one shared decoder reads them back.
_stored_decoder = json.JSONDecoder(
    object_pairs_hook=dict, parse_float=ExactDecimal, parse_int=_parse_int
)


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative so that hostile nesting cannot exhaust the interpreter stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend(
                (child, depth + 1) for child in node.values() if isinstance(child, dict | list)
            )
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


# Escapes that can smuggle in text FHIR cannot store: surrogates and NUL (PostgreSQL's
# JSONB refuses \u0000; a lone surrogate is not Unicode text at all).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def _bad_string(value: Any) -> str | None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "a NUL character (\\u0000), which FHIR strings may not contain"
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return "an unpaired UTF-16 surrogate escape, which is not valid UTF-8 text"
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Decode a request body as strict UTF-8 JSON or raise StructureError saying why."""
    if not body.strip():
        raise StructureError("The request body is empty; a JSON resource was expected")
    if body.startswith(b"\xef\xbb\xbf"):
        raise StructureError(
            "The body starts with a byte order mark, which JSON forbids (RFC 8259 8.1)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StructureError(f"The body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        value = _decoder().decode(text)
    except json.JSONDecodeError as exc:
        raise StructureError(
            f"Malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise StructureError(f"JSON nesting deeper than {max_depth} levels") from exc
    if _depth_exceeds(value, max_depth):
        raise StructureError(f"JSON nesting deeper than {max_depth} levels")
    if _SUSPECT_ESCAPE.search(text):
        problem = _bad_string(value)
        if problem:
            raise StructureError(f"The body holds {problem}")
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("non-finite decimal")
        return orjson.Fragment(value.text if isinstance(value, ExactDecimal) else str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; Decimals keep their exact text.

    Raises StructureError for text that cannot be UTF-8 (unpaired surrogates from \\ud800
    escapes) and integers beyond 64 bits, so such input is refused, never stored.
    """
    try:
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError as exc:
        raise StructureError(f"The resource cannot be represented as JSON: {exc}") from exc


def loads_stored(raw: bytes | str) -> Any:
    """Decode JSON that this server wrote itself (trusted, so no strict checks)."""
    return _stored_decoder.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


__all__ = ["ExactDecimal", "dumps", "loads_stored", "parse_json"]
