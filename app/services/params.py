"""Reading result parameters (_count, once-only parameters, paging tokens) the same way."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


class Cursors:
    """Paging tokens (_cursor): the sort values a page ended on, sealed (AES-GCM) with a key
    derived from the server's signing key, so every process reads every other's tokens.
    Clients can neither read them (names and dates would end up in URLs and access logs)
    nor forge them (what a token holds reaches SQL only as the server wrote it).
    The key is loaded on first use (it may be generated then; app/services/auth/tokens.py)."""

    _INFO = b"casebridge paging cursor v1"

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self._INFO)
            self._aead = AESGCM(key.derive(self._secret()))
        return self._aead

    def seal(self, raw: bytes) -> str:
        """An opaque, URL-safe token for raw bytes."""
        nonce = os.urandom(12)
        sealed = nonce + self._cipher().encrypt(nonce, raw, None)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, token: str) -> bytes:
        """The bytes of a token this server sealed; InvalidRequest for anything else."""
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if len(sealed) < 12 + 16:
                raise ValueError("too short")
            return self._cipher().decrypt(sealed[:12], sealed[12:], None)
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise InvalidRequest(
                "The _cursor paging token is not valid", expression=("_cursor",)
            ) from exc
