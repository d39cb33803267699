"""A small OpenID provider on 127.0.0.1 that answers like Microsoft Entra ID, for the tests.

It serves HTTPS with a certificate from a throw-away test CA (MSAL insists on https; the CA
file is handed to the API and the client as DT_ENTRA_CA_BUNDLE), and publishes:

- `/{tenant}/v2.0/.well-known/openid-configuration`
- `/discovery/v2.0/keys` (the JWKS; keys can be rotated while it runs)
- `/{tenant}/oauth2/v2.0/token`: client credentials (secret or certificate assertion),
  device code, refresh token and authorization code (with PKCE) grants
- `/{tenant}/oauth2/v2.0/devicecode` and `/{tenant}/oauth2/v2.0/authorize` (approves at once,
  as the person set in `signed_in`)

It also mints tokens directly (`person_token`, `app_token`, `token`) so the tests can craft
expired, mis-addressed or badly signed ones. Every request is counted by path.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TENANT = "72f988bf-0000-4000-8000-00000000d7ba"
API_CLIENT_ID = "a1b2c3d4-0000-4000-8000-000000000a91"  # the API's app registration
SPA_CLIENT_ID = "a1b2c3d4-0000-4000-8000-0000000005a0"  # the web app's registration
CLI_CLIENT_ID = "a1b2c3d4-0000-4000-8000-000000000c11"  # a public client for people's scripts


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed(key: rsa.RSAPrivateKey, name: str, *, ca: bool) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass
class TestCA:
    """A certificate authority made for one test session, and a server certificate for
    127.0.0.1 signed by it."""

    __test__ = False

    directory: Path
    ca_path: Path = field(init=False)
    cert_path: Path = field(init=False)
    key_path: Path = field(init=False)

    def __post_init__(self) -> None:
        ca_key = new_rsa_key()
        ca_cert = self_signed(ca_key, "DTBase test CA", ca=True)
        server_key = new_rsa_key()
        now = datetime.now(UTC)
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / "test-ca.pem"
        self.cert_path = self.directory / "server.pem"
        self.key_path = self.directory / "server-key.pem"
        self.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(pem(server_key))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def encode(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "use": "sig", "kid": kid, "n": encode(numbers.n), "e": encode(numbers.e)}


@dataclass
class Client:
    """An app registration the provider knows: a secret or a certificate, and app roles."""

    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    roles: tuple[str, ...] = ()


class EntraProvider:
    """The provider. Start with `start()`, stop with `stop()`; `base_url` is its authority host."""

    def __init__(self, ca: TestCA, tenant: str = TENANT, issuer_host: str | None = None) -> None:
        self.ca = ca
        self.tenant = tenant
        self._issuer_host = issuer_host
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.current_kid = self.add_key()
        self.clients: dict[str, Client] = {}
        self.signed_in: dict[str, Any] = {"email": "person@example.org", "roles": []}
        self.requests: Counter[str] = Counter()
        self.token_requests: list[dict[str, list[str]]] = []
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- keys and tokens -----------------------------------------------------------------

    def add_key(self, publish: bool = True) -> str:
        kid = "key-" + secrets.token_hex(4)
        self.keys[kid] = new_rsa_key()
        if publish:
            self.published.append(kid)
        return kid

    def rotate(self) -> str:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        self.current_kid = self.add_key()
        return self.current_kid

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the provider first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return f"{self._issuer_host or self.base_url}/{self.tenant}/v2.0"

    def token(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        lifetime: int = 3600,
        issued_ago: int = 0,
    ) -> str:
        """A signed access token: standard claims for this tenant and the API, then `claims`
        on top (a claim set to None is left out)."""
        now = int(time.time()) - issued_ago
        body: dict[str, Any] = {
            "aud": API_CLIENT_ID,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.tenant,
            "ver": "2.0",
            "oid": str(uuid.uuid4()),
            "sub": secrets.token_urlsafe(16),
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        kid = kid or self.current_kid
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def person_oid(self, email: str) -> str:
        """The object id of the person named `email` in this tenant: the same every time."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.tenant}/{email.lower()}"))

    def person_token(self, email: str, *, roles: list[str] | None = None, **kw: Any) -> str:
        claims: dict[str, Any] = {
            "oid": self.person_oid(email),
            "azp": SPA_CLIENT_ID,
            "scp": "user_impersonation",
            "preferred_username": email,
            "name": email.split("@")[0],
            **({"roles": roles} if roles else {}),
        }
        claims.update(kw.pop("claims", {}))
        return self.token(claims, **kw)

    def app_token(self, client_id: str, *, roles: list[str] | None = None, **kw: Any) -> str:
        claims: dict[str, Any] = {"azp": client_id, "idtyp": "app", "azpacr": "1"}
        if roles:
            claims["roles"] = roles
        claims.update(kw.pop("claims", {}))
        return self.token(claims, **kw)

    # --- the server ----------------------------------------------------------------------

    def start(self) -> EntraProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                provider._handle(self, "GET")

            def do_POST(self) -> None:
                provider._handle(self, "POST")

            def do_OPTIONS(self) -> None:  # CORS preflight from the browser test
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "GET, POST")
                self.send_header("Access-Control-Allow-Headers", "*")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca.cert_path, self.ca.key_path)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def openid_configuration(self, public_base: str | None = None) -> dict[str, Any]:
        """The discovery document; `public_base` is the host a browser reached it by (a
        test that routes login.microsoftonline.com here sends X-Forwarded-Host)."""
        root = public_base or self.base_url
        base = f"{root}/{self.tenant}"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        path = url.path
        with self._lock:
            self.requests[path] += 1
        tenant_prefix = f"/{self.tenant}"
        try:
            if method == "GET" and path == f"{tenant_prefix}/v2.0/.well-known/openid-configuration":
                forwarded = request.headers.get("X-Forwarded-Host")
                public = f"https://{forwarded}" if forwarded else None
                return self._json(request, 200, self.openid_configuration(public))
            if method == "GET" and path == "/discovery/v2.0/keys":
                keys = [jwk(kid, self.keys[kid]) for kid in self.published]
                return self._json(request, 200, {"keys": keys})
            if method == "GET" and path == f"{tenant_prefix}/oauth2/v2.0/authorize":
                return self._authorize(request, parse_qs(url.query))
            if method == "POST":
                length = int(request.headers.get("Content-Length") or 0)
                form = parse_qs(request.rfile.read(length).decode())
                if path == f"{tenant_prefix}/oauth2/v2.0/token":
                    with self._lock:
                        self.token_requests.append(form)
                    return self._token(request, form)
                if path == f"{tenant_prefix}/oauth2/v2.0/devicecode":
                    return self._device_code(request, form)
            return self._json(request, 404, {"error": "not_found", "error_description": path})
        except _OAuthError as exc:
            return self._json(
                request, 400, {"error": exc.error, "error_description": exc.description}
            )

    @staticmethod
    def _json(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        # The browser test fetches the token endpoint from the web app's origin.
        request.send_header("Access-Control-Allow-Origin", "*")
        request.end_headers()
        request.wfile.write(data)

    # --- grants --------------------------------------------------------------------------

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        one = {key: values[0] for key, values in form.items()}
        grant = one.get("grant_type")
        if grant == "client_credentials":
            client = self._authenticate_client(one)
            scope = one.get("scope", "")
            if scope != f"api://{API_CLIENT_ID}/.default":
                raise _OAuthError("invalid_scope", f"AADSTS70011: scope {scope!r} is not valid")
            token = self.app_token(client.client_id, roles=list(client.roles))
            return self._json(
                request,
                200,
                {"token_type": "Bearer", "expires_in": 3599, "access_token": token},
            )
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            person = self._codes.pop(one.get("device_code", ""), None)
            if person is None:
                raise _OAuthError("expired_token", "AADSTS70020: the device code is unknown")
            return self._json(request, 200, self._person_reply(one, person))
        if grant == "refresh_token":
            person = self._refresh.pop(one.get("refresh_token", ""), None)
            if person is None:
                raise _OAuthError("invalid_grant", "AADSTS700082: the refresh token is unknown")
            return self._json(request, 200, self._person_reply(one, person))
        if grant == "authorization_code":
            pending = self._codes.pop(one.get("code", ""), None)
            if pending is None:
                raise _OAuthError("invalid_grant", "AADSTS70008: the code is unknown")
            challenge = pending.get("code_challenge")
            verifier = one.get("code_verifier", "")
            if challenge and _b64(hashlib.sha256(verifier.encode()).digest()) != challenge:
                raise _OAuthError("invalid_grant", "AADSTS501481: the code verifier is wrong")
            return self._json(request, 200, self._person_reply(one, pending))
        raise _OAuthError("unsupported_grant_type", f"grant {grant!r}")

    def _authenticate_client(self, form: dict[str, str]) -> Client:
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            raise _OAuthError("unauthorized_client", "AADSTS700016: application not found")
        assertion = form.get("client_assertion")
        if assertion and client.certificate is not None:
            try:
                jwt.decode(
                    assertion,
                    client.certificate.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    audience=self.openid_configuration()["token_endpoint"],
                    issuer=client.client_id,
                    options={"require": ["exp", "aud", "iss", "sub"]},
                )
            except jwt.PyJWTError as exc:
                raise _OAuthError("invalid_client", f"AADSTS700027: {exc}") from exc
            return client
        if client.secret is not None and secrets.compare_digest(
            form.get("client_secret", ""), client.secret
        ):
            return client
        raise _OAuthError("invalid_client", "AADSTS7000215: invalid client secret")

    def _person_reply(self, form: dict[str, str], person: dict[str, Any]) -> dict[str, Any]:
        email = person["email"]
        oid = person.setdefault("oid", self.person_oid(email))
        refresh = secrets.token_urlsafe(24)
        self._refresh[refresh] = person
        scope = form.get("scope", f"api://{API_CLIENT_ID}/user_impersonation")
        api_scopes = [s for s in scope.split() if s.startswith("api://")]
        now = int(time.time())
        id_token = jwt.encode(
            {
                "aud": form.get("client_id"),
                "iss": self.issuer,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "tid": self.tenant,
                "oid": oid,
                "sub": oid,
                "preferred_username": email,
                "name": email.split("@")[0],
                "ver": "2.0",
                **({"nonce": person["nonce"]} if person.get("nonce") else {}),
            },
            self.keys[self.current_kid],
            algorithm="RS256",
            headers={"kid": self.current_kid},
        )
        access = self.person_token(email, roles=person.get("roles") or None, claims={"oid": oid})
        client_info = _b64(json.dumps({"uid": oid, "utid": self.tenant}).encode())
        return {
            "token_type": "Bearer",
            "scope": " ".join(api_scopes) or scope,
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": client_info,
        }

    def _device_code(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        device_code = secrets.token_urlsafe(24)
        self._codes[device_code] = dict(self.signed_in)
        user_code = secrets.token_hex(4).upper()
        return self._json(
            request,
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": f"{self.base_url}/devicelogin",
                "expires_in": 900,
                "interval": 1,
                "message": f"To sign in, open {self.base_url}/devicelogin and enter {user_code}.",
            },
        )

    def _authorize(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        one = {key: values[0] for key, values in query.items()}
        redirect = one.get("redirect_uri", "")
        code = secrets.token_urlsafe(24)
        self._codes[code] = {
            **self.signed_in,
            "code_challenge": one.get("code_challenge"),
            "nonce": one.get("nonce"),
        }
        params = {"code": code, "state": one.get("state", ""), "client_info": ""}
        params["client_info"] = _b64(
            json.dumps({"uid": "u-" + code[:8], "utid": self.tenant}).encode()
        )
        if one.get("response_mode") == "form_post":  # MSAL Python's choice
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in params.items()
            )
            page = (
                f'<html><body onload="document.forms[0].submit()"><form method="post" '
                f'action="{html.escape(redirect)}">{inputs}</form></body></html>'
            ).encode()
            request.send_response(200)
            request.send_header("Content-Type", "text/html; charset=utf-8")
            request.send_header("Content-Length", str(len(page)))
            request.end_headers()
            request.wfile.write(page)
            return
        if one.get("response_mode") == "fragment":
            location = f"{redirect}#{urlencode(params)}"
        else:
            location = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(params)}"
        request.send_response(302)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
