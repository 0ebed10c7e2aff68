"""Fetching a client's JWK Set from its registered JWKS URL, with a time-bounded cache.

SMART Backend Services (backend-services.html#registering-a-smart-backend-service): a
client may register a JWKS URL instead of its keys, so it can rotate keys without
re-registering. The server fetches it when the client authenticates; a kid the cached set
lacks makes one early refetch (a rotated key), at most once per refetch_s per URL, so
assertions naming made-up kids cannot make the server hammer the client's host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import orjson

from app.fhir.errors import InvalidClient

MAX_JWKS_BYTES: Final = 256 * 1024


class JwksFetcher:
    """GET a JWKS URL with a timeout and a size limit; keep each set for cache_s seconds."""

    def __init__(
        self,
        *,
        timeout_s: float,
        cache_s: float,
        refetch_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_s
        self._cache_s = cache_s
        self._refetch_s = refetch_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JWK Set at url; refresh asks for a newer copy than the cached one (granted
        if that copy is older than refetch_s). invalid_client if it cannot be had."""
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            fetched_at, jwks = cached
            age = now - fetched_at
            if age < self._cache_s and not (refresh and age >= self._refetch_s):
                return jwks
        jwks = self._fetch(url)
        with self._lock:
            self._cache[url] = (self._monotonic(), jwks)
        return jwks

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            with (
                httpx.Client(timeout=self._timeout, follow_redirects=False) as http,
                http.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise InvalidClient(
                        f"The client's JWKS URL answered {response.status_code}, not 200"
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise InvalidClient("The client's JWK Set is larger than 256 KiB")
        except httpx.HTTPError as exc:
            raise InvalidClient(
                f"The client's JWKS URL could not be fetched ({type(exc).__name__})"
            ) from exc
        try:
            jwks = orjson.loads(bytes(body))
        except orjson.JSONDecodeError as exc:
            raise InvalidClient("The client's JWKS URL did not answer with JSON") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise InvalidClient('The client\'s JWKS URL did not answer with {"keys": [...]}')
        return jwks


__all__ = ["JwksFetcher"]
