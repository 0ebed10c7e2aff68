"""SMART Backend Services from the client's side, for tests: real keys, real signed
assertions, a real JWKS server on 127.0.0.1, and a server clock the test can move."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from app.clock import Clock
from app.main import create_app
from app.security.jose import ASSERTION_TYPE
from tests.support.server import LiveServer, free_port, start_server


@dataclass
class MovableClock:
    """Wall-clock time plus an offset the test can advance (token expiry without waiting)."""

    offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def clock(self) -> Clock:
        return Clock(now=self.now, new_id=lambda: str(uuid.uuid4()))


def smart_server(backend: Any, clock: MovableClock, **overrides: object) -> LiveServer:
    """A live server with auth=smart on the session's database (caller stops it)."""
    port = free_port()
    values: dict[str, object] = {"base_url": f"http://127.0.0.1:{port}/fhir", "auth": "smart"}
    values.update(overrides)
    settings = backend.settings(**values)
    return start_server(create_app(settings, clock=clock.clock()), port)


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def ec_key(kid: str, curve: str = "P-384") -> ECKey:
    return ECKey.generate_key(curve, parameters={"kid": kid})


def public_jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(
    key: Key,
    *,
    client_id: str,
    aud: str,
    alg: str | None = None,
    exp_in: float = 120,
    jti: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """A client assertion (RFC 7523) signed with key, as a SMART backend client makes it."""
    alg = alg or ("RS384" if isinstance(key, RSAKey) else "ES384")
    moment = (now or datetime.now(UTC)).timestamp()
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": int(moment + exp_in),
        "jti": jti or str(uuid.uuid4()),
    }
    body.update(claims or {})
    head = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
    return jwt.encode(head, body, key, algorithms=[alg])


def token_form(client_assertion: str, scope: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
    }


def request_token(server: LiveServer, form: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.root}/auth/token", data=form, timeout=30)


def get_token(server: LiveServer, key: Key, client_id: str, scope: str) -> str:
    """A fresh access token for the client, through the real token endpoint."""
    signed = assertion(key, client_id=client_id, aud=f"{server.root}/auth/token")
    response = request_token(server, token_form(signed, scope))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


class _JwksHandler(BaseHTTPRequestHandler):
    server: _JwksHttpServer

    def do_GET(self) -> None:
        self.server.hits += 1
        body = json.dumps(self.server.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _JwksHttpServer(ThreadingHTTPServer):
    jwks: dict[str, Any]
    hits: int


@contextmanager
def jwks_server(jwks: dict[str, Any]) -> Iterator[_JwksHttpServer]:
    """A real HTTP server on 127.0.0.1 publishing a JWK Set at /jwks.json (mutable)."""
    server = _JwksHttpServer(("127.0.0.1", 0), _JwksHandler)
    server.jwks = jwks
    server.hits = 0
    # A short poll interval: shutdown() waits for the next poll (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def jwks_url(server: _JwksHttpServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/jwks.json"


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def register_tokens(
    server: LiveServer, engine: Any, *, agency: str, grants: dict[str, str], key: Key
) -> dict[str, str]:
    """One registered client per grant (name -> scopes) of one agency, and a token for each."""
    from app.services.auth.clients import ClientRegistry

    registry = ClientRegistry(engine=engine, clock=Clock())
    tokens = {}
    for name, grant in grants.items():
        client_id = registry.register(
            agency=agency, name=name, scopes_text=grant, jwks=public_jwks(key)
        ).client_id
        tokens[name] = get_token(server, key, client_id, grant)
    return tokens
