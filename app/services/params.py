"""Reading result parameters (_count, once-only parameters, paging tokens) the same way."""

from __future__ import annotations

import base64
import binascii
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


def encode_token(raw: bytes) -> str:
    """An opaque, URL-safe paging token (_cursor) for raw bytes."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> bytes:
    """The bytes of a paging token; InvalidRequest when it is not one of ours."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(
            "The _cursor paging token is not valid", expression=("_cursor",)
        ) from exc
