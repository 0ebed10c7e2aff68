"""SMART Backend Services endpoints: token, introspection, keys and discovery.

    POST /auth/token                       client_credentials + private_key_jwt -> token
    POST /auth/introspect                  RFC 7662 token introspection
    GET  /auth/jwks                        the public keys that sign access tokens
    GET  /.well-known/smart-configuration  SMART discovery (also under /fhir, where the
                                           SMART App Launch guide looks for it)

These are open: they are how a client gets a token. OAuth errors are RFC 6749 JSON
(app/api/errors.py). This router is included before the FHIR router, whose
/{type}/{id} would otherwise take /fhir/.well-known/smart-configuration.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import ServicesDep
from app.fhir.errors import OAuthInvalidRequest

router = APIRouter()
_FORM: Final = "application/x-www-form-urlencoded"
# A client assertion is a few kilobytes; nothing an OAuth form carries needs more.
_MAX_FORM_BYTES: Final = 64 * 1024
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_TOKEN_THREADS: Final = 4


async def oauth_form(request: Request) -> list[tuple[str, str]]:
    """An OAuth request body: application/x-www-form-urlencoded (RFC 6749 section 4.4.2)."""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != _FORM:
        raise OAuthInvalidRequest(f"Send the parameters as {_FORM}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise OAuthInvalidRequest(f"The body exceeds {_MAX_FORM_BYTES} bytes")
    try:
        return parse_qsl(bytes(body).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthInvalidRequest("The form body cannot be read") from exc


OAuthForm = Annotated[list[tuple[str, str]], Depends(oauth_form)]


def _json(value: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), 200, headers, media_type="application/json")


def _token_threads(request: Request) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "token_threads", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(_TOKEN_THREADS)
        request.app.state.token_threads = limiter
    return limiter


@router.post("/auth/token")
async def token(request: Request, form: OAuthForm, services: ServicesDep) -> Response:
    """Access token request (SMART backend-services.html#obtaining-an-access-token)."""
    # Threads of their own: fetching a client's JWKS URL may wait seconds on the network,
    # which must not hold the one handler thread that writes wait for.
    grant = await anyio.to_thread.run_sync(
        services.auth.issue_token, form, limiter=_token_threads(request)
    )
    return _json(grant.to_json(), _NO_STORE)


@router.post("/auth/introspect")
def introspect(request: Request, form: OAuthForm, services: ServicesDep) -> Response:
    """Token introspection (RFC 7662 section 2; SMART token-introspection.html)."""
    answer = services.auth.introspect(request.headers.get("authorization"), form)
    return _json(answer, _NO_STORE)


@router.get("/auth/jwks")
def jwks(services: ServicesDep) -> Response:
    """The public JWK Set of the keys that sign this server's access tokens."""
    return _json(services.auth.keys.public_jwks())


@router.get("/.well-known/smart-configuration")
@router.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
async def smart_configuration(services: ServicesDep) -> Response:
    """SMART discovery (app-launch.html#smart-configuration; [base]/.well-known/...)."""
    return _json(services.auth.smart_configuration())
