"""Sign-in with Microsoft Entra ID, against a small OpenID provider on 127.0.0.1
(tests/entra_provider.py): the API's token check, the mapping to users, service users, the
web app's /auth/config, and the MSAL-based client. No internet."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import sys
import time
import uuid
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from dtbase_core import entra
from dtbase_core.client import ApiError, DTBaseClient
from dtbase_core.config import ConfigError, EntraSettings, get_settings, reset_settings
from dtbase_core.entra_client import PersistentTokenCache, token_source
from dtbase_core.errors import Unauthorized
from tests.entra_provider import (
    API_CLIENT_ID,
    CLI_CLIENT_ID,
    SPA_CLIENT_ID,
    TENANT,
    Client,
    EntraProvider,
    TestCA,
    new_rsa_key,
    pem,
    public_pem,
    self_signed,
)
from tests.support import (
    ADMIN_PASSWORD,
    JWT_SECRET,
    ROOT,
    Api,
    LocalHost,
    TestDatabase,
    replace_settings,
    start_host,
)

SERVICE_CLIENT_ID = "5e41ce00-0000-4000-8000-0000000000c1"
CERT_CLIENT_ID = "5e41ce00-0000-4000-8000-0000000000c2"
SERVICE_SECRET = "service-secret-~x7"
KEYS = "/discovery/v2.0/keys"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    directory = tmp_path_factory.mktemp("entra-ca")
    os.chmod(directory, 0o755)
    return TestCA(directory)


@pytest.fixture(scope="module")
def provider(test_ca: TestCA) -> Iterator[EntraProvider]:
    server = EntraProvider(test_ca).start()
    yield server
    server.stop()


def entra_env(provider: EntraProvider, **extra: str) -> dict[str, str]:
    return {
        "DT_ENTRA_TENANT_ID": TENANT,
        "DT_ENTRA_AUDIENCE": API_CLIENT_ID,
        "DT_ENTRA_AUTHORITY_HOST": provider.base_url,
        "DT_ENTRA_CA_BUNDLE": str(provider.ca.ca_path),
        "DT_ENTRA_SPA_CLIENT_ID": SPA_CLIENT_ID,
        **extra,
    }


@pytest.fixture(scope="module")
def entra_host(
    database: TestDatabase, host_root: Path, provider: EntraProvider
) -> Iterator[LocalHost]:
    host = start_host(database.url, host_root / "entra", entra_env(provider))
    yield host
    host.stop()


@pytest.fixture
def admin_api(entra_host: LocalHost, clean_db: TestDatabase) -> Iterator[Api]:
    """The default admin, signed in with a built-in token, on emptied tables."""
    api = Api(entra_host.api, entra_host.admin_email, ADMIN_PASSWORD)
    yield api
    api.close()


@pytest.fixture
def bearer(entra_host: LocalHost) -> Iterator[Callable[..., httpx.Response]]:
    """Call the Entra host with a given token: bearer(token, path, json=None)."""
    http = httpx.Client(base_url=entra_host.api, timeout=60)

    def call(token: str, path: str = "/user/me", json: object = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if json is None:
            return http.get(path, headers=headers)
        return http.post(path, json=json, headers=headers)

    yield call
    http.close()


def refused(reply: httpx.Response, detail: str) -> None:
    assert (reply.status_code, reply.json()) == (401, {"detail": detail}), reply.text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# --- /auth/config -----------------------------------------------------------------------------


def test_auth_config_is_null_unless_configured(anon: Api) -> None:
    reply = anon.get("/auth/config")
    assert (reply.status_code, reply.json()) == (200, {"entra": None})


def test_auth_config_names_client_authority_and_scopes(
    entra_host: LocalHost, provider: EntraProvider
) -> None:
    reply = httpx.get(entra_host.api + "/auth/config")
    assert reply.status_code == 200
    assert reply.json() == {
        "entra": {
            "client_id": SPA_CLIENT_ID,
            "authority": f"{provider.base_url}/{TENANT}",
            "scopes": [f"api://{API_CLIENT_ID}/user_impersonation"],
        }
    }


# --- people -----------------------------------------------------------------------------------


def test_person_is_mapped_by_email_without_case(admin_api: Api, provider, bearer) -> None:
    admin_api.ok("/user/create-user", {"email": "Ada@Example.org", "password": "pw"}, 201)
    reply = bearer(provider.person_token("ada@example.ORG"))
    assert (reply.status_code, reply.json()) == (
        200,
        {"email": "Ada@Example.org", "is_admin": False, "role": "editor"},
    )
    # The token works on every endpoint, like a built-in one (a non-admin lists itself).
    assert bearer(provider.person_token("ada@example.org"), "/user/list-users").json() == [
        "Ada@Example.org"
    ]


def test_the_email_claim_is_tried_before_preferred_username(admin_api: Api, provider, bearer):
    admin_api.ok("/user/create-user", {"email": "Ada@Example.org", "password": "pw"}, 201)
    token = provider.person_token("someone@else.example", claims={"email": "ADA@example.org"})
    assert bearer(token).json()["email"] == "Ada@Example.org"


def test_a_person_is_bound_by_tid_and_oid_then_matched_on_oid_only(
    admin_api: Api, provider: EntraProvider, bearer, clean_db: TestDatabase
) -> None:
    admin_api.ok("/user/create-user", {"email": "ada@example.org", "password": "pw"}, 201)
    ada_oid = provider.person_oid("ada@example.org")
    assert bearer(provider.person_token("ada@example.org")).status_code == 200
    with clean_db.engine.connect() as conn:
        bound = conn.execute(
            sa.text(
                "select entra_tenant_id, entra_object_id from user_account "
                "where email = 'ada@example.org'"
            )
        ).one()
    assert tuple(bound) == (TENANT, ada_oid)
    # Another person (another oid) whose token names the same email is refused now.
    impostor = provider.person_token("ada@example.org", claims={"oid": str(uuid.uuid4())})
    refused(bearer(impostor), "No DTBase user for this Entra identity")
    # Ada renamed in her tenant is still Ada: the oid decides, not the names.
    renamed = provider.person_token(
        "ada.lovelace@example.org", claims={"email": "ada.lovelace@example.org", "oid": ada_oid}
    )
    assert bearer(renamed).json() == {
        "email": "ada@example.org",
        "is_admin": False,
        "role": "editor",
    }
    # Nor does a bound person's new name take over another unbound user.
    admin_api.ok("/user/create-user", {"email": "ada.lovelace@example.org", "password": "pw"}, 201)
    assert bearer(renamed).json()["email"] == "ada@example.org"
    # A token without oid cannot be bound to anyone.
    refused(
        bearer(provider.person_token("ada.lovelace@example.org", claims={"oid": None})),
        "Entra token names no tid and oid",
    )
    # Deleting the user ends the binding; a new user of that email binds afresh.
    admin_api.ok("/user/delete-user", {"email": "ada@example.org"})
    refused(
        bearer(provider.person_token("ada@example.org")), "No DTBase user for this Entra identity"
    )
    admin_api.ok("/user/create-user", {"email": "ada@example.org", "password": "pw"}, 201)
    assert bearer(impostor).json()["email"] == "ada@example.org"
    refused(
        bearer(provider.person_token("ada@example.org")), "No DTBase user for this Entra identity"
    )


def test_unknown_person_is_refused_and_nothing_is_written(admin_api: Api, provider, bearer):
    refused(
        bearer(provider.person_token("nobody@example.org")),
        "No DTBase user for this Entra identity",
    )
    token = provider.person_token("x@y.org", claims={"preferred_username": None})
    refused(bearer(token), "Entra token names no email or preferred_username")
    assert admin_api.get("/user/list-users").json() == ["default_user@localhost"]


def test_admin_comes_from_the_account_or_the_app_role(admin_api: Api, provider, bearer) -> None:
    admin_api.ok("/user/create-user", {"email": "plain@example.org", "password": "pw"}, 201)
    plain = provider.person_token("plain@example.org")
    body = {"email": "new@example.org", "password": "pw"}
    reply = bearer(plain, "/user/create-user", body)
    assert (reply.status_code, reply.json()) == (403, {"detail": "Only an admin can create users"})
    promoted = provider.person_token("plain@example.org", roles=["Reader", "DTBase.Admin"])
    assert bearer(promoted).json() == {
        "email": "plain@example.org",
        "is_admin": True,
        "role": "admin",
    }
    assert bearer(promoted, "/user/create-user", body).status_code == 201
    assert bearer(promoted, "/user/list-users").json() == [
        "default_user@localhost",
        "plain@example.org",
        "new@example.org",
    ]
    # The role is for that request only: the account is not made an admin.
    assert bearer(plain).json()["is_admin"] is False
    other_role = provider.person_token("plain@example.org", roles=["DTBase.Reader"])
    assert bearer(other_role).json()["is_admin"] is False


def test_a_deleted_user_s_entra_token_stops_working(admin_api: Api, provider, bearer) -> None:
    admin_api.ok("/user/create-user", {"email": "leaver@example.org", "password": "pw"}, 201)
    token = provider.person_token("leaver@example.org")
    assert bearer(token).status_code == 200
    admin_api.ok("/user/delete-user", {"email": "leaver@example.org"})
    refused(bearer(token), "No DTBase user for this Entra identity")


def test_entra_tokens_are_not_refresh_tokens(admin_api: Api, provider, bearer) -> None:
    reply = bearer(provider.person_token("default_user@localhost"), "/auth/refresh", {})
    refused(reply, "Token of wrong type")


def test_auto_provisioning_creates_a_non_admin(
    host_factory, clean_db: TestDatabase, provider: EntraProvider
) -> None:
    host = host_factory(env=entra_env(provider, DT_ENTRA_AUTO_PROVISION="1"))
    token = provider.person_token("Newcomer@Example.org", roles=["DTBase.Admin"])
    headers = {"Authorization": f"Bearer {token}"}
    reply = httpx.get(host.api + "/user/me", headers=headers)
    # Stored lower-case; admin for this request by the role, not in the account.
    assert reply.json() == {"email": "newcomer@example.org", "is_admin": True, "role": "admin"}
    assert httpx.get(host.api + "/user/me", headers=headers).status_code == 200
    with clean_db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("select email, role from user_account where email <> :e"),
            {"e": "default_user@localhost"},
        ).all()
    assert rows == [("newcomer@example.org", "editor")]
    # No password signs in as a provisioned person.
    login = httpx.post(
        host.api + "/auth/login",
        json={"email": "newcomer@example.org", "password": "!entra-id-only"},
    )
    assert (login.status_code, login.json()) == (401, {"detail": "Incorrect email or password"})
    # An application is never provisioned.
    reply = httpx.get(
        host.api + "/user/me",
        headers={"Authorization": f"Bearer {provider.app_token(SERVICE_CLIENT_ID)}"},
    )
    refused(reply, "No DTBase service user for this Entra application")


# --- applications and service users -----------------------------------------------------------


def test_service_user_maps_an_application(admin_api: Api, provider, bearer) -> None:
    body = {"email": "ingress@service.local", "client_id": SERVICE_CLIENT_ID.upper()}
    assert admin_api.ok("/user/create-service-user", body, 201) == {"detail": "User created"}
    assert bearer(provider.app_token(SERVICE_CLIENT_ID)).json() == {
        "email": "ingress@service.local",
        "is_admin": False,
        "role": "editor",
    }
    # appid (v1 name of the claim) works too; the admin role makes it an admin.
    v1 = provider.app_token(
        None,
        roles=["DTBase.Admin"],
        claims={"azp": None, "appid": SERVICE_CLIENT_ID},  # type: ignore[arg-type]
    )
    assert bearer(v1).json() == {
        "email": "ingress@service.local",
        "is_admin": True,
        "role": "admin",
    }
    # Listed like any user; never signs in with a password.
    assert admin_api.get("/user/list-users").json() == [
        "default_user@localhost",
        "ingress@service.local",
    ]
    login = admin_api.post("/auth/login", {"email": "ingress@service.local", "password": "x"})
    assert (login.status_code, login.json()) == (401, {"detail": "Incorrect email or password"})
    # A person whose name is the service user's email is not the service user.
    refused(
        bearer(provider.person_token("ingress@service.local")),
        "No DTBase user for this Entra identity",
    )


def test_unregistered_application_is_refused(admin_api: Api, provider, bearer) -> None:
    refused(
        bearer(provider.app_token("00000000-0000-4000-8000-00000000dead")),
        "No DTBase service user for this Entra application",
    )
    # An app token without idtyp is recognised by its lack of delegated scopes.
    token = provider.app_token(SERVICE_CLIENT_ID, claims={"idtyp": None})
    refused(bearer(token), "No DTBase service user for this Entra application")


def test_create_service_user_rules(admin_api: Api, entra_host: LocalHost) -> None:
    path = "/user/create-service-user"
    admin_api.ok(
        path, {"email": "svc@x.org", "client_id": SERVICE_CLIENT_ID, "is_admin": True}, 201
    )
    before = admin_api.get("/user/list-users").json()
    same_email = admin_api.post(path, {"email": "svc@x.org", "client_id": CERT_CLIENT_ID})
    assert (same_email.status_code, same_email.json()) == (409, {"detail": "User already exists"})
    same_client = admin_api.post(path, {"email": "svc2@x.org", "client_id": SERVICE_CLIENT_ID})
    assert same_client.status_code == 409
    assert same_client.json()["detail"] == (
        f"A service user for Entra client id {SERVICE_CLIENT_ID} exists already"
    )
    for bad in ("not-a-guid", "", "'; drop table user_account; --", SERVICE_CLIENT_ID + "0"):
        reply = admin_api.post(path, {"email": "svc3@x.org", "client_id": bad})
        assert reply.status_code == 422, bad
        assert reply.json()["detail"][0]["loc"] == ["body", "client_id"]
    reply = admin_api.post(path, {"email": "not an email", "client_id": CERT_CLIENT_ID})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "email"]
    assert admin_api.post(path, {"email": "svc3@x.org"}).status_code == 422
    # Only admins.
    admin_api.ok("/user/create-user", {"email": "plain@x.org", "password": "pw"}, 201)
    plain = Api(entra_host.api, "plain@x.org", "pw")
    reply = plain.post(path, {"email": "svc3@x.org", "client_id": CERT_CLIENT_ID})
    assert (reply.status_code, reply.json()) == (
        403,
        {"detail": "Only an admin can create service users"},
    )
    plain.close()
    after = admin_api.get("/user/list-users").json()
    assert after == [*before, "plain@x.org"]


# --- what the check refuses -------------------------------------------------------------------


def test_refusals_each_with_its_own_detail(admin_api: Api, provider: EntraProvider, bearer):
    email = "default_user@localhost"
    assert bearer(provider.person_token(email)).status_code == 200  # the good one
    refused(bearer(provider.person_token(email, lifetime=60, issued_ago=3600)), entra.EXPIRED)
    refused(
        bearer(provider.person_token(email, claims={"aud": "api://someone-else"})),
        entra.WRONG_AUDIENCE,
    )
    # The app ID URI form is accepted only when listed in DT_ENTRA_AUDIENCE (it is not here).
    refused(
        bearer(provider.person_token(email, claims={"aud": f"api://{API_CLIENT_ID}"})),
        entra.WRONG_AUDIENCE,
    )
    other_tenant = f"{provider.base_url}/00000000-0000-4000-8000-000000000bad/v2.0"
    refused(bearer(provider.person_token(email, claims={"iss": other_tenant})), entra.WRONG_ISSUER)
    refused(
        bearer(provider.person_token(email, claims={"nbf": int(time.time()) + 600})),
        entra.NOT_YET_VALID,
    )
    refused(
        bearer(provider.person_token(email, claims={"exp": None})),
        "Entra token lacks the 'exp' claim",
    )
    # Signed with a key the tenant never published, under a published key id.
    impostor = new_rsa_key()
    refused(bearer(provider.person_token(email, key=impostor)), entra.BAD_SIGNATURE)
    # A good token with its payload changed.
    head, _, sig = provider.person_token("plain@example.org").split(".")
    body = _b64(json.dumps({**claims_of(provider.person_token(email))}).encode())
    refused(bearer(f"{head}.{body}.{sig}"), entra.BAD_SIGNATURE)
    good_claims = claims_of(provider.person_token(email))
    refused(
        bearer(forged({"alg": "none", "kid": provider.current_kid}, good_claims)),
        entra.WRONG_ALGORITHM,
    )
    refused(bearer(forged({"alg": "RS256"}, good_claims, b"x")), entra.NO_KEY_ID)
    refused(
        bearer(forged({"alg": "RS512", "kid": provider.current_kid}, good_claims, b"x")),
        entra.WRONG_ALGORITHM,
    )
    # Algorithm confusion: HS256 keyed with the tenant's public key is a built-in token to
    # the API, checked with DT_JWT_SECRET_KEY only.
    header = {"alg": "HS256", "typ": "JWT", "kid": provider.current_kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(good_claims).encode())}"
    public = public_pem(provider.keys[provider.current_kid])
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    refused(bearer(f"{signing_input}.{_b64(mac)}"), "Could not validate credentials")
    # Whatever was refused, nothing was written.
    assert admin_api.get("/user/list-users").json() == ["default_user@localhost"]


def test_unknown_key_id_is_refused(admin_api: Api, provider: EntraProvider, bearer) -> None:
    kid = provider.add_key(publish=False)
    refused(bearer(provider.person_token("default_user@localhost", kid=kid)), entra.UNKNOWN_KEY)


def test_built_in_tokens_work_as_before(admin_api: Api, bearer) -> None:
    """With Entra ID configured, built-in tokens keep their behaviour and messages
    (docs/api.md, Authentication)."""
    assert admin_api.get("/user/me").json() == {
        "email": "default_user@localhost",
        "is_admin": True,
        "role": "admin",
    }
    tokens = admin_api.login("default_user@localhost", ADMIN_PASSWORD)
    refused(bearer(tokens["refresh_token"]), "Token of wrong type")
    assert bearer(tokens["refresh_token"], "/auth/refresh", {}).status_code == 200
    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": "default_user@localhost",
            "token_type": "access",
            "exp": now - 10,
            "iat": now - 100,
            "jti": "x",
            "ver": 0,
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    refused(bearer(expired), "Token has expired")
    refused(bearer("not-a-jwt"), "Could not validate credentials")
    reply = admin_api.http.get("/user/me")
    refused(reply, "Not authenticated")


# --- the key cache ----------------------------------------------------------------------------


def test_rotation_refetches_once_and_a_flood_of_unknown_kids_does_not(
    host_factory, clean_db: TestDatabase, test_ca: TestCA
) -> None:
    server = EntraProvider(test_ca).start()  # its own counters
    try:
        host = host_factory(env=entra_env(server))

        def me(token: str) -> httpx.Response:
            return httpx.get(host.api + "/user/me", headers={"Authorization": f"Bearer {token}"})

        assert me(server.person_token("default_user@localhost")).status_code == 200
        assert server.requests[KEYS] == 1
        assert me(server.person_token("default_user@localhost")).status_code == 200
        assert server.requests[KEYS] == 1  # cached
        server.rotate()  # Entra publishes a new key and signs with it
        assert me(server.person_token("default_user@localhost")).status_code == 200
        assert server.requests[KEYS] == 2  # one refetch for the unknown kid
        for _ in range(20):
            made_up = server.add_key(publish=False)
            refused(
                me(server.person_token("default_user@localhost", kid=made_up)), entra.UNKNOWN_KEY
            )
        assert server.requests[KEYS] == 2  # rate-limited: the flood fetched nothing
        assert me(server.person_token("default_user@localhost")).status_code == 200
    finally:
        server.stop()


def test_key_cache_ttl_refetch_interval_and_stale_keys(provider: EntraProvider) -> None:
    settings = EntraSettings(
        tenant_id=TENANT,
        audiences=(API_CLIENT_ID,),
        authority_host=provider.base_url,
        ca_bundle=str(provider.ca.ca_path),
    )
    now = [1000.0]
    keys = entra.ProviderKeys(settings, clock=lambda: now[0], ttl=3600, refetch_interval=60)
    kid = provider.current_kid
    assert keys.signing_key(kid).key_id == kid and keys.fetches == 1
    assert keys.issuer() == provider.issuer
    with pytest.raises(Unauthorized, match=entra.UNKNOWN_KEY):
        keys.signing_key("made-up-1")
    assert keys.fetches == 2
    now[0] += 59
    with pytest.raises(Unauthorized):
        keys.signing_key("made-up-2")
    assert keys.fetches == 2
    now[0] += 1  # a minute after the last refetch, another is allowed
    with pytest.raises(Unauthorized):
        keys.signing_key("made-up-3")
    assert keys.fetches == 3
    now[0] += 3600  # past the TTL: fetched again
    keys.signing_key(kid)
    assert keys.fetches == 4
    # A provider that stops answering: the cached keys keep working past the TTL.
    keys.discovery_url = "https://127.0.0.1:9/nothing-here"
    now[0] += 3600
    assert keys.signing_key(kid).key_id == kid
    verified = entra.verify_access_token(provider.person_token("a@b.org"), settings, keys)
    assert verified.kind == "user" and verified.names == ("a@b.org",)


def test_unreachable_provider_is_503_not_401(host_factory, clean_db, provider) -> None:
    env = entra_env(provider, DT_ENTRA_AUTHORITY_HOST="https://127.0.0.1:9")
    host = host_factory(env=env)
    token = provider.person_token("default_user@localhost")
    reply = httpx.get(host.api + "/user/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 503
    assert reply.json()["detail"].startswith(
        "Entra ID could not be reached at https://127.0.0.1:9/"
    )


def test_identity_of_claims() -> None:
    person = entra.identity_of(
        {
            "scp": "x",
            "azp": "SPA",
            "email": "A@B.org",
            "preferred_username": "a@b.org",
            "upn": "u@b.org",
            "roles": ["R"],
        }
    )
    assert (person.kind, person.names, person.client_id, person.roles) == (
        "user",
        ("a@b.org", "u@b.org"),
        "spa",
        ("R",),
    )
    app = entra.identity_of({"appid": "C1", "idtyp": "app"})
    assert (app.kind, app.client_id, app.names) == ("app", "c1", ())
    with pytest.raises(Unauthorized, match="names no client id"):
        entra.identity_of({"idtyp": "app"})
    with pytest.raises(Unauthorized):
        entra.identity_of({"scp": "x", "roles": "DTBase.Admin"})


def _entra_settings() -> EntraSettings:
    reset_settings()
    try:
        return get_settings().entra
    finally:
        reset_settings()


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DT_ENTRA_"):
            monkeypatch.delenv(name)
    assert not _entra_settings().enabled
    monkeypatch.setenv("DT_ENTRA_TENANT_ID", TENANT)
    with pytest.raises(ConfigError, match="DT_ENTRA_AUDIENCE must be set too"):
        _entra_settings()
    monkeypatch.setenv("DT_ENTRA_AUDIENCE", f"{API_CLIENT_ID}, api://dtbase-api")
    settings = _entra_settings()
    assert settings.enabled and settings.audiences == (API_CLIENT_ID, "api://dtbase-api")
    assert settings.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.app_scope == "api://dtbase-api/.default"
    assert settings.user_scopes == ("api://dtbase-api/user_impersonation",)
    monkeypatch.setenv("DT_ENTRA_SCOPES", "api://x/read api://x/write")
    assert _entra_settings().user_scopes == ("api://x/read", "api://x/write")
    monkeypatch.setenv("DT_ENTRA_TENANT_ID", "common")
    with pytest.raises(ConfigError, match="one tenant"):
        _entra_settings()
    monkeypatch.setenv("DT_ENTRA_TENANT_ID", TENANT)
    monkeypatch.setenv("DT_ENTRA_AUTHORITY_HOST", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="https"):
        _entra_settings()


# --- the MSAL-based client --------------------------------------------------------------------


def client_settings(provider: EntraProvider, **kw: object) -> EntraSettings:
    return EntraSettings(
        tenant_id=TENANT,
        audiences=(API_CLIENT_ID,),
        authority_host=provider.base_url,
        ca_bundle=str(provider.ca.ca_path),
        **kw,  # type: ignore[arg-type]
    )


def test_client_credentials_with_a_secret(
    admin_api: Api, provider: EntraProvider, entra_host: LocalHost, tmp_path: Path
) -> None:
    provider.clients[SERVICE_CLIENT_ID] = Client(SERVICE_CLIENT_ID, secret=SERVICE_SECRET)
    admin_api.ok(
        "/user/create-service-user",
        {"email": "ingress@service.local", "client_id": SERVICE_CLIENT_ID},
        201,
    )
    cache_path = tmp_path / "cache" / "msal.json"
    settings = client_settings(
        provider,
        client_id=SERVICE_CLIENT_ID,
        client_secret=SERVICE_SECRET,
        token_cache_path=str(cache_path),
    )
    before = len(provider.token_requests)
    source = token_source(settings, "client_credentials")
    with DTBaseClient(entra_host.api, token_source=source) as client:
        assert client.get("/user/me") == {
            "email": "ingress@service.local",
            "is_admin": False,
            "role": "editor",
        }
        client.ensure_model("entra-model")
        assert client.ensure_model("entra-model") is False
    assert source.acquisitions == 1  # one token, reused from MSAL's cache
    grant = provider.token_requests[before]
    assert grant["grant_type"] == ["client_credentials"]
    assert grant["scope"] == [f"api://{API_CLIENT_ID}/.default"]
    assert stat.S_IMODE(cache_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_path.parent.stat().st_mode) == 0o700
    # The next run of the script finds the token in the cache file.
    again = token_source(settings, "client_credentials")
    assert claims_of(again.get())["azp"] == SERVICE_CLIENT_ID
    assert again.acquisitions == 0 and len(provider.token_requests) == before + 1
    # invalidate() (the API refused the token) makes MSAL ask Entra ID again.
    again.invalidate()
    again.get()
    assert again.acquisitions == 1


def test_client_credentials_with_a_certificate(
    admin_api: Api, provider: EntraProvider, entra_host: LocalHost, tmp_path: Path
) -> None:
    key = new_rsa_key()
    certificate = self_signed(key, "dtbase-service", ca=False)
    pem_path = tmp_path / "service.pem"
    pem_path.write_bytes(pem(key) + certificate.public_bytes(serialization.Encoding.PEM))
    provider.clients[CERT_CLIENT_ID] = Client(CERT_CLIENT_ID, certificate=certificate)
    admin_api.ok(
        "/user/create-service-user",
        {"email": "forecaster@service.local", "client_id": CERT_CLIENT_ID, "is_admin": True},
        201,
    )
    settings = client_settings(
        provider,
        client_id=CERT_CLIENT_ID,
        client_certificate=str(pem_path),
        token_cache_path=str(tmp_path / "c.json"),
    )
    with DTBaseClient(entra_host.api, token_source=token_source(settings)) as client:
        assert client.get("/user/me") == {
            "email": "forecaster@service.local",
            "is_admin": True,
            "role": "admin",
        }
    assert "client_assertion" in provider.token_requests[-1]
    # A wrong secret is a clear error, not a crash.
    wrong = client_settings(
        provider,
        client_id=SERVICE_CLIENT_ID,
        client_secret="wrong",
        token_cache_path=str(tmp_path / "w.json"),
    )
    provider.clients.setdefault(SERVICE_CLIENT_ID, Client(SERVICE_CLIENT_ID, secret=SERVICE_SECRET))
    with (
        DTBaseClient(entra_host.api, token_source=token_source(wrong)) as client,
        pytest.raises(Unauthorized, match="invalid_client"),
    ):
        client.get("/user/me")


def test_device_code_signs_in_once_then_uses_the_cache(
    admin_api: Api, provider: EntraProvider, entra_host: LocalHost, tmp_path: Path
) -> None:
    admin_api.ok("/user/create-user", {"email": "scientist@example.org", "password": "pw"}, 201)
    provider.signed_in = {"email": "scientist@example.org", "roles": []}
    cache_path = tmp_path / "msal.json"
    settings = client_settings(provider, client_id=CLI_CLIENT_ID, token_cache_path=str(cache_path))
    shown: list[str] = []
    device_codes = provider.requests[f"/{TENANT}/oauth2/v2.0/devicecode"]
    source = token_source(settings, "device_code", prompt=shown.append)
    with DTBaseClient(entra_host.api, token_source=source) as client:
        assert client.get("/user/me") == {
            "email": "scientist@example.org",
            "is_admin": False,
            "role": "editor",
        }
    assert len(shown) == 1 and "enter" in shown[0]
    assert provider.requests[f"/{TENANT}/oauth2/v2.0/devicecode"] == device_codes + 1
    # Next run: the cached account renews silently (refresh token), no new sign-in.
    later = token_source(settings, "device_code", prompt=shown.append)
    later.invalidate()  # force past the cached access token to the refresh token
    with DTBaseClient(entra_host.api, token_source=later) as client:
        assert client.get("/user/me")["email"] == "scientist@example.org"
    assert len(shown) == 1
    assert provider.requests[f"/{TENANT}/oauth2/v2.0/devicecode"] == device_codes + 1
    assert provider.token_requests[-1]["grant_type"] == ["refresh_token"]
    assert stat.S_IMODE(cache_path.stat().st_mode) == 0o600
    assert list(
        PersistentTokenCache(cache_path).search(PersistentTokenCache.CredentialType.REFRESH_TOKEN)
    )


def test_client_error_carries_the_entra_detail(provider: EntraProvider, entra_host) -> None:
    with (
        DTBaseClient(
            entra_host.api, token_source=_Static(provider.person_token("nobody@example.org"))
        ) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.get("/user/me")
    assert (caught.value.status, caught.value.detail) == (
        401,
        "No DTBase user for this Entra identity",
    )


class _Static:
    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        return self.token

    def invalidate(self) -> None:
        pass


def test_client_renews_an_expired_entra_token_once(
    admin_api: Api, provider: EntraProvider, entra_host: LocalHost
) -> None:
    expired = provider.person_token("default_user@localhost", lifetime=60, issued_ago=3600)
    fresh = provider.person_token("default_user@localhost")

    class Renewing:
        def __init__(self) -> None:
            self.token, self.invalidated = expired, 0

        def get(self) -> str:
            return self.token

        def invalidate(self) -> None:
            self.invalidated += 1
            self.token = fresh

    source = Renewing()
    with DTBaseClient(entra_host.api, token_source=source) as client:
        assert client.get("/user/me")["email"] == "default_user@localhost"
    assert source.invalidated == 1


def test_from_settings_uses_client_credentials_without_a_password(
    admin_api: Api, provider: EntraProvider, entra_host: LocalHost, tmp_path: Path
) -> None:
    provider.clients[SERVICE_CLIENT_ID] = Client(SERVICE_CLIENT_ID, secret=SERVICE_SECRET)
    admin_api.ok(
        "/user/create-service-user",
        {"email": "weather@service.local", "client_id": SERVICE_CLIENT_ID},
        201,
    )
    settings = replace_settings(
        get_settings(),
        services={
            "backend_url": entra_host.api,
            "service_user_email": None,
            "service_user_password": None,
        },
        entra=client_settings(
            provider,
            client_id=SERVICE_CLIENT_ID,
            client_secret=SERVICE_SECRET,
            token_cache_path=str(tmp_path / "cache.json"),
        ),
    )
    with DTBaseClient.from_settings(settings) as client:
        assert client.get("/user/me")["email"] == "weather@service.local"


def test_interactive_sign_in_opens_the_browser(
    admin_api: Api,
    provider: EntraProvider,
    entra_host: LocalHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MSAL opens the person's browser on the sign-in page and listens on localhost for the
    answer. The "browser" here is tests/entra_browser.py, registered as the preferred one."""
    admin_api.ok("/user/create-user", {"email": "desk@example.org", "password": "pw"}, 201)
    provider.signed_in = {"email": "desk@example.org", "roles": ["DTBase.Admin"]}
    monkeypatch.setattr(webbrowser, "_tryorder", [])
    monkeypatch.setattr(webbrowser, "_browsers", {})
    browser = [sys.executable, str(ROOT / "tests" / "entra_browser.py"), str(provider.ca.ca_path)]
    webbrowser.register(
        "dtbase-test-browser", None, webbrowser.BackgroundBrowser([*browser, "%s"]), preferred=True
    )
    settings = client_settings(
        provider, client_id=CLI_CLIENT_ID, token_cache_path=str(tmp_path / "cache.json")
    )
    source = token_source(settings, "interactive", username="desk@example.org")
    with DTBaseClient(entra_host.api, token_source=source) as client:
        assert client.get("/user/me") == {
            "email": "desk@example.org",
            "is_admin": True,
            "role": "admin",
        }
    grant = provider.token_requests[-1]
    assert grant["grant_type"] == ["authorization_code"] and grant["code_verifier"]
    # The next run renews from the cache without opening the browser.
    monkeypatch.setattr(webbrowser, "_tryorder", [])
    later = token_source(settings, "interactive")
    later.invalidate()
    assert claims_of(later.get())["preferred_username"] == "desk@example.org"
    assert provider.token_requests[-1]["grant_type"] == ["refresh_token"]
