"""Property tests: strict JSON in, exact JSON out (app/fhir/jsonio.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.fhir.errors import StructureError
from app.fhir.jsonio import dumps, parse_json

# Text FHIR can store: any Unicode scalar value but NUL and surrogates.
texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
decimal_texts = st.from_regex(
    r"-?(0|[1-9][0-9]{0,12})\.[0-9]{1,12}([eE][+-]?[0-9]{1,2})?", fullmatch=True
)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_preserves_value(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()
    assert json.loads(dumps(parse_json(raw, max_depth=64))) == value


@given(st.lists(decimal_texts, min_size=1, max_size=5))
def test_decimals_keep_their_exact_text(numbers: list[str]) -> None:
    raw = ("[" + ",".join(numbers) + "]").encode()
    assert dumps(parse_json(raw, max_depth=8)) == raw


@given(texts, json_values, json_values)
def test_duplicate_keys_are_always_refused(key: str, first: Any, second: Any) -> None:
    k = json.dumps(key)
    raw = f"{{{k}: {json.dumps(first)}, {k}: {json.dumps(second)}}}".encode()
    with pytest.raises(StructureError, match="Duplicate"):
        parse_json(raw, max_depth=64)


@pytest.mark.parametrize("depth", [63, 64])
def test_depth_limit_is_inclusive(depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    assert parse_json(raw, max_depth=64) is not None
    with pytest.raises(StructureError):
        parse_json(b"[" * 65 + b"]" * 65, max_depth=64)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[1e400]", id="huge-exponent"),
        pytest.param(b"[1e-400]", id="tiny-exponent"),
        pytest.param(b"[" + b"1" * 70 + b"]", id="too-many-digits"),
        pytest.param(b"[" + b",".join([b"1e300"] * 400) + b"]", id="expansion-budget"),
    ],
)
def test_numbers_beyond_storable_range_are_refused(raw: bytes) -> None:
    with pytest.raises(StructureError):
        parse_json(raw, max_depth=8)


def test_integers_beyond_64_bits_keep_their_text() -> None:
    raw = b"[123456789012345678901234567890,-9223372036854775809,7]"
    assert dumps(parse_json(raw, max_depth=8)) == raw
