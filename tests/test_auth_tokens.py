"""SMART Backend Services token endpoint, access tokens and introspection, end to end:
real keys made here, real signed client assertions, the real app over HTTP on both
databases (backend-services.html; RFC 7523, RFC 6749 section 5.2, RFC 7662)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc.jwk import Key

from app.clock import Clock
from app.services.auth.clients import ClientRegistry
from tests.conftest import Backend
from tests.support.auth import (
    MovableClock,
    assertion,
    ec_key,
    get_token,
    jwks_server,
    jwks_url,
    public_jwks,
    request_token,
    rsa_key,
    smart_server,
    token_form,
)
from tests.support.server import LiveServer

ORG = "Organization/acme"
PATIENT = {"resourceType": "Patient", "name": [{"family": "Rivera"}]}


@dataclass
class Smart:
    server: LiveServer
    clock: MovableClock
    registry: ClientRegistry

    @property
    def token_url(self) -> str:
        return f"{self.server.root}/auth/token"

    def register(self, *keys: Key, scopes: str = "system/*.cruds", url: str | None = None) -> str:
        client = self.registry.register(
            agency=ORG,
            name=f"client {uuid.uuid4().hex[:6]}",
            scopes_text=scopes,
            jwks=None if url else public_jwks(*keys),
            jwks_url=url,
        )
        return client.client_id

    def token(self, signed: str, scope: str = "system/*.cruds") -> httpx.Response:
        return request_token(self.server, token_form(signed, scope))


@pytest.fixture(scope="module")
def smart(backend: Backend) -> Iterator[Smart]:
    clock = MovableClock()
    # Trust a client's registration for no time at all, so disabling shows at once; refetch
    # a JWKS URL at once for an unknown kid, so key rotation needs no waiting.
    server = smart_server(backend, clock, auth_client_cache_s=0, auth_jwks_refetch_s=0)
    yield Smart(server, clock, ClientRegistry(engine=backend.engine, clock=Clock()))
    server.stop()


def _refused(response: httpx.Response, error: str = "invalid_client") -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    description: str = body["error_description"]
    return description


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _fhir(server: LiveServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.fhir, headers=headers, timeout=30)


# -- the happy paths -------------------------------------------------------------------------


@pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS384", "ES384"])
def test_signed_assertion_gets_a_token_that_opens_the_api(smart: Smart, make_key: Any) -> None:
    key = make_key("k1")
    client_id = smart.register(key, scopes="system/Patient.cruds")
    response = smart.token(
        assertion(key, client_id=client_id, aud=smart.token_url), "system/Patient.cruds"
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "system/Patient.cruds"
    assert 0 < body["expires_in"] <= 300
    # The token is a JWT carrying who asks, for which agency, with what scope.
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["client_id"] == client_id and claims["agency"] == ORG
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    with _fhir(smart.server, body["access_token"]) as http:
        created = http.post("/Patient", json=PATIENT)
        assert created.status_code == 201, created.text
        read = http.get(f"/Patient/{created.json()['id']}")
        assert read.status_code == 200
        assert read.json()["name"][0]["family"] == "Rivera"


def test_v1_scopes_map_to_v2_and_grants_are_narrowed(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key, scopes="system/Patient.read system/Observation.* introspect")

    def granted(scope: str) -> httpx.Response:
        return smart.token(assertion(key, client_id=client_id, aud=smart.token_url), scope)

    # Asking for everything gets what is registered, in v2 form.
    assert granted("system/*.cruds").json()["scope"] == "system/Observation.cruds system/Patient.rs"
    # Asking for more on one type gets the registered part only; unknown words drop out.
    assert granted("system/Patient.cruds launch openid").json()["scope"] == "system/Patient.rs"
    assert granted("system/Patient.write system/Observation.r introspect").json()["scope"] == (
        "system/Observation.r introspect"
    )
    # Nothing grantable, or a malformed scope: invalid_scope.
    assert "registered for" in _refused(granted("system/Task.rs"), "invalid_scope")
    _refused(granted("system/Patient.xyz"), "invalid_scope")
    _refused(granted("system/Patient.sr"), "invalid_scope")
    _refused(granted("patient/Patient.rs"), "invalid_scope")
    _refused(granted(""), "invalid_scope")


# -- every refusal is invalid_client ---------------------------------------------------------


def test_expired_assertion_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.token_url, exp_in=-5)
    assert "expired" in _refused(smart.token(signed))


def test_assertion_expiring_more_than_five_minutes_ahead_is_refused(smart: Smart) -> None:
    key = ec_key("k1")
    client_id = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.token_url, exp_in=360)
    assert "300 s ahead" in _refused(smart.token(signed))
    # Just inside the limit is fine.
    signed = assertion(key, client_id=client_id, aud=smart.token_url, exp_in=290)
    assert smart.token(signed).status_code == 200


def test_replayed_jti_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.token_url)
    assert smart.token(signed).status_code == 200
    assert "replay" in _refused(smart.token(signed))
    # The same jti in a newly signed assertion is a replay too.
    jti = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))["jti"]
    again = assertion(key, client_id=client_id, aud=smart.token_url, jti=jti, exp_in=200)
    assert "replay" in _refused(smart.token(again))


def test_alg_none_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.token_url)
    head = {"alg": "none", "kid": "k1", "typ": "JWT"}
    encoded = base64.urlsafe_b64encode(json.dumps(head).encode()).rstrip(b"=").decode()
    unsigned = f"{encoded}.{signed.split('.')[1]}."
    assert "alg" in _refused(smart.token(unsigned))


def test_hs256_keyed_with_the_public_key_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    # The classic key-confusion forgery: HMAC keyed with the client's *public* key (made
    # by hand: joserfc itself refuses to use a public key as an HMAC secret).
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": smart.token_url,
        "exp": int(smart.clock.now().timestamp()) + 60,
        "jti": str(uuid.uuid4()),
    }
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"
    assert "HS256" in _refused(smart.token(forged))


def test_bad_signature_is_refused(smart: Smart) -> None:
    key, other = rsa_key("k1"), rsa_key("k1")
    client_id = smart.register(key)
    # Signed by a different private key that claims the registered kid.
    signed = assertion(other, client_id=client_id, aud=smart.token_url)
    assert "signature" in _refused(smart.token(signed))


def test_unknown_kid_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    stranger = rsa_key("k2")
    assert "kid" in _refused(
        smart.token(assertion(stranger, client_id=client_id, aud=smart.token_url))
    )


def test_kid_matching_a_key_of_another_type_is_refused(smart: Smart) -> None:
    rsa = rsa_key("shared")
    client_id = smart.register(rsa)
    ec = ec_key("shared")  # same kid, but EC: no EC key with that kid is registered
    assert "no EC key" in _refused(
        smart.token(assertion(ec, client_id=client_id, aud=smart.token_url))
    )
    # Same kid for an RSA and an EC key: each alg picks its own kty.
    both = smart.register(rsa, ec)
    assert smart.token(assertion(ec, client_id=both, aud=smart.token_url)).status_code == 200
    assert smart.token(assertion(rsa, client_id=both, aud=smart.token_url)).status_code == 200


def test_wrong_audience_is_refused(smart: Smart) -> None:
    key = ec_key("k1")
    client_id = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.server.fhir)
    assert "aud" in _refused(smart.token(signed))


def test_issuer_other_than_the_client_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    other = smart.register(key)
    signed = assertion(key, client_id=client_id, aud=smart.token_url, claims={"iss": other})
    assert "iss and sub" in _refused(smart.token(signed))
    unknown = assertion(key, client_id="nobody", aud=smart.token_url)
    assert "nobody" in _refused(smart.token(unknown))


def test_disabled_client_gets_no_token_and_its_tokens_stop(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    token = get_token(smart.server, key, client_id, "system/*.cruds")
    with _fhir(smart.server, token) as http:
        assert http.get("/Patient").status_code == 200
        smart.registry.set_disabled(client_id)
        refused = http.get("/Patient")
    assert refused.status_code == 401
    assert "disabled" in _refused(
        smart.token(assertion(key, client_id=client_id, aud=smart.token_url))
    )


def test_jku_must_be_the_registered_jwks_url(smart: Smart) -> None:
    key = rsa_key("k1")
    inline = smart.register(key)
    signed = assertion(
        key,
        client_id=inline,
        aud=smart.token_url,
        header={"jku": "https://attacker.example/jwks.json"},
    )
    assert "jku" in _refused(smart.token(signed))
    with jwks_server(public_jwks(key)) as published:
        by_url = smart.register(url=jwks_url(published))
        elsewhere = assertion(
            key,
            client_id=by_url,
            aud=smart.token_url,
            header={"jku": jwks_url(published) + "?other"},
        )
        assert "jku" in _refused(smart.token(elsewhere))
        same = assertion(
            key, client_id=by_url, aud=smart.token_url, header={"jku": jwks_url(published)}
        )
        assert smart.token(same).status_code == 200


def test_client_with_a_jwks_url_is_fetched_cached_and_refetched_on_rotation(
    smart: Smart,
) -> None:
    first = ec_key("2026-01")
    with jwks_server(public_jwks(first)) as published:
        client_id = smart.register(url=jwks_url(published))
        for _ in range(2):
            signed = assertion(first, client_id=client_id, aud=smart.token_url)
            assert smart.token(signed).status_code == 200
        assert published.hits == 1  # the second authentication used the cached set
        # The client rotates: a new kid is published, the cached set lacks it.
        second = rsa_key("2026-02")
        published.jwks = public_jwks(first, second)
        signed = assertion(second, client_id=client_id, aud=smart.token_url)
        assert smart.token(signed).status_code == 200
        assert published.hits == 2
        # A kid the fresh set lacks as well: refused after one more fetch.
        stranger = rsa_key("2026-03")
        refused = smart.token(assertion(stranger, client_id=client_id, aud=smart.token_url))
        assert "kid" in _refused(refused)
    dead = smart.register(url="http://127.0.0.1:9/jwks.json")
    assert "could not be fetched" in _refused(
        smart.token(assertion(first, client_id=dead, aud=smart.token_url))
    )


def test_malformed_token_requests_get_oauth_errors(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key)
    good = token_form(assertion(key, client_id=client_id, aud=smart.token_url), "system/*.rs")
    url = smart.token_url
    assert _refused(
        httpx.post(url, data={**good, "grant_type": "password"}), "unsupported_grant_type"
    )
    assert _refused(
        httpx.post(url, data={k: v for k, v in good.items() if k != "grant_type"}),
        "invalid_request",
    )
    no_assertion = {k: v for k, v in good.items() if k != "client_assertion"}
    _refused(httpx.post(url, data=no_assertion))
    _refused(httpx.post(url, data={**good, "client_assertion_type": "urn:other"}))
    _refused(httpx.post(url, data={**good, "client_assertion": "not-a-jwt"}))
    _refused(httpx.post(url, json=good), "invalid_request")
    repeated = httpx.post(
        url,
        content="scope=a&scope=b&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "repeated" in _refused(repeated, "invalid_request")


# -- access tokens on the API ----------------------------------------------------------------


def test_no_token_is_401_with_an_operation_outcome_and_www_authenticate(smart: Smart) -> None:
    for path in ("/Patient", "/Patient/x", "/_history", "/$export", "/$export-status/x"):
        response = httpx.get(f"{smart.server.fhir}{path}")
        assert response.status_code == 401, path
        assert response.json()["resourceType"] == "OperationOutcome"
        assert response.json()["issue"][0]["code"] == "login"
        assert response.headers["www-authenticate"].startswith('Bearer realm="casebridge"')
    posted = httpx.post(f"{smart.server.fhir}/Patient", json=PATIENT)
    assert posted.status_code == 401
    # Open: probes, discovery and the CapabilityStatement.
    for path in (
        "/healthz",
        "/readyz",
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
        "/fhir/metadata",
        "/auth/jwks",
    ):
        assert httpx.get(f"{smart.server.root}{path}").status_code == 200, path


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."],
    ids=["not-a-jwt", "bad-segments", "alg-none"],
)
def test_invalid_tokens_are_401_invalid_token(smart: Smart, token: str) -> None:
    response = httpx.get(
        f"{smart.server.fhir}/Patient", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["resourceType"] == "OperationOutcome"


def test_tampered_token_is_refused(smart: Smart) -> None:
    key = rsa_key("k1")
    client_id = smart.register(key, scopes="system/Patient.rs")
    token = get_token(smart.server, key, client_id, "system/Patient.rs")
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = "system/*.cruds"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with _fhir(smart.server, f"{head}.{forged_body}.{signature}") as http:
        response = http.get("/Patient")
    assert response.status_code == 401
    assert "signature" in response.json()["issue"][0]["diagnostics"]


def test_access_token_expires(backend: Backend) -> None:
    clock = MovableClock()
    server = smart_server(backend, clock, auth_token_lifetime_s=60)
    try:
        key = ec_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        client_id = registry.register(
            agency=ORG, name="expiry", scopes_text="system/*.rs", jwks=public_jwks(key)
        ).client_id
        token = get_token(server, key, client_id, "system/*.rs")
        exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
        with _fhir(server, token) as http:
            assert http.get("/Patient").status_code == 200
            clock.advance(exp - 2 - clock.now().timestamp())  # two seconds before exp
            assert http.get("/Patient").status_code == 200
            clock.advance(2.5)
            expired = http.get("/Patient")
        assert expired.status_code == 401
        assert "expired" in expired.json()["issue"][0]["diagnostics"]
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    finally:
        server.stop()


# -- introspection ---------------------------------------------------------------------------


def _introspect(server: LiveServer, bearer: str | None, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(f"{server.root}/auth/introspect", data={"token": token}, headers=headers)


def test_introspection(smart: Smart) -> None:
    key = rsa_key("k1")
    own = smart.register(key, scopes="system/CarePlan.rs")
    other = smart.register(key, scopes="system/Task.rus")
    auditor = smart.register(key, scopes="system/*.rs introspect")
    own_token = get_token(smart.server, key, own, "system/CarePlan.rs")
    other_token = get_token(smart.server, key, other, "system/Task.rus")
    auditor_token = get_token(smart.server, key, auditor, "system/*.rs introspect")

    answer = _introspect(smart.server, own_token, own_token)
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["client_id"] == own and body["sub"] == own
    assert body["agency"] == ORG and body["scope"] == "system/CarePlan.rs"
    assert body["exp"] > smart.clock.now().timestamp()
    # Another client's token: not visible without the introspect scope.
    assert _introspect(smart.server, own_token, other_token).json() == {"active": False}
    seen = _introspect(smart.server, auditor_token, other_token).json()
    assert seen["active"] is True and seen["client_id"] == other
    # Garbage and forged tokens are inactive, not errors.
    assert _introspect(smart.server, own_token, "garbage").json() == {"active": False}
    assert _introspect(smart.server, own_token, own_token[:-4] + "AAAA").json() == {"active": False}
    # A disabled client's tokens are inactive at once.
    smart.registry.set_disabled(other)
    assert _introspect(smart.server, auditor_token, other_token).json() == {"active": False}
    # The caller must present a valid token of its own.
    refused = _introspect(smart.server, None, own_token)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    assert _introspect(smart.server, "garbage", own_token).status_code == 401


def test_introspection_of_an_expired_token_is_inactive(backend: Backend) -> None:
    clock = MovableClock()
    server = smart_server(backend, clock, auth_token_lifetime_s=30)
    try:
        key = rsa_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        auditor = registry.register(
            agency=ORG, name="auditor", scopes_text="introspect", jwks=public_jwks(key)
        ).client_id
        token = get_token(server, key, auditor, "introspect")
        clock.advance(20)
        fresh = get_token(server, key, auditor, "introspect")  # issued 20 s later
        assert _introspect(server, fresh, token).json()["active"] is True
        clock.advance(15)
        assert _introspect(server, fresh, token).json() == {"active": False}
    finally:
        server.stop()


# -- discovery -------------------------------------------------------------------------------


def test_smart_configuration_and_capability_statement_describe_the_auth(smart: Smart) -> None:
    config = httpx.get(f"{smart.server.fhir}/.well-known/smart-configuration").json()
    assert config == httpx.get(f"{smart.server.root}/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == smart.token_url
    assert config["introspection_endpoint"] == f"{smart.server.root}/auth/introspect"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert "system/*.rs" in config["scopes_supported"]
    keys = httpx.get(config["jwks_uri"]).json()["keys"]
    assert keys and all("d" not in k and k["alg"] == "ES256" for k in keys)

    rest = httpx.get(f"{smart.server.fhir}/metadata").json()["rest"][0]
    security = rest["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris == {"token": smart.token_url, "introspect": config["introspection_endpoint"]}


def test_auth_off_metadata_has_no_security_section(live: LiveServer) -> None:
    rest = httpx.get(f"{live.fhir}/metadata").json()["rest"][0]
    assert "security" not in rest


# -- several processes, one database -----------------------------------------------------------


def test_two_servers_on_one_database_share_keys_and_jti_memory(backend: Backend) -> None:
    # Two processes behind one public URL, as `serve --workers 2` or two containers run.
    clock = MovableClock()
    public = "https://casebridge.example/fhir"
    first = smart_server(backend, clock, base_url=public)
    second = smart_server(backend, clock, base_url=public)
    try:
        key = rsa_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        client_id = registry.register(
            agency=ORG, name="twins", scopes_text="system/*.rs", jwks=public_jwks(key)
        ).client_id
        aud = "https://casebridge.example/auth/token"
        signed = assertion(key, client_id=client_id, aud=aud)
        granted = request_token(first, token_form(signed, "system/*.rs"))
        assert granted.status_code == 200, granted.text
        # The same assertion at the other process is a replay.
        assert "replay" in _refused(request_token(second, token_form(signed, "system/*.rs")))
        # A token from one process is honoured by the other (the signing key is shared).
        with _fhir(second, granted.json()["access_token"]) as http:
            assert http.get("/Patient").status_code == 200
    finally:
        first.stop()
        second.stop()


def test_signing_key_from_a_file(backend: Backend, tmp_path: Any) -> None:
    own = ec_key("operator-key", "P-256")
    path = tmp_path / "signing.json"
    path.write_text(json.dumps(own.as_dict(private=True)))
    clock = MovableClock()
    server = smart_server(backend, clock, auth_signing_key_file=path)
    try:
        published = httpx.get(f"{server.root}/auth/jwks").json()["keys"]
        assert [k["kid"] for k in published] == ["operator-key"]
        key = ec_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        client_id = registry.register(
            agency=ORG, name="file", scopes_text="system/*.rs", jwks=public_jwks(key)
        ).client_id
        token = get_token(server, key, client_id, "system/*.rs")
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header == {"alg": "ES256", "kid": "operator-key", "typ": "at+jwt"}
        with _fhir(server, token) as http:
            assert http.get("/Patient").status_code == 200
    finally:
        server.stop()
    path.write_text("not a key")
    with pytest.raises(RuntimeError, match="SIGNING_KEY_FILE"):
        smart_server(backend, clock, auth_signing_key_file=path)
