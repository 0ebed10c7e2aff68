"""Reading result parameters (_count, once-only parameters) the same way everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from app.fhir.errors import InvalidRequest
from app.fhir.numbers import ascii_int


def single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The value of a parameter that may be given at most once."""
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise InvalidRequest(f"{name} may be given once", expression=(name,))
    return values[0] if values else None


def page_size(params: Sequence[tuple[str, str]], *, default: int, maximum: int) -> int:
    """_count (spec search.html#count), capped at the server's maximum page size."""
    raw = single(params, "_count")
    if raw is None:
        return default
    try:
        return min(ascii_int(raw, maximum=10**9), maximum)
    except ValueError as exc:
        raise InvalidRequest(
            "_count must be a non-negative integer", expression=("_count",)
        ) from exc
