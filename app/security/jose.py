"""JOSE rules of SMART Backend Services: client assertions in, access tokens out (pure).

SMART App Launch 2.x Backend Services
(https://hl7.org/fhir/smart-app-launch/backend-services.html), the client-confidential-
asymmetric profile (client-confidential-asymmetric.html), RFC 7523 (JWT client
assertions), RFC 7515/7517/7519 (JWS, JWK, JWT) and RFC 9068 (JWT access tokens). Signing
and verification are joserfc's; this module decides what is acceptable.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, RSAKey

from app.fhir.errors import InvalidClient, InvalidRequest, InvalidToken

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Backend Services: clients SHALL sign with RS384 or ES384; nothing else is accepted (in
# particular not "none", nor HS256 keyed with a public key).
ASSERTION_ALGORITHMS: Final = ("RS384", "ES384")
_KEY_TYPE: Final = {"RS384": "RSA", "ES384": "EC"}
# An assertion's exp is at most five minutes ahead (backend-services.html#protocol-details).
MAX_ASSERTION_LIFETIME_S: Final = 300
# Access tokens: the server's own EC P-256 key; RFC 9068 type so that no other JWT (a client
# assertion, say) can pass for one.
ACCESS_TOKEN_ALG: Final = "ES256"
ACCESS_TOKEN_TYP: Final = "at+jwt"
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MIN_RSA_BITS: Final = 2048
_MAX_TOKEN_CHARS: Final = 16384


@dataclass(frozen=True, slots=True)
class Unverified:
    """A compact JWS split into its header and claims, signature not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]


def _segment(text: str) -> Any:
    padded = text + "=" * (-len(text) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def read_compact(token: str) -> Unverified | None:
    """Header and claims of a compact JWS, or None if it is not one (nothing verified)."""
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    head, body, _signature = token.split(".")
    try:
        header, claims = _segment(head), _segment(body)
    except (ValueError, UnicodeError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return Unverified(header, claims)


# -- client assertions -------------------------------------------------------------------


def assertion_algorithm(header: Mapping[str, Any]) -> str:
    """The assertion's alg if acceptable (RS384, ES384); invalid_client otherwise."""
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise InvalidClient(
            f"The client assertion's alg {str(alg)[:20]!r} is not accepted: sign with "
            f"{' or '.join(ASSERTION_ALGORITHMS)}"
        )
    typ = header.get("typ")
    if typ is not None and str(typ).upper() != "JWT":
        raise InvalidClient(f"The client assertion's typ must be JWT, not {str(typ)[:20]!r}")
    assert isinstance(alg, str)
    return alg


def select_key(jwks: Mapping[str, Any], kid: Any, alg: str) -> Key:
    """The one key of the client's JWK Set with this kid and the key type alg needs.

    Backend Services: the server identifies the key by kid and kty; no key, or more than
    one, fails the authentication. Keys declaring another alg or a use other than sig do
    not match.
    """
    if not isinstance(kid, str) or not kid:
        raise InvalidClient("The client assertion's header has no kid naming its key")
    kty = _KEY_TYPE[alg]
    keys = jwks.get("keys")
    candidates = [
        k
        for k in (keys if isinstance(keys, list) else [])
        if isinstance(k, dict)
        and k.get("kid") == kid
        and k.get("kty") == kty
        and k.get("alg", alg) == alg
        and k.get("use", "sig") == "sig"
    ]
    if not candidates:
        raise InvalidClient(f"The client's JWK Set has no {kty} key with kid {kid[:64]!r}")
    if len(candidates) > 1:
        raise InvalidClient(f"The client's JWK Set has several {kty} keys with kid {kid[:64]!r}")
    found = candidates[0]
    if kty == "EC" and found.get("crv") != "P-384":
        raise InvalidClient(f"Key {kid[:64]!r} is not on curve P-384, which ES384 needs")
    public = {k: v for k, v in found.items() if k not in _PRIVATE_MEMBERS}
    try:
        if kty == "RSA":
            return RSAKey.import_key(public)
        return ECKey.import_key(public)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClient(f"Key {kid[:64]!r} of the client's JWK Set is unusable") from exc


def verify_signature(token: str, key: Key, alg: str) -> None:
    """invalid_client unless the JWS signature verifies with key under alg."""
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    try:
        jws.deserialize_compact(token, key, algorithms=[alg], registry=registry)
    except (JoseError, ValueError) as exc:
        raise InvalidClient("The client assertion's signature does not verify") from exc


def _instant(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClient(f"The client assertion's {name} must be a NumericDate (seconds)")
    return int(value)


def check_assertion_claims(
    claims: Mapping[str, Any],
    *,
    client_id: str,
    audience: str,
    now: datetime,
    leeway_s: int,
) -> int:
    """The registered claims of a client assertion (RFC 7523 section 3; Backend Services
    protocol details); returns its exp. Each failure is invalid_client."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("The client assertion's iss and sub must both be the client_id")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise InvalidClient(f"The client assertion's aud must be the token endpoint {audience}")
    moment = int(now.timestamp())
    exp = _instant(claims, "exp", required=True)
    assert exp is not None
    if exp + leeway_s <= moment:
        raise InvalidClient("The client assertion has expired (exp is past)")
    if exp - leeway_s > moment + MAX_ASSERTION_LIFETIME_S:
        raise InvalidClient(
            f"The client assertion's exp is more than {MAX_ASSERTION_LIFETIME_S} s ahead"
        )
    nbf = _instant(claims, "nbf", required=False)
    if nbf is not None and nbf - leeway_s > moment:
        raise InvalidClient("The client assertion is not valid yet (nbf is ahead)")
    iat = _instant(claims, "iat", required=False)
    if iat is not None and iat - leeway_s > moment:
        raise InvalidClient("The client assertion's iat is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise InvalidClient("The client assertion needs a jti (a nonce of 1-255 characters)")
    return exp


# -- client JWK Sets at registration -------------------------------------------------------


def public_jwks(value: Any) -> dict[str, Any]:
    """A client's JWK Set as registered: public RSA (2048 bits or more) or EC P-384 keys,
    each with a kid, no (kid, kty) twice. InvalidRequest says what is wrong."""
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest('A JWK Set is a JSON object {"keys": [...]} with at least one key')
    seen: set[tuple[str, str]] = set()
    out = []
    for index, key in enumerate(keys):
        where = f"keys[{index}]"
        if not isinstance(key, dict):
            raise InvalidRequest(f"{where} is not a JSON object")
        if _PRIVATE_MEMBERS & key.keys():
            raise InvalidRequest(
                f"{where} holds private key material: register the public key only"
            )
        kid, kty = key.get("kid"), key.get("kty")
        if not isinstance(kid, str) or not kid:
            raise InvalidRequest(f"{where} has no kid")
        if kty not in ("RSA", "EC"):
            raise InvalidRequest(f"{where} ({kid}) is kty {kty!r}: RSA (RS384) or EC (ES384)")
        if (kid, kty) in seen:
            raise InvalidRequest(f"{where}: another {kty} key already has kid {kid!r}")
        seen.add((kid, kty))
        try:
            imported: Key = RSAKey.import_key(key) if kty == "RSA" else ECKey.import_key(key)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidRequest(f"{where} ({kid}) is not a valid {kty} key: {exc}") from exc
        if isinstance(imported, RSAKey) and imported.raw_value.key_size < _MIN_RSA_BITS:
            raise InvalidRequest(f"{where} ({kid}) is shorter than {_MIN_RSA_BITS} bits")
        if kty == "EC" and key.get("crv") != "P-384":
            raise InvalidRequest(f"{where} ({kid}): EC keys must be on P-384 (ES384)")
        out.append(key)
    return {"keys": out}


# -- the server's access tokens ------------------------------------------------------------


def new_signing_key() -> ECKey:
    """A fresh EC P-256 key for access tokens; its kid is its RFC 7638 thumbprint."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    return key


def load_signing_key(text: str) -> ECKey:
    """The server's key from PEM or JWK JSON text (EC P-256, private)."""
    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            key = ECKey.import_key(json.loads(stripped))
        else:
            key = ECKey.import_key(stripped.encode())
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"not an EC private key in PEM or JWK form: {exc}") from exc
    if not key.is_private or key.curve_name != "P-256":
        raise ValueError("the access-token signing key must be a private EC P-256 key")
    if not key.kid:
        key.ensure_kid()
    return key


def sign_access_token(key: ECKey, claims: Mapping[str, Any]) -> str:
    """A signed JWT access token (RFC 9068 shape) carrying claims."""
    header = {"alg": ACCESS_TOKEN_ALG, "kid": key.kid, "typ": ACCESS_TOKEN_TYP}
    return jwt.encode(header, dict(claims), key, algorithms=[ACCESS_TOKEN_ALG], default_type=None)


def verify_access_token(
    token: str,
    keys: Mapping[str, ECKey],
    *,
    issuer: str,
    audience: str,
    now: datetime,
) -> dict[str, Any]:
    """The claims of one of this server's access tokens; InvalidToken if it is not one,
    is not signed by one of keys, is for another audience or has expired."""
    unverified = read_compact(token)
    if unverified is None:
        raise InvalidToken("The access token is not a JWT")
    header = unverified.header
    if header.get("alg") != ACCESS_TOKEN_ALG or header.get("typ") != ACCESS_TOKEN_TYP:
        raise InvalidToken("The access token was not issued by this server")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise InvalidToken("The access token was not signed by a key of this server")
    registry = jws.JWSRegistry(algorithms=[ACCESS_TOKEN_ALG])
    try:
        jws.deserialize_compact(token, key, algorithms=[ACCESS_TOKEN_ALG], registry=registry)
    except (JoseError, ValueError) as exc:
        raise InvalidToken("The access token's signature does not verify") from exc
    claims = unverified.claims
    if claims.get("iss") != issuer or claims.get("aud") != audience:
        raise InvalidToken("The access token was issued for another server")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= int(now.timestamp()):
        raise InvalidToken("The access token has expired")
    for name in ("client_id", "scope", "agency"):
        if not isinstance(claims.get(name), str):
            raise InvalidToken(f"The access token has no {name}")
    return claims


def key_ids(keys: Sequence[ECKey]) -> dict[str, ECKey]:
    """Keys by kid."""
    return {key.kid: key for key in keys if key.kid}


__all__ = [
    "ACCESS_TOKEN_ALG",
    "ASSERTION_ALGORITHMS",
    "ASSERTION_TYPE",
    "MAX_ASSERTION_LIFETIME_S",
    "Unverified",
    "assertion_algorithm",
    "check_assertion_claims",
    "key_ids",
    "load_signing_key",
    "new_signing_key",
    "public_jwks",
    "read_compact",
    "select_key",
    "sign_access_token",
    "verify_access_token",
    "verify_signature",
]
