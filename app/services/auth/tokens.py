"""SMART Backend Services: access tokens for registered clients, and who a token speaks for.

- Token endpoint (backend-services.html#obtaining-an-access-token): client_credentials
  with a private_key_jwt client assertion (RFC 7523), signed RS384 or ES384 with a key of
  the client's registered JWK Set. Every authentication failure is invalid_client.
- Access tokens are JWTs (RFC 9068) signed with the server's own EC P-256 key, lasting at
  most 300 s, carrying client_id, agency and the granted scope.
- Introspection (RFC 7662): a client may introspect its own tokens; a client granted the
  ``introspect`` scope may introspect any token. Anything else reads as inactive.
- Discovery: /.well-known/smart-configuration (app-launch.html#smart-configuration).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import (
    InvalidClient,
    InvalidScope,
    InvalidToken,
    OAuthInvalidRequest,
    Unauthorized,
    UnsupportedGrantType,
)
from app.metrics import TOKEN_FAILURES
from app.security import jose, scopes
from app.security.caller import Caller
from app.services.auth.clients import ApiClient, ClientRegistry
from app.services.auth.jwks import JwksFetcher
from app.services.uow import transaction
from app.storage.auth import AuthStore

log = logging.getLogger("casebridge.auth")

REALM: Final = "casebridge"
_KEY_RELOAD_S: Final = 5.0
_MAX_CLIENT_ID: Final = 64
# Access tokens whose signature this process has checked (each lives at most 300 s).
_VERIFIED_CACHE: Final = 10_000


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful token response (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    scope: str

    def to_json(self) -> dict[str, Any]:
        """The token endpoint's JSON body."""
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def single_values(form: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Form parameters by name; a repeated one is invalid_request (RFC 6749 section 3.2)."""
    out: dict[str, str] = {}
    for name, value in form:
        if name in out:
            raise OAuthInvalidRequest(f"The parameter {name[:40]!r} is repeated")
        out[name] = value
    return out


def signing_secret(key: ECKey) -> bytes:
    """The private scalar of a signing key: secret material from which other keys of the
    server are derived (the paging-token key, app/services/params.py)."""
    d = key.as_dict(private=True)["d"]
    return base64.urlsafe_b64decode(str(d) + "=" * (-len(str(d)) % 4))


class SigningKeys:
    """The server's access-token keys: from CASEBRIDGE_AUTH_SIGNING_KEY_FILE, or kept in the
    database (generated on first use), so every process signs and verifies alike."""

    def __init__(self, *, engine: Engine, clock: Clock, key_file: Path | None) -> None:
        self._engine = engine
        self._clock = clock
        self._file = key_file
        self._lock = threading.Lock()
        self._signer: ECKey | None = None
        self._verifiers: dict[str, ECKey] = {}
        self._loaded_at = float("-inf")
        if key_file is not None:
            # A configured key that cannot be read stops the start, not the first request.
            try:
                self._load(create=False)
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"CASEBRIDGE_AUTH_SIGNING_KEY_FILE {key_file}: {exc}") from exc

    def signer(self) -> ECKey:
        """The key that signs new tokens."""
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    self._load(create=True)
        assert self._signer is not None
        return self._signer

    def verifiers(self, kid: str | None) -> dict[str, ECKey]:
        """The keys that verify tokens; reloads (at most every few seconds) when kid is one
        this process has not seen, which another process may have just generated."""
        if kid is not None and kid not in self._verifiers and self._file is None:
            with self._lock:
                if time.monotonic() - self._loaded_at >= _KEY_RELOAD_S:
                    self._load(create=False)
        return self._verifiers

    def public_jwks(self) -> dict[str, Any]:
        """The verifying keys as a public JWK Set (for /auth/jwks)."""
        self.signer()
        return {
            "keys": [
                {**key.as_dict(private=False), "use": "sig", "alg": jose.ACCESS_TOKEN_ALG}
                for key in self._verifiers.values()
            ]
        }

    def _load(self, *, create: bool) -> None:
        self._loaded_at = time.monotonic()
        if self._file is not None:
            key = jose.load_signing_key(self._file.read_text())
            self._signer, self._verifiers = key, jose.key_ids([key])
            return
        with transaction(self._engine, write=False) as repo:
            stored = AuthStore(repo).signing_keys()
        if not stored and create:
            fresh = jose.new_signing_key()
            assert fresh.kid is not None
            with transaction(self._engine, write=True) as repo:
                store = AuthStore(repo)
                store.add_signing_key(
                    fresh.kid,
                    orjson.dumps(fresh.as_dict(private=True)).decode(),
                    self._clock.now(),
                )
                # Two processes starting at once may both generate: each re-reads, and the
                # oldest key signs everywhere.
                stored = store.signing_keys()
            log.info("generated the access-token signing key %s", fresh.kid)
        keys = [ECKey.import_key(orjson.loads(text)) for _, text in stored]
        if keys:
            self._signer = keys[0]
            self._verifiers = {**self._verifiers, **jose.key_ids(keys)}


class AuthService:
    """Token issuance, access-token checks, introspection and SMART discovery."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        settings: Settings,
        clients: ClientRegistry,
        jwks: JwksFetcher,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._clients = clients
        self._jwks = jwks
        self._monotonic = monotonic
        self.keys = SigningKeys(engine=engine, clock=clock, key_file=settings.auth_signing_key_file)
        self._client_cache: dict[str, tuple[float, ApiClient | None]] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self._verified_lock = threading.Lock()

    # -- endpoints -------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        """The iss of this server's access tokens: the public URL of /auth."""
        return self._settings.auth_base

    @property
    def token_endpoint(self) -> str:
        """The token endpoint URL, which client assertions name as aud."""
        return f"{self._settings.auth_base}/auth/token"

    @property
    def introspection_endpoint(self) -> str:
        """The RFC 7662 introspection endpoint URL."""
        return f"{self._settings.auth_base}/auth/introspect"

    @property
    def jwks_endpoint(self) -> str:
        """Where the public keys that sign access tokens are published."""
        return f"{self._settings.auth_base}/auth/jwks"

    def smart_configuration(self) -> dict[str, Any]:
        """SMART discovery document (app-launch.html#response; backend services only)."""
        return {
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": self.introspection_endpoint,
            "jwks_uri": self.jwks_endpoint,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(jose.ASSERTION_ALGORITHMS),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "system/*.read",
                "system/*.write",
                "system/*.*",
                scopes.INTROSPECT,
            ],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }

    # -- token endpoint --------------------------------------------------------------------
    def issue_token(self, form: Sequence[tuple[str, str]]) -> TokenGrant:
        """POST /auth/token (backend-services.html#obtaining-an-access-token)."""
        try:
            return self._issue(single_values(form))
        except (InvalidClient, InvalidScope) as exc:
            TOKEN_FAILURES.labels(
                "invalid_scope" if isinstance(exc, InvalidScope) else "invalid_client"
            ).inc()
            log.info("token refused: %s", exc.diagnostics)
            raise

    def _issue(self, params: dict[str, str]) -> TokenGrant:
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthInvalidRequest("grant_type is required (client_credentials)")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType(
                f"grant_type {grant_type[:40]!r} is not supported; use client_credentials"
            )
        assertion_type = params.get("client_assertion_type")
        assertion = params.get("client_assertion")
        if not assertion_type or not assertion:
            raise InvalidClient(
                "Authenticate with client_assertion_type="
                f"{jose.ASSERTION_TYPE} and a signed client_assertion (private_key_jwt)"
            )
        if assertion_type != jose.ASSERTION_TYPE:
            raise InvalidClient(f"client_assertion_type must be {jose.ASSERTION_TYPE}")
        requested = params.get("scope", "")
        if not requested.strip():
            raise InvalidScope("scope is required, e.g. scope=system/CarePlan.rs")
        unverified = jose.read_compact(assertion)
        if unverified is None:
            raise InvalidClient("The client_assertion is not a signed JWT (JWS compact form)")
        header, claims = unverified.header, unverified.claims
        alg = jose.assertion_algorithm(header)
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or not client_id or claims.get("sub") != client_id:
            raise InvalidClient("The client assertion's iss and sub must both be the client_id")
        client = self._clients.get(client_id) if len(client_id) <= _MAX_CLIENT_ID else None
        if client is None:
            raise InvalidClient(f"No client {client_id[:64]!r} is registered")
        if client.disabled:
            raise InvalidClient(f"The client {client_id} is disabled")
        key = self._client_key(client, header, alg)
        jose.verify_signature(assertion, key, alg)
        now = self._clock.now()
        leeway = self._settings.auth_clock_leeway_s
        exp = jose.check_assertion_claims(
            claims, client_id=client_id, audience=self.token_endpoint, now=now, leeway_s=leeway
        )
        granted = scopes.grant(requested, client.scopes)
        if not granted:
            raise InvalidScope(
                f"None of the requested scopes is granted to this client; it is registered "
                f"for: {' '.join(client.scopes)}"
            )
        jti = str(claims["jti"])
        with transaction(self._engine, write=True) as repo:
            store = AuthStore(repo)
            store.forget_jtis(now - timedelta(seconds=leeway))
            expires = datetime.fromtimestamp(exp + leeway, UTC)
            if not store.record_jti(client_id, jti, expires):
                raise InvalidClient("The client assertion's jti was used before (replay)")
        return self._mint(client, " ".join(granted), now)

    def _client_key(self, client: ApiClient, header: dict[str, Any], alg: str) -> Any:
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise InvalidClient(
                "The client assertion's jku is not the client's registered JWKS URL"
            )
        kid = header.get("kid")
        if client.jwks is not None:
            return jose.select_key(client.jwks, kid, alg)
        assert client.jwks_url is not None
        try:
            return jose.select_key(self._jwks.get(client.jwks_url), kid, alg)
        except InvalidClient:
            # The client may have rotated its keys since the set was cached.
            return jose.select_key(self._jwks.get(client.jwks_url, refresh=True), kid, alg)

    def _mint(self, client: ApiClient, scope: str, now: datetime) -> TokenGrant:
        lifetime = self._settings.auth_token_lifetime_s
        issued = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": self._settings.base_url,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": self._clock.new_id(),
            "client_id": client.client_id,
            "agency": client.agency,
            "scope": scope,
        }
        token = jose.sign_access_token(self.keys.signer(), claims)
        log.info("token issued to %s (%s): %s", client.client_id, client.agency, scope)
        return TokenGrant(token, lifetime, scope)

    # -- access tokens on API requests -----------------------------------------------------
    def caller(self, authorization: str | None) -> Caller:
        """The Caller an Authorization: Bearer header speaks for (RFC 6750); Unauthorized
        (401, WWW-Authenticate) when there is none or it is not valid."""
        token = bearer_token(authorization)
        if token is None:
            TOKEN_FAILURES.labels("no_token").inc()
            raise Unauthorized(
                "This server requires a SMART Backend Services access token: "
                f"Authorization: Bearer <token>, from {self.token_endpoint}",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        try:
            claims = self._verify(token)
            client = self._cached_client(claims["client_id"])
            if client is None or client.disabled:
                raise InvalidToken("The access token's client is disabled or unregistered")
        except InvalidToken as exc:
            TOKEN_FAILURES.labels("invalid_token").inc()
            text = exc.diagnostics.replace('"', "'")
            raise Unauthorized(
                exc.diagnostics,
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="{REALM}", error="invalid_token", error_description="{text}"'
                    )
                },
            ) from exc
        return Caller(
            agency=claims["agency"],
            client_id=claims["client_id"],
            scopes=frozenset(claims["scope"].split()),
        )

    def _verify(self, token: str) -> dict[str, Any]:
        now = self._clock.now()
        # A client reuses its token for every request of its lifetime: checking the
        # signature once (about 0.3 ms) rather than on each request keeps reads fast. The
        # expiry is still checked on every use.
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] > int(now.timestamp()):
                return claims
            with self._verified_lock:
                self._verified.pop(token, None)
        unverified = jose.read_compact(token)
        kid = unverified.header.get("kid") if unverified is not None else None
        claims = jose.verify_access_token(
            token,
            self.keys.verifiers(kid if isinstance(kid, str) else None),
            issuer=self.issuer,
            audience=self._settings.base_url,
            now=now,
        )
        with self._verified_lock:
            if len(self._verified) >= _VERIFIED_CACHE:
                # Oldest first: dicts keep insertion order.
                for stale in list(self._verified)[: _VERIFIED_CACHE // 4]:
                    del self._verified[stale]
            self._verified[token] = claims
        return claims

    def _cached_client(self, client_id: str) -> ApiClient | None:
        now = self._monotonic()
        cached = self._client_cache.get(client_id)
        if cached is not None and now < cached[0]:
            return cached[1]
        client = self._clients.get(client_id)
        self._client_cache[client_id] = (now + self._settings.auth_client_cache_s, client)
        return client

    # -- introspection ---------------------------------------------------------------------
    def introspect(
        self, authorization: str | None, form: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """POST /auth/introspect (RFC 7662 section 2): the caller authenticates with its own
        bearer token; it sees its own tokens, or any token if it holds ``introspect``."""
        try:
            caller = self.caller(authorization)
        except Unauthorized as exc:
            raise InvalidToken(exc.diagnostics, headers=exc.headers) from exc
        token = single_values(form).get("token")
        if not token:
            raise OAuthInvalidRequest("token is required")
        try:
            claims = self._verify(token)
        except InvalidToken:
            return {"active": False}
        client = self._clients.get(claims["client_id"])
        if client is None or client.disabled:
            return {"active": False}
        if claims["client_id"] != caller.client_id and not scopes.has(caller, scopes.INTROSPECT):
            return {"active": False}
        return {
            "active": True,
            "scope": claims["scope"],
            "client_id": claims["client_id"],
            "sub": claims["sub"],
            "agency": claims["agency"],
            "exp": claims["exp"],
            "iat": claims.get("iat"),
            "iss": claims["iss"],
            "aud": claims["aud"],
            "jti": claims.get("jti"),
            "token_type": "Bearer",
        }


def bearer_token(authorization: str | None) -> str | None:
    """The token of an Authorization: Bearer header (RFC 6750 section 2.1), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


__all__ = ["AuthService", "SigningKeys", "TokenGrant", "bearer_token", "single_values"]
