"""Checking Microsoft Entra ID access tokens: the API side of sign-in with Entra ID.

A token is accepted when it is an RS256 JWT signed by one of the tenant's published keys,
issued by the tenant's issuer, for one of the configured audiences, and inside its validity
window (a minute of leeway for clock skew). The keys come from the tenant's OpenID
configuration (`{authority_host}/{tenant}/v2.0/.well-known/openid-configuration` ->
`jwks_uri`), are cached for an hour, and are fetched again when a token names a key id the
cache lacks (Entra rotates keys without notice), at most once a minute however many tokens
with unknown key ids arrive.

Nothing here knows HTTP frameworks or the database: `verify_access_token` returns the
caller's identity and `users.authenticate_token` maps it to a user. Every refusal is an
`Unauthorized` with a specific detail; a provider that cannot be reached is a 503.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt

from dtbase_core.config import EntraSettings
from dtbase_core.errors import DomainError, Unauthorized

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60
KEYS_TTL_SECONDS = 3600.0
# An unknown key id triggers a refetch at most this often, so a flood of tokens with made-up
# key ids cannot turn the API into a client hammering the provider.
REFETCH_INTERVAL_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 10.0

EXPIRED = "Entra token has expired"
NOT_YET_VALID = "Entra token is not valid yet"
WRONG_AUDIENCE = "Entra token audience is not accepted"
WRONG_ISSUER = "Entra token issuer is not accepted"
UNKNOWN_KEY = "Entra signing key not recognised"
BAD_SIGNATURE = "Entra token signature is not valid"
WRONG_ALGORITHM = "Entra token must be signed with RS256"
NO_KEY_ID = "Entra token names no signing key (kid)"
MALFORMED = "Entra token could not be validated"


class ProviderUnavailable(DomainError):
    """The tenant's OpenID configuration or keys could not be read: not the caller's fault."""

    status_code = 503


@dataclass(frozen=True)
class EntraIdentity:
    """Who a valid token speaks for: a person (`kind="user"`, with the names it carries) or an
    application calling as itself (`kind="app"`, with its client id)."""

    kind: Literal["user", "app"]
    names: tuple[str, ...]  # person: email, preferred_username, upn (in that order), lower-case
    client_id: str | None  # the calling application (azp, or appid in v1 tokens), lower-case
    roles: tuple[str, ...]
    object_id: str | None  # oid: the person's (or app's) id in its tenant, never reassigned
    tenant_id: str | None = None  # tid


class ProviderKeys:
    """The tenant's issuer and signing keys, fetched from its OpenID configuration.

    Thread-safe: one fetch at a time, and requests that need the keys wait for it rather than
    fetching again. `clock` is monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        settings: EntraSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = KEYS_TTL_SECONDS,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
    ) -> None:
        self.discovery_url = f"{settings.authority}/v2.0/.well-known/openid-configuration"
        self.http = http or httpx.Client(
            timeout=HTTP_TIMEOUT_SECONDS,
            verify=ssl.create_default_context(cafile=settings.ca_bundle)
            if settings.ca_bundle
            else True,
        )
        self.clock = clock
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._refetched_at: float | None = None
        self.fetches = 0

    def issuer(self) -> str:
        with self._lock:
            self._ensure_fresh()
            assert self._issuer is not None
            return self._issuer

    def signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            self._ensure_fresh()
            key = self._keys.get(kid)
            if key is None and self._may_refetch():
                log.info("Entra key id %r unknown: fetching the signing keys again", kid)
                self._refetched_at = self.clock()
                self._load()
                key = self._keys.get(kid)
            if key is None:
                raise Unauthorized(UNKNOWN_KEY)
            return key

    def _may_refetch(self) -> bool:
        return (
            self._refetched_at is None or self.clock() - self._refetched_at >= self.refetch_interval
        )

    def _ensure_fresh(self) -> None:
        if self._loaded_at is None:
            self._load()
        elif self.clock() - self._loaded_at >= self.ttl:
            try:
                self._load()
            except ProviderUnavailable as exc:
                # Keep the keys we have: a provider blip must not sign everybody out.
                log.warning("keeping cached Entra signing keys: %s", exc.detail)

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            reply = self.http.get(url)
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"Entra ID could not be reached at {url}: {exc}") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"Entra ID answered {url} with something other than JSON")
        return body

    def _load(self) -> None:
        self.fetches += 1
        config = self._get_json(self.discovery_url)
        issuer, jwks_uri = config.get("issuer"), config.get("jwks_uri")
        if not isinstance(issuer, str) or "{" in issuer or not isinstance(jwks_uri, str):
            raise ProviderUnavailable(
                f"{self.discovery_url} names no tenant issuer and jwks_uri: is "
                "DT_ENTRA_TENANT_ID one tenant?"
            )
        if not jwks_uri.startswith("https://"):
            raise ProviderUnavailable(f"refusing a jwks_uri that is not https: {jwks_uri}")
        keys: dict[str, jwt.PyJWK] = {}
        for item in self._get_json(jwks_uri).get("keys") or []:
            if not isinstance(item, dict) or item.get("kty") != "RSA" or not item.get("kid"):
                continue
            if item.get("use", "sig") != "sig" or item.get("alg", ALGORITHM) != ALGORITHM:
                continue
            try:
                keys[str(item["kid"])] = jwt.PyJWK(item, algorithm=ALGORITHM)
            except jwt.PyJWTError as exc:
                log.warning("skipping an unusable Entra signing key %r: %s", item["kid"], exc)
        self._issuer, self._keys, self._loaded_at = issuer, keys, self.clock()


_providers: dict[tuple[str, str | None], ProviderKeys] = {}
_providers_lock = threading.Lock()


def provider_for(settings: EntraSettings) -> ProviderKeys:
    """The process-wide key cache of the configured tenant."""
    key = (settings.authority, settings.ca_bundle)
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = ProviderKeys(settings)
        return provider


def verify_access_token(
    token: str, settings: EntraSettings, provider: ProviderKeys | None = None
) -> EntraIdentity:
    """Check an Entra ID access token completely and say whom it speaks for."""
    provider = provider or provider_for(settings)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized(MALFORMED) from exc
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(WRONG_ALGORITHM)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized(NO_KEY_ID)
    key = provider.signing_key(kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=list(settings.audiences),
            issuer=provider.issuer(),
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"], "strict_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized(EXPIRED) from exc
    except jwt.ImmatureSignatureError as exc:
        raise Unauthorized(NOT_YET_VALID) from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized(WRONG_AUDIENCE) from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized(WRONG_ISSUER) from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthorized(BAD_SIGNATURE) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"Entra token lacks the '{exc.claim}' claim") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(MALFORMED) from exc
    return identity_of(claims)


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def identity_of(claims: dict[str, Any]) -> EntraIdentity:
    """A person's token carries delegated scopes (`scp`); an application's carries none, and
    says `idtyp: app` when that optional claim is configured."""
    roles = claims.get("roles") or []
    if not isinstance(roles, list):
        raise Unauthorized(MALFORMED)
    client_id = _text(claims, "azp") or _text(claims, "appid")
    is_app = claims.get("idtyp") == "app" or "scp" not in claims
    names: tuple[str, ...] = ()
    if not is_app:
        names = tuple(
            dict.fromkeys(
                found.lower()
                for found in (_text(claims, n) for n in ("email", "preferred_username", "upn"))
                if found
            )
        )
    elif client_id is None:
        raise Unauthorized("Entra application token names no client id (azp or appid)")
    return EntraIdentity(
        kind="app" if is_app else "user",
        names=names,
        client_id=client_id.lower() if client_id else None,
        roles=tuple(role for role in roles if isinstance(role, str)),
        object_id=_text(claims, "oid"),
        tenant_id=_text(claims, "tid"),
    )
