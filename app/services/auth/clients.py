"""The API client registry: who may ask for access tokens, for which agency, with which keys.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html,
"Registering a SMART Backend Service"): the client is registered out of band with its
public keys (a JWK Set, inline or at a URL) and the scopes it may be granted. Here that is
`casebridge clients add`; each client acts for exactly one agency (an Organization).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.fhir.errors import InvalidRequest, NotFound
from app.security import jose, scopes
from app.security.caller import is_loopback, parse_agency
from app.services.uow import transaction
from app.storage.auth import AuthStore

_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class ApiClient:
    """A registered client as the rest of the service sees it."""

    client_id: str
    name: str
    agency: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    scopes: tuple[str, ...]
    disabled: bool
    created_at: datetime


def _client(row: dict[str, Any]) -> ApiClient:
    return ApiClient(
        client_id=row["client_id"],
        name=row["name"],
        agency=row["agency"],
        jwks=orjson.loads(row["jwks"]) if row["jwks"] else None,
        jwks_url=row["jwks_url"],
        scopes=tuple(row["scopes"].split()),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
    )


def check_jwks_url(url: str) -> str:
    """A JWKS URL a client may be registered with: https, or http on a loopback host (for
    development), no credentials or fragment in it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequest(f"The JWKS URL {url[:200]!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidRequest(
            f"The JWKS URL {url[:200]!r} must use https (http is accepted on loopback only)"
        )
    if parts.username or parts.password or parts.fragment:
        raise InvalidRequest("The JWKS URL may not carry credentials or a fragment")
    return url.strip()


class ClientRegistry:
    """Register, list, look up and disable API clients."""

    def __init__(self, *, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def register(
        self,
        *,
        agency: str,
        name: str,
        scopes_text: str,
        jwks: Any = None,
        jwks_url: str | None = None,
    ) -> ApiClient:
        """Register a client; InvalidRequest or InvalidScope say what is wrong."""
        agency = parse_agency(agency, what="--org")
        name = name.strip()
        if not name or len(name) > _MAX_NAME:
            raise InvalidRequest(f"The client name must be 1-{_MAX_NAME} characters")
        if (jwks is None) == (jwks_url is None):
            raise InvalidRequest("Give the client's public keys as a JWK Set or a JWKS URL (one)")
        keys = jose.public_jwks(jwks) if jwks is not None else None
        url = check_jwks_url(jwks_url) if jwks_url is not None else None
        granted = scopes.normalise(scopes_text.split())
        row = {
            "client_id": self._clock.new_id(),
            "name": name,
            "agency": agency,
            "jwks": orjson.dumps(keys).decode() if keys is not None else None,
            "jwks_url": url,
            "scopes": " ".join(granted),
            "disabled": False,
            "created_at": self._clock.now(),
        }
        with transaction(self._engine, write=True) as repo:
            AuthStore(repo).insert_client(row)
        return _client(row)

    def get(self, client_id: str) -> ApiClient | None:
        """The client with this id, or None."""
        with transaction(self._engine, write=False, single_read=True) as repo:
            row = AuthStore(repo).client(client_id)
        return None if row is None else _client(row)

    def all(self) -> list[ApiClient]:
        """Every client, oldest first."""
        with transaction(self._engine, write=False) as repo:
            return [_client(row) for row in AuthStore(repo).clients()]

    def set_disabled(self, client_id: str, disabled: bool = True) -> ApiClient:
        """Disable (or re-enable) a client: it gets no new tokens, and its tokens stop
        working within CASEBRIDGE_AUTH_CLIENT_CACHE_S. NotFound if there is no such client."""
        with transaction(self._engine, write=True) as repo:
            store = AuthStore(repo)
            if not store.set_disabled(client_id, disabled):
                raise NotFound(f"No client {client_id[:80]!r} is registered")
            row = store.client(client_id)
        assert row is not None
        return _client(row)

    def agency_exists(self, agency: str) -> bool:
        """True if the agency's Organization resource is stored and not deleted."""
        _, _, org_id = agency.partition("/")
        with transaction(self._engine, write=False, single_read=True) as repo:
            current = repo.current("Organization", org_id)
        return current is not None and not current.deleted


__all__ = ["ApiClient", "ClientRegistry", "check_jwks_url"]
