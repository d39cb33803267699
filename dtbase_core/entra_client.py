"""Tokens from Microsoft Entra ID for the API client, got with MSAL instead of a password.

Three token sources, each a `client.TokenSource`:

- `ClientCredentialsTokenSource`: a service or a scheduled job, as its app registration
  (DT_ENTRA_CLIENT_ID with DT_ENTRA_CLIENT_SECRET, or DT_ENTRA_CLIENT_CERTIFICATE: a PEM file
  holding the private key and its certificate, or a .pfx). Asks for `<API app id URI>/.default`;
  the API maps the application to the service user an admin registered with its client id.
- `DeviceCodeTokenSource`: a person at a terminal (also over SSH): prints "go to ... and
  enter code ...", then waits.
- `InteractiveTokenSource`: a person at a desktop: opens the browser on the sign-in page.

MSAL keeps the tokens in a `SerializableTokenCache` saved to a file readable only by you
(`~/.cache/dtbase/msal_token_cache.json`, or DT_ENTRA_TOKEN_CACHE), so a script signs in once
and then renews silently with the refresh token on later runs.

    from dtbase_core.entra_client import entra_client
    client = entra_client(flow="device_code")   # settings from the DT_ENTRA_* variables
    client.list_sensors()
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import msal
import requests
import requests.adapters
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dtbase_core.client import DTBaseClient
from dtbase_core.config import EntraSettings, Settings, get_settings
from dtbase_core.errors import Unauthorized

log = logging.getLogger(__name__)

Flow = Literal["client_credentials", "device_code", "interactive"]


class EntraSignInError(Unauthorized):
    """MSAL could not get a token: its error and description, as a 401 would carry them."""


def default_cache_path() -> Path:
    """Where the token cache lives: the user's cache directory (XDG on Linux)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dtbase" / "msal_token_cache.json"


class PersistentTokenCache(msal.SerializableTokenCache):
    """MSAL's token cache, loaded from and saved to one file (mode 600, directory 700).

    Saved only when MSAL changed it, atomically (a temporary file renamed over the old one),
    so a crash never leaves half a cache. The file holds refresh tokens: it is a secret."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path else default_cache_path()
        self._file_lock = threading.Lock()
        if self.path.exists():
            try:
                self.deserialize(self.path.read_text())
            except ValueError:
                log.warning("ignoring an unreadable MSAL token cache at %s", self.path)

    def save(self) -> None:
        with self._file_lock:
            if not getattr(self, "has_state_changed", True):
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".msal-", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.serialize())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self.has_state_changed = False


def _token_from(result: dict[str, Any] | None, what: str) -> str:
    if result and "access_token" in result:
        return str(result["access_token"])
    error = (result or {}).get("error", "no_token")
    description = (result or {}).get("error_description", "").splitlines()
    reason = f"{error}: {description[0]}" if description else str(error)
    raise EntraSignInError(f"Entra ID sign-in ({what}) failed: {reason}")


class _MsalTokenSource(abc.ABC):
    """What the three sources share: a lock, the cache file, and `invalidate`."""

    what = "MSAL"

    def __init__(self, app: msal.ClientApplication, scopes: Sequence[str]) -> None:
        self.app = app
        self.scopes = list(scopes)
        self._lock = threading.Lock()
        self._force = False
        self.acquisitions = 0  # tokens MSAL had to ask Entra ID for (not from its cache)

    def get(self) -> str:
        with self._lock:
            force, self._force = self._force, False
            result = self._acquire(force)
            cache = self.app.token_cache
            if isinstance(cache, PersistentTokenCache):
                cache.save()
            if result and result.get("token_source") == "identity_provider":
                self.acquisitions += 1
            return _token_from(result, self.what)

    def invalidate(self) -> None:
        """The API refused the token: the next `get` asks Entra ID for a new one."""
        with self._lock:
            self._force = True

    @abc.abstractmethod
    def _acquire(self, force: bool) -> dict[str, Any] | None:
        """MSAL's result for a token, from its cache unless `force`."""


class ClientCredentialsTokenSource(_MsalTokenSource):
    """An application's own token (OAuth client credentials grant)."""

    what = "client credentials"

    def __init__(self, app: msal.ConfidentialClientApplication, scope: str) -> None:
        super().__init__(app, [scope])

    def _acquire(self, force: bool) -> dict[str, Any] | None:
        if force:  # acquire_token_for_client has no force_refresh: drop the cached token
            cache = self.app.token_cache
            for item in list(
                cache.search(
                    msal.TokenCache.CredentialType.ACCESS_TOKEN,
                    query={"client_id": self.app.client_id},
                )
            ):
                cache.remove_at(item)
        assert isinstance(self.app, msal.ConfidentialClientApplication)
        return self.app.acquire_token_for_client(scopes=self.scopes)


class _PersonTokenSource(_MsalTokenSource):
    """Silent first (the cached account's refresh token), then the sign-in flow."""

    username: str | None = None

    def _acquire(self, force: bool) -> dict[str, Any] | None:
        accounts = self.app.get_accounts(username=self.username)
        if accounts:
            result = self.app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force
            )
            if result and "access_token" in result:
                return result
        return self._sign_in()

    @abc.abstractmethod
    def _sign_in(self) -> dict[str, Any] | None:
        """A person's interactive sign-in, when the cache has nothing usable."""


class DeviceCodeTokenSource(_PersonTokenSource):
    """Sign in on another device: `prompt` shows Entra's "go to ... and enter ..." message
    (printed to stderr by default)."""

    what = "device code"

    def __init__(
        self,
        app: msal.PublicClientApplication,
        scopes: Sequence[str],
        *,
        prompt: Callable[[str], None] | None = None,
        username: str | None = None,
    ) -> None:
        super().__init__(app, scopes)
        self.prompt = prompt or (lambda message: print(message, file=sys.stderr, flush=True))
        self.username = username

    def _sign_in(self) -> dict[str, Any] | None:
        assert isinstance(self.app, msal.PublicClientApplication)
        flow = self.app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            return flow
        self.prompt(str(flow.get("message") or flow))
        return self.app.acquire_token_by_device_flow(flow)


class InteractiveTokenSource(_PersonTokenSource):
    """Sign in in the browser; MSAL listens on http://localhost for the redirect."""

    what = "interactive"

    def __init__(
        self,
        app: msal.PublicClientApplication,
        scopes: Sequence[str],
        *,
        username: str | None = None,
        timeout: float | None = 300,
    ) -> None:
        super().__init__(app, scopes)
        self.username = username
        self.timeout = timeout

    def _sign_in(self) -> dict[str, Any] | None:
        assert isinstance(self.app, msal.PublicClientApplication)
        return self.app.acquire_token_interactive(
            self.scopes, login_hint=self.username, timeout=self.timeout
        )


# --- building them from settings ------------------------------------------------------------


def _common(entra: EntraSettings, cache: msal.TokenCache | None) -> dict[str, Any]:
    if not entra.tenant_id:
        raise ValueError("DT_ENTRA_TENANT_ID must be set to sign in with Entra ID")
    if not entra.client_id:
        raise ValueError("DT_ENTRA_CLIENT_ID must be set to sign in with Entra ID")
    return {
        "client_id": entra.client_id,
        "authority": entra.authority,
        "token_cache": cache if cache is not None else PersistentTokenCache(entra.token_cache_path),
        "http_client": _http_client(entra.ca_bundle) if entra.ca_bundle else None,
        # Any authority other than Microsoft's own (sovereign clouds, a test provider) is
        # used as configured, without asking login.microsoftonline.com about it.
        "instance_discovery": entra.authority_host == "https://login.microsoftonline.com",
        "timeout": 30,
    }


def _http_client(ca_bundle: str) -> requests.Session:
    """A session that trusts `ca_bundle`. Given to MSAL rather than `verify=`: requests lets
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own `verify`, not a request's."""
    session = requests.Session()
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=ca_bundle, timeout=30
    )
    adapter = requests.adapters.HTTPAdapter(max_retries=1)
    session.mount("https://", adapter)
    return session


def client_credential(entra: EntraSettings) -> str | dict[str, Any]:
    """MSAL's `client_credential` from DT_ENTRA_CLIENT_SECRET or DT_ENTRA_CLIENT_CERTIFICATE."""
    if entra.client_certificate:
        path = Path(entra.client_certificate)
        password = entra.client_certificate_password
        if path.suffix.lower() in (".pfx", ".p12"):
            return {"private_key_pfx_path": str(path), "passphrase": password}
        pem = path.read_bytes()
        key = serialization.load_pem_private_key(
            pem, password=password.encode() if password else None
        )
        certificate = x509.load_pem_x509_certificate(pem)
        return {
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            # MSAL derives the SHA-256 thumbprint (x5t#S256) from the certificate.
            "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        }
    if entra.client_secret:
        return entra.client_secret
    raise ValueError(
        "DT_ENTRA_CLIENT_SECRET or DT_ENTRA_CLIENT_CERTIFICATE must be set for client credentials"
    )


def token_source(
    entra: EntraSettings,
    flow: Flow = "client_credentials",
    *,
    cache: msal.TokenCache | None = None,
    prompt: Callable[[str], None] | None = None,
    username: str | None = None,
) -> _MsalTokenSource:
    """A token source for `flow`, configured from the DT_ENTRA_* settings."""
    common = _common(entra, cache)
    if flow == "client_credentials":
        app = msal.ConfidentialClientApplication(
            client_credential=client_credential(entra), **common
        )
        return ClientCredentialsTokenSource(app, entra.app_scope)
    public = msal.PublicClientApplication(**common)
    if flow == "device_code":
        return DeviceCodeTokenSource(public, entra.user_scopes, prompt=prompt, username=username)
    if flow == "interactive":
        return InteractiveTokenSource(public, entra.user_scopes, username=username)
    raise ValueError(f"unknown Entra ID sign-in flow {flow!r}")


def entra_client(
    settings: Settings | None = None,
    flow: Flow = "client_credentials",
    **kwargs: Any,
) -> DTBaseClient:
    """A `DTBaseClient` at DT_BACKEND_URL whose tokens come from Entra ID."""
    settings = settings or get_settings()
    source = token_source(settings.entra, flow, **kwargs)
    return DTBaseClient(settings.services.backend_url, token_source=source)
